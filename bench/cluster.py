"""The benchmarks' own embedded PostgreSQL (pgserver) under ``.tierfed/bench/pgdata``.

Kept apart from the demo's and the tests' servers so a benchmark never reads
or disturbs their data. The server settings are written once with ALTER
SYSTEM (larger WAL and buffers for 24M-row imports; the same settings serve
tierfed, the raw-SQL baselines and PostGraphile alike, so no side gets a
better database than another).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / ".tierfed" / "bench"

SETTINGS = {
    "shared_buffers": "2GB",
    "work_mem": "64MB",
    "maintenance_work_mem": "512MB",
    "max_wal_size": "16GB",
    "checkpoint_timeout": "30min",
    "max_connections": "200",
    "max_parallel_workers_per_gather": "2",
}
_server: Any = None


def server() -> Any:
    """Start (or reuse) the benchmark cluster; applies SETTINGS once (restarting if needed)."""
    global _server
    if _server is not None:
        return _server
    import pgserver

    path = BENCH_DIR / "pgdata"
    path.parent.mkdir(parents=True, exist_ok=True)
    _forget_dead_handles(path)
    srv = pgserver.get_server(path, cleanup_mode="stop")
    out = srv.psql("select name, setting, unit from pg_settings where name in ("
                   + ",".join(f"'{k}'" for k in SETTINGS) + ");")
    marker = path / "bench-settings"
    want = repr(sorted(SETTINGS.items()))
    if not marker.exists() or marker.read_text() != want:
        for k, v in SETTINGS.items():
            srv.psql(f"alter system set {k} = '{v}';")
        marker.write_text(want)
        # shared_buffers and max_connections need a restart: stop and start through pgserver.
        srv._cleanup()
        srv = pgserver.get_server(path, cleanup_mode="stop")
    del out
    _server = srv
    return srv


def _forget_dead_handles(path: Path) -> None:
    """pgserver stops the server when its last handle exits, counting handles by pid in a file; a
    benchmark killed before its exit handler ran leaves its pid there and the server would never
    stop again. Keep only the pids still alive."""
    import json

    import psutil

    f = path / ".handle_pids.json"
    try:
        pids = json.loads(f.read_text())
    except (OSError, ValueError):
        return
    alive = [p for p in pids if isinstance(p, int) and psutil.pid_exists(p)]
    if alive != pids:
        f.write_text(json.dumps(alive))


def admin_url() -> str:
    return str(server().get_uri("postgres"))


def url(database: str) -> str:
    return str(server().get_uri(database))


def with_db(u: str, db: str) -> str:
    if "?" in u:
        head, q = u.split("?", 1)
        return re.sub(r"/[^/]*$", f"/{db}", head) + "?" + q
    return re.sub(r"/[^/]*$", f"/{db}", u)


async def admin(sql: str, *args: Any) -> Any:
    con = await asyncpg.connect(admin_url())
    try:
        return await con.fetch(sql, *args)
    finally:
        await con.close()


async def exists(db: str) -> bool:
    return bool(await admin("select 1 from pg_database where datname = $1", db))


async def create(db: str, template: str | None = None) -> str:
    await drop(db)
    tmpl = f' template "{template}"' if template else ""
    await admin(f'create database "{db}"{tmpl}')
    return url(db)


async def drop(db: str) -> None:
    await admin(f'drop database if exists "{db}" with (force)')


async def size(db: str) -> int:
    rows = await admin("select pg_database_size($1)", db)
    return int(rows[0][0])


def server_pids() -> list[int]:
    """The postmaster and its backends (for RSS of the database side)."""
    import psutil

    srv = server()
    pm = psutil.Process(srv.get_pid())
    return [pm.pid, *(c.pid for c in pm.children(recursive=True))]
