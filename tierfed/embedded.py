"""The embedded PostgreSQL (pgserver): the default when no database_url is configured.

One server per data directory (``./.tierfed/pgdata``), one database per node.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

_servers: dict[Path, Any] = {}


def server(data_dir: str | Path) -> Any:
    """Start (or reuse) the embedded server under ``data_dir``; it stops when the process exits."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs' notice about XDG_RUNTIME_DIR
        import pgserver  # imported lazily: a node on an external server never needs it

    path = (Path(data_dir) / "pgdata").resolve()
    if path not in _servers:
        path.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs' notice about XDG_RUNTIME_DIR
            srv = pgserver.get_server(path, cleanup_mode="stop")
        # Bulk imports write a lot of WAL: fewer forced checkpoints (reloadable settings only).
        srv.psql("alter system set max_wal_size = '4GB'; alter system set checkpoint_timeout = '15min'; "
                 "select pg_reload_conf();")
        _servers[path] = srv
    return _servers[path]


def database_name(node_name: str) -> str:
    return "tierfed_" + re.sub(r"[^a-z0-9_]", "_", node_name.lower())


def url_for(data_dir: str | Path, database: str) -> str:
    """A connection URL for ``database`` on the embedded server, creating the database if missing."""
    srv = server(data_dir)
    exists = srv.psql(f"select 1 from pg_database where datname = '{database}';")
    if "(1 row)" not in exists:
        srv.psql(f'create database "{database}";')
    return srv.get_uri(database)
