"""Regions, agencies, pools, employers and persons: every row checked in Python
(these files are small next to the records), the checked rows streamed by COPY
into a staging table while the next rows are being checked, then the checks that
need the database as SQL over it, then the apply statements."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable

import asyncpg

from tierfed.tiers.pooling import pool_lock_keys
from tierfed.tiers.store import rebuild_tree

from . import checks, store
from .checks import Bad, Checker, Scope
from .report import MAX_REPORTED, Progress, RowError, field_count
from .source import Source

ROW_CHECK: dict[str, Callable[[Checker, list[str]], tuple]] = {
    "regions": checks.region, "agencies": checks.agency, "pools": checks.pool,
    "employers": checks.employer, "persons": checks.person, "fund_flows": checks.fund_flow,
}
CHUNK_ROWS = 50_000


async def check(con: asyncpg.Connection, src: Source, kind: str, scope: Scope, progress: Progress,
                tick: Callable[[], None] | None = None) -> tuple[list[RowError], int, int]:
    """Stage the checked rows, then run the database checks; returns the first bad rows, their count
    and the row count."""
    index, rows = src.rows()
    ck = Checker(scope)
    parse = ROW_CHECK[kind]
    width = len(src.header)  # every row has the header's fields, no fewer, no more
    errors: list[RowError] = []
    counts = {"total": 0, "bad": 0}
    await con.execute(store.STAGING[kind])
    progress.phase = "reading"

    async def staged() -> AsyncIterator[bytes]:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        pending = 0
        for line, raw in rows:
            counts["total"] += 1
            if len(raw) != width:
                counts["bad"] += 1
                if len(errors) < MAX_REPORTED:
                    errors.append(RowError(line, "*", field_count(len(raw), width)))
                continue
            try:
                out = parse(ck, [raw[i] for i in index])
            except Bad as b:
                counts["bad"] += 1
                if len(errors) < MAX_REPORTED:
                    errors.append(RowError(line, b.column, b.reason))
                continue
            writer.writerow((line, *out))
            pending += 1
            if pending >= CHUNK_ROWS:
                progress.rows_read = progress.rows_checked = counts["total"]
                if tick:
                    tick()
                yield buf.getvalue().encode("utf-8")
                buf.seek(0)
                buf.truncate()
                pending = 0
        if pending:
            yield buf.getvalue().encode("utf-8")

    await con.copy_to_table("staging", source=staged(), format="csv")
    progress.rows_read = progress.rows_checked = counts["total"]
    progress.phase = "checking"
    await con.execute("analyze staging")
    if kind == "fund_flows":
        await lock_pools(con, scope, store.FLOW_POOL_REGIONS)
    elif kind == "pools":
        # As a raise locks them (before its checks, to its commit): a raise and this import each
        # check the other's committed pools (the overlap check below) or wait for them.
        await lock_pools(con, scope, store.STAGED_POOL_REGIONS)
    nbad = counts["bad"]
    # The checks that need the database run over the rows that passed the row checks,
    # so one run reports every bad row of both kinds.
    for sql in store.CHECKS.get(kind, ()):
        for r in await con.fetch(sql):
            errors.append(RowError(r[0], r[1], r[2]))
            nbad += 1
    return sorted(errors, key=lambda e: e.line)[:MAX_REPORTED], nbad, counts["total"]


async def lock_pools(con: asyncpg.Connection, scope: Scope, regions: str) -> None:
    """Lock the pools the staged rows book into or add (``regions``: their schemes and regions),
    as a pooling change locks them: each pool's region exclusively, its ancestors shared."""
    mine, above = set(), set()
    for scheme, region in await con.fetch(regions):
        if region not in scope.node.tree:
            continue  # refused by the row checks: nothing to lock
        own, ancestors = pool_lock_keys(scope.node.tree, scheme, region)
        mine.add(own)
        above.update(ancestors)
    above -= mine
    exclusive, shared = store.LOCK_POOLS
    if mine:
        await con.execute(exclusive, sorted(mine))
    if above:
        await con.execute(shared, sorted(above))


async def apply(con: asyncpg.Connection, kind: str, root: str, progress: Progress) -> int:
    """Apply the staged rows; returns how many rows were written, from each statement's own count:
    the rows added, and for regions and agencies (whose upserts skip a row stored as it is) the
    rows renamed or moved too: a file that only renames changed something, and is not one to
    skip as already imported next time."""
    progress.phase = "writing"
    written = 0
    if kind == "regions":
        moved = await con.fetchval(store.REGIONS_MOVED)
        for sql in store.APPLY[kind]:
            written += _rows_of(await con.execute(sql))
        await rebuild_tree(con)
        if moved:
            delete, *insert = store.RESUMMARISE
            await con.execute(delete)
            for sql in insert:
                await con.execute(sql, root)
        # missing agencies for new regions are not invented: import agencies for them
        await con.execute(store.TREE_CHANGED)
    else:
        for sql in store.APPLY.get(kind, ()):
            written += _rows_of(await con.execute(sql))
        if kind in store.APPLY_AT_ROOT:
            # Its statement's own count is of the summaries it books into: the flows are counted.
            before = int(await con.fetchval(store.COUNT_FLOWS))
            for sql in store.APPLY_AT_ROOT[kind]:
                await con.execute(sql, root)
            written += int(await con.fetchval(store.COUNT_FLOWS)) - before
    progress.rows_written = written
    return written


def _rows_of(status: str) -> int:
    """The rows an INSERT wrote (added, or with ON CONFLICT DO UPDATE updated too), from its status."""
    parts = status.split()
    return int(parts[-1]) if parts and parts[-1].isdigit() else 0
