"""Database connections, the migration runner and the seed of the shipped tree."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources
from typing import Any

import asyncpg

from . import embedded, observe
from .config import NodeConfig
from .telemetry import sql_span

SERVER_SETTINGS = {
    # A cached generic plan made for a small region is badly wrong for a large one.
    "plan_cache_mode": "force_custom_plan",
    "jit": "off",
    "application_name": "tierfed",
}


# asyncpg's own per-connection work (type introspection, its JIT switch) and
# the tree listener are not statements of an operation.
ASYNCPG_INTERNAL = ("LISTEN", "UNLISTEN", "WITH RECURSIVE typeinfo_tree", "SELECT current_setting('jit')")


@dataclass(eq=False)
class StatementCounter:
    """Counts the SQL statements a pool runs (tests assert on it; it costs one increment)."""

    count: int = 0
    queries: list[str] | None = None  # set to a list to keep the statements' text
    timed: list[tuple[str, float]] | None = None  # set to a list to keep each statement's text and seconds

    def __call__(self, record: Any) -> None:
        if record.query.startswith(ASYNCPG_INTERNAL):
            return
        self.count += 1
        if self.queries is not None:
            self.queries.append(record.query)
        if self.timed is not None:
            self.timed.append((record.query, record.elapsed))
        # asyncpg calls this with the context of the task that ran the statement.
        req = observe.current.get()
        if req is not None:
            req.sql_statements += 1
            req.sql_seconds += record.elapsed
            if req.tracer is not None:
                sql_span(req, record.query, record.elapsed)


def database_url(cfg: NodeConfig) -> str:
    if cfg.database_url:
        return cfg.database_url
    return embedded.url_for(cfg.data_dir, embedded.database_name(cfg.name))


async def create_pool(url: str, counter: StatementCounter | None = None, settings: dict[str, str] | None = None,
                      warm: tuple[str, ...] = (), **kw: Any) -> asyncpg.Pool:
    """A pool of connections to the node's database. ``warm``: statements each new connection
    prepares before it is first handed out (its type lookups and its backend's first catalog
    reads done then, not in the first operation that runs them)."""
    async def init(con: asyncpg.Connection) -> None:
        if counter is not None:
            con.add_query_logger(counter)
        for sql in warm:
            await con.prepare(sql)

    async def reset(con: asyncpg.Connection) -> None:
        # tierfed leaves no session state on a released connection (transactions
        # are scoped, advisory locks are transaction-level, the one listener has
        # its own connection): skip asyncpg's reset round trip on every release.
        return None

    return await asyncpg.create_pool(
        url, min_size=kw.pop("min_size", 1), max_size=kw.pop("max_size", 10),
        server_settings={**SERVER_SETTINGS, **(settings or {})}, init=init, reset=reset, **kw
    )


async def applied_version(pool: asyncpg.Pool) -> int | None:
    """The latest migration applied to the database (None before the first)."""
    return await pool.fetchval("select max(version) from schema_migrations")  # type: ignore[no-any-return]


def migration_files() -> list[tuple[int, str, str]]:
    pkg = resources.files("tierfed.migrations")
    out = []
    for f in pkg.iterdir():
        if f.name.endswith(".sql"):
            out.append((int(f.name.split("_", 1)[0]), f.name, f.read_text("utf-8")))
    return sorted(out)


async def migrate(con: asyncpg.Connection) -> list[str]:
    """Apply pending migrations, each in its own transaction, then seed the shipped tree.

    Returns the names of the files applied; a second run applies none and changes nothing.
    """
    applied = []
    # One migrator at a time on a database, from its very first statement: two that started
    # together on an empty database had both created the migrations' table, and one failed.
    await con.execute("select pg_advisory_lock(7366041)")
    try:
        await con.execute(
            "create table if not exists schema_migrations ("
            " version int primary key, name text not null, applied_at timestamptz not null default now())"
        )
        done = {r["version"] for r in await con.fetch("select version from schema_migrations")}
        for version, name, sql in migration_files():
            if version in done:
                continue
            async with con.transaction():
                await con.execute(sql)
                await con.execute("insert into schema_migrations (version, name) values ($1, $2)", version, name)
            applied.append(name)
        await seed(con)
    finally:
        await con.execute("select pg_advisory_unlock(7366041)")
    return applied


def shipped_regions() -> list[tuple[str, str, int, str | None]]:
    tiers = {"central": 0, "province": 1, "city": 2, "county": 3}
    text = resources.files("tierfed").joinpath("data/divisions.csv").read_text("utf-8")
    rows = csv.DictReader(text.splitlines())
    return [(r["code"], r["name"], tiers[r["tier"]], r["parent_code"] or None) for r in rows]


AGENCY_PREFIX = {1: "RS", 2: "YB"}


def agency_name(region_name: str, tier: int, department: int) -> str:
    if tier == 0:
        return ("人力资源和社会保障部社会保险事业管理中心", "国家医疗保障局医疗保障事业管理中心")[department - 1]
    suffix = ("社会保险事业管理中心", "医疗保障事业管理中心")[department - 1]
    return region_name + suffix


def shipped_agencies(regions: list[tuple[str, str, int, str | None]]) -> list[tuple]:
    """One agency per region and department, each under the agency of the parent region."""
    out = []
    for code, name, tier, parent in regions:
        for dept, prefix in AGENCY_PREFIX.items():
            out.append((prefix + code, agency_name(name, tier, dept), dept, 1, code,
                        prefix + parent if parent else None, False))
    return out


async def seed(con: asyncpg.Connection) -> None:
    from tierfed.tiers.store import rebuild_tree  # noqa: PLC0415 - tiers.store imports nothing from here

    if await con.fetchval("select exists (select 1 from region)"):
        return
    regions = shipped_regions()
    async with con.transaction():
        await con.copy_records_to_table("region", records=regions, columns=["code", "name", "tier", "parent_code"])
        await rebuild_tree(con)
        await con.copy_records_to_table(
            "agency", records=shipped_agencies(regions),
            columns=["code", "name", "department", "kind", "region_code", "parent_code", "vertically_managed"],
        )
