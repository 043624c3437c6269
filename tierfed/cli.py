"""The ``tierfed`` console script. Bad arguments, files or configuration end with one
clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from . import codes
from .config import NodeConfig, load
from .errors import UserError

IMPORT_KINDS = ("regions", "agencies", "pools", "employers", "persons", "contributions", "benefits", "fund_flows")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tierfed", description="GraphQL federation server for four-tier social insurance agencies")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    d = sub.add_parser("demo", help="central node and province nodes on the embedded PostgreSQL")
    d.add_argument("--port", type=_port, default=8000)
    d.add_argument("--persons", type=int, default=100_000)
    d.add_argument("--data-dir", default=".tierfed")

    s = sub.add_parser("serve", help="serve one node")
    s.add_argument("--config")
    s.add_argument("--workers", type=int, help="worker processes (default: [node].workers, else 1)")

    m = sub.add_parser("migrate", help="apply pending migrations")
    m.add_argument("--config")

    i = sub.add_parser("import", help="load a CSV file, whole or not at all")
    i.add_argument("kind", choices=IMPORT_KINDS)
    i.add_argument("file")
    i.add_argument("--config")
    i.add_argument("--json", action="store_true", help="print the report as JSON")

    t = sub.add_parser("token", help="print a signed token")
    t.add_argument("--config")
    t.add_argument("--scope", required=True)
    t.add_argument("--roles", default="VIEWER")
    t.add_argument("--ttl", type=int, default=3600)
    t.add_argument("--sub", default="tierfed-cli")

    sc = sub.add_parser("schema", help="print the SDL the server serves")
    sc.add_argument("--check", action="store_true",
                    help="instead, compare it with the last release's SDL; fail on a breaking change the changelog does not list")
    sc.add_argument("--releases", default="schema/releases", help="directory of released SDL files (<version>.graphql)")
    sc.add_argument("--changelog", default="CHANGELOG.md")

    pe = sub.add_parser("persist", help="write persisted-operation files (tierfed's and Apollo's format) from a .graphql file")
    pe.add_argument("operations", help="a GraphQL document of named operations and their fragments")
    pe.add_argument("--out", required=True, help="directory for persisted-operations.json and persisted-query-manifest.json")

    x = sub.add_parser("index-rebuild", help="read every child node's persons again, from the start")
    x.add_argument("--config")

    v = sub.add_parser("verify", help="check every summary against the raw records")
    v.add_argument("--config")

    st = sub.add_parser("statements", help="write every person's statement of a year as a PDF in Chinese")
    st.add_argument("--config")
    st.add_argument("--region", required=True, help="6-digit code: every person registered in its subtree")
    st.add_argument("--year", required=True, help="the year of the statements, e.g. 2025")
    st.add_argument("--out", required=True, help="folder for the PDF files (made when missing)")
    st.add_argument("--per-county", action="store_true", help="one file per county (for a print shop)")
    st.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")

    g = sub.add_parser("generate", help="write a synthetic data set as import CSV files")
    g.add_argument("--out", required=True)
    g.add_argument("--persons", type=int, default=10_000)
    g.add_argument("--from", dest="first", default="2025-01")
    g.add_argument("--to", dest="last", default="2025-12")
    g.add_argument("--seed", type=int, default=1)
    return p


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_setup() -> None:
    """The log's format and level, in the CLI and in each worker of ``serve --workers N`` (a
    spawned process: without it, its warnings went out bare, with no time, level or logger)."""
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)


def main(argv: list[str] | None = None) -> None:
    log_setup()
    try:
        args = _parser().parse_args(argv)
        code = COMMANDS[args.command](args)
    except UserError as e:
        print(f"tierfed: {e}", file=sys.stderr)
        for err in getattr(e, "errors", [])[:1000]:
            print(f"  {err}", file=sys.stderr)
        sys.exit(1 if getattr(e, "errors", None) else 2)
    except OSError as e:  # a file or directory named on the command line or in the config
        where = f"{e.filename}: " if e.filename else ""
        print(f"tierfed: {where}{e.strerror or e}", file=sys.stderr)
        sys.exit(2)
    except asyncpg.PostgresError as e:  # nothing was written: every command's writes are one transaction
        print(f"tierfed: the command failed, the node's database refused: {e} ({type(e).__name__}); what it "
              "had not committed was rolled back", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code or 0)


def _port(value: str) -> int:
    """A TCP port for argparse: a whole number from 1 to 65535."""
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port from 1 to 65535, got {value!r}")
    return int(value)


def _run(coro: Awaitable[Any]) -> Any:
    """Run a command's coroutine on uvloop's event loop (libuv's; installed with uvicorn[standard]:
    the loop ``uvicorn --workers N`` picks too), or asyncio's own where it is not installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)  # type: ignore[arg-type]
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)  # type: ignore[arg-type]


async def _with_db(cfg: NodeConfig, fn: Callable[[Any], Awaitable[Any]]) -> Any:
    import asyncpg

    from .db import database_url

    url = database_url(cfg)
    try:
        con = await asyncpg.connect(url)
    except (OSError, asyncpg.PostgresError) as e:
        raise UserError(f"cannot connect to the node's database: {e}") from None
    try:
        return await fn(con)
    finally:
        await con.close()


def cmd_migrate(args: argparse.Namespace) -> int:
    from .db import migrate

    cfg = load(args.config)
    applied = _run(_with_db(cfg, migrate))
    print("applied: " + ", ".join(applied) if applied else "nothing to apply: the database is up to date")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    import json

    from .imports import ImportFailed, import_file
    from .imports.federation import after_import
    from .runtime import open_runtime

    cfg = load(args.config)

    async def go() -> Any:
        rt = await open_runtime(cfg, check_children=False)
        try:
            rep = await import_file(rt.pool, rt.node, args.kind, args.file)
            for problem in await after_import(rt, rep, args.file):
                print(f"warning: {problem}", file=sys.stderr)
            return rep
        finally:
            await rt.close()

    try:
        rep = _run(go())
    except ImportFailed as e:
        if args.json and e.report is not None:
            print(json.dumps(e.report.to_json(), ensure_ascii=False, indent=2))
        raise
    if args.json:
        print(json.dumps(rep.to_json(), ensure_ascii=False, indent=2))
        return 0
    if rep.same_as is not None:
        print(f"{rep.kind}: the same file as import {rep.same_as} ({rep.rows} rows): nothing changed")
    else:
        print(f"{rep.kind}: {rep.rows} rows, {rep.inserted} new, {rep.unchanged} already stored "
              f"(import {rep.import_id}, {rep.seconds:.1f} s)")
    for w in rep.warnings:
        print(f"  warning: {w}")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from .auth import ROLES, Keys

    cfg = load(args.config)
    try:
        codes.region_code(args.scope)
    except ValueError as e:
        raise UserError(f"--scope: {e}") from None
    roles = [r.strip().upper() for r in args.roles.split(",") if r.strip()]
    people = [r for r in ROLES if r != "NODE"]
    if "NODE" in roles:
        raise UserError("--roles: NODE is the role a node signs for itself (short-lived, for node-to-node work); "
                        f"tokens for people take any of {', '.join(people)}")
    bad = [r for r in roles if r not in ROLES]
    if bad:
        raise UserError(f"--roles: unknown role(s) {', '.join(bad)}; expected any of {', '.join(people)}")
    if not 1 <= args.ttl <= 366 * 86400:
        raise UserError("--ttl: expected 1 to 31622400 seconds")
    from .db import shipped_regions

    if args.scope not in {code for code, *_ in shipped_regions()}:
        # A node knows the regions imported into its tree too: said, not refused.
        print(f"tierfed: note: --scope {args.scope} is not in the shipped division list; a node refuses a token "
              "whose scope names no region of its tree", file=sys.stderr)
    print(Keys(cfg.auth).sign(args.sub, args.scope, roles, args.ttl))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from .schema.root import schema

    if not args.check:
        print(schema.as_str())
        return 0
    from .compat import check, coordinate, latest_release

    try:
        release = latest_release(Path(args.releases))
        report = check(release.read_text("utf-8"), schema.as_str(), Path(args.changelog).read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"schema --check: {e}") from None
    for d in report.dangerous:
        print(f"dangerous (allowed): {d}")
    for c in report.breaking:
        state = "NOT LISTED" if c in report.unlisted else "listed"
        print(f"breaking ({state}): {c.description}")
    if report.unlisted:
        names = ", ".join(f"`{coordinate(c)}`" for c in report.unlisted)
        print(f"schema --check: {len(report.unlisted)} breaking change(s) since {release.stem} not in {args.changelog}: "
              f"add a bullet under '## Unreleased' naming {names} with 'Migration:' and what clients do instead",
              file=sys.stderr)
        return 1
    print(f"schema --check: compatible with {release.stem}"
          + (f" ({len(report.breaking)} breaking change(s), each listed with its migration)" if report.breaking else ""))
    return 0


def cmd_persist(args: argparse.Namespace) -> int:
    import json

    from graphql import GraphQLError

    from .persisted import apollo_manifest, node_format, operations

    try:
        ops = operations(Path(args.operations).read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, GraphQLError) as e:
        raise UserError(f"persist {args.operations}: {e}") from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "persisted-operations.json").write_text(json.dumps(node_format(ops), indent=2, ensure_ascii=False) + "\n")
    (out / "persisted-query-manifest.json").write_text(
        json.dumps(apollo_manifest(ops), indent=2, ensure_ascii=False) + "\n")
    print(f"persist: {len(ops)} operations ({', '.join(o['name'] for o in ops)}) -> {out}/persisted-operations.json, "
          f"{out}/persisted-query-manifest.json")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .tiers.store import verify_summaries as verify

    cfg = load(args.config)
    n, bad = _run(_with_db(cfg, lambda con: verify(con, cfg.region)))
    if bad:
        for region, month, scheme in bad:
            print(f"mismatch: region {region}, month {month}, scheme {scheme}", file=sys.stderr)
        print(f"verify: {len(bad)} summary row(s) differ from the records", file=sys.stderr)
        return 1
    print(f"verify: all {n} summary rows equal the records")
    return 0


def access_log() -> None:
    """The access log's JSON lines go to stdout, alone on their line (the rest stays on stderr)."""
    access = logging.getLogger("tierfed.access")
    if not access.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False


def cmd_serve(args: argparse.Namespace) -> int:
    import os
    import tempfile

    cfg = load(args.config)
    workers = args.workers if args.workers is not None else cfg.workers
    if not 1 <= workers <= 64:
        raise UserError(f"--workers: expected 1 to 64, got {workers}")
    access_log()
    made_dir = None
    if (workers > 1 or cfg.metrics.listen) and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Before anything imports prometheus_client: every worker writes its values there.
        made_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="tierfed-metrics-")
    try:
        return _serve(cfg, workers, args.config)
    finally:
        if made_dir:
            import shutil

            shutil.rmtree(made_dir, ignore_errors=True)


def stopping_live(rt: Any) -> Any:
    """uvicorn's server class for one node: stopping, it ends the node's live answers first (each
    stream completes, each socket closes), since uvicorn waits for open responses before the app's
    own shutdown and a subscription would hold the node until then."""
    import uvicorn

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            if rt.live is not None:  # made by the first subscription
                await rt.live.close()
            await super().shutdown(sockets)

    return Server


def _serve(cfg: NodeConfig, workers: int, config_path: str | None) -> int:
    import os

    import uvicorn

    from .app import create_app
    from .runtime import open_runtime

    if workers == 1:
        async def go() -> None:
            rt = await open_runtime(cfg)
            try:
                _metrics_listener(cfg)
                server = stopping_live(rt)(uvicorn.Config(create_app(cfg, rt), host=cfg.host, port=cfg.port,
                                                          log_level="info", access_log=False,
                                                          timeout_graceful_shutdown=cfg.shutdown_grace_s))
                await server.serve()
            finally:
                await rt.close()

        _run(go())
        return 0

    async def check() -> None:  # fail here, with one clear line, rather than in every worker
        rt = await open_runtime(cfg)
        await rt.close()

    _run(check())
    _metrics_listener(cfg)
    os.environ["TIERFED_CONFIG"] = str(Path(config_path or os.environ["TIERFED_CONFIG"]).resolve())
    # Each worker's live answers end with the app's shutdown, once uvicorn stops waiting for open
    # responses: after shutdown_grace_s at most.
    uvicorn.run("tierfed.app:from_environment", factory=True, host=cfg.host, port=cfg.port, workers=workers,
                log_level="info", access_log=False, timeout_graceful_shutdown=cfg.shutdown_grace_s)
    return 0


def _metrics_listener(cfg: NodeConfig) -> None:
    """``[metrics].listen``: /metrics of all workers on an address of its own, without a token."""
    if not (cfg.metrics.enabled and cfg.metrics.listen):
        return
    from prometheus_client import CollectorRegistry, start_http_server

    from .metrics import LiveWorkersCollector

    registry = CollectorRegistry()
    LiveWorkersCollector(registry)
    host, port = cfg.metrics.listen.rsplit(":", 1)
    start_http_server(int(port), host, registry=registry)


def cmd_generate(args: argparse.Namespace) -> int:
    from .db import shipped_regions
    from .generator import Options, generate
    from .tiers.tree import RegionRec, Tree

    try:
        first, last = codes.period(args.first, args.last)
    except ValueError as e:
        raise UserError(str(e)) from None
    if not 1 <= args.persons <= 50_000_000:
        raise UserError("--persons: expected 1 to 50000000")
    tree = tree_from_shipped(shipped_regions(), RegionRec, Tree)
    counts = generate(tree, Path(args.out), Options(args.persons, first, last, args.seed))
    for d, c in counts.items():
        print(f"{d}: " + ", ".join(f"{k} {v}" for k, v in c.items()))
    return 0


def tree_from_shipped(rows: list[tuple], rec: Any, tree_cls: Any) -> Any:
    parents = {code: parent for code, _, _, parent in rows}

    def anc(code: str) -> tuple[str, ...]:
        out = []
        p = parents[code]
        while p:
            out.append(p)
            p = parents[p]
        return tuple(reversed(out))

    return tree_cls(rec(code, name, tier, parent, anc(code)) for code, name, tier, parent in rows)


def cmd_index_rebuild(args: argparse.Namespace) -> int:
    from .runtime import open_runtime

    cfg = load(args.config)
    if not cfg.children:
        raise UserError(f"node {cfg.name} has no [[children]]: there is no person index to rebuild")

    async def go() -> dict[str, int]:
        rt = await open_runtime(cfg, check_children=False)
        try:
            return await rt.index.rebuild()
        except Exception as e:  # noqa: BLE001 - one clear line
            raise UserError(f"could not read a child node's persons: {type(e).__name__}: {e}") from None
        finally:
            await rt.close()

    for child, n in _run(go()).items():
        print(f"{child}: {n} persons")
    return 0


def cmd_statements(args: argparse.Namespace) -> int:
    from .runtime import open_runtime
    from .statements import check_out, run_statements, year_arg

    year = year_arg(args.year)
    check_out(args.out)  # before connecting: a folder that cannot be written is said at once
    cfg = load(args.config)

    async def go() -> Any:
        rt = await open_runtime(cfg)
        try:
            if rt.node.children:
                await rt.index.sync_all()  # lookups then ask only the children holding each person,
                await rt.links.begin()  # while the leases on them run (kept up by the rounds)
            return await run_statements(rt, args.region, year, Path(args.out), args.per_county,
                                        progress=not args.no_progress)
        finally:
            await rt.close()

    r = _run(go())
    print(f"{r.written} statements written in {r.files} files, {r.skipped} sent before, of {r.persons} persons "
          f"registered in {args.region} ({r.seconds:.1f} s)")
    if r.incomplete:
        print(f"tierfed: {len(r.incomplete)} statements not written: a node holding part of them did not answer "
              f"({', '.join(r.incomplete[:10])}{' ...' if len(r.incomplete) > 10 else ''}); run again to send them",
              file=sys.stderr)
        return 1
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    if args.port > 65532:
        raise UserError(f"--port: the demo's four nodes listen on it and the next three ports: at most 65532, "
                        f"got {args.port}")
    if not 1 <= args.persons <= 10_000_000:
        raise UserError(f"--persons: expected 1 to 10000000, got {args.persons}")
    _run(run_demo(args.port, args.persons, Path(args.data_dir)))
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "demo": cmd_demo, "serve": cmd_serve, "index-rebuild": cmd_index_rebuild, "migrate": cmd_migrate,
    "statements": cmd_statements,
    "import": cmd_import, "token": cmd_token, "schema": cmd_schema, "persist": cmd_persist, "verify": cmd_verify,
    "generate": cmd_generate,
}


if __name__ == "__main__":
    main()
