"""One import, whole or not at all, recorded in the history whatever its outcome."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg

from tierfed import codes
from tierfed.errors import UserError
from tierfed.tiers.node import Node

from . import notices, records, rows, store
from .checks import Scope
from .report import ImportFailed, Progress, Report
from .source import Source

COLUMNS: dict[str, tuple[str, ...]] = {
    "regions": ("code", "name", "tier", "parent_code"),
    "agencies": ("code", "name", "department", "kind", "region_code", "parent_code", "vertically_managed"),
    "pools": ("scheme", "region_code", "opened_from", "opening_balance"),
    "employers": ("credit_code", "name", "region_code", "industry_risk_class"),
    "persons": ("id_number", "name", "region_code"),
    "contributions": store.CONTRIBUTIONS.columns,
    "benefits": store.BENEFITS.columns,
    "fund_flows": ("scheme", "region_code", "month", "category", "amount"),
}
KINDS = tuple(COLUMNS)
# A later file of these kinds may rename what an earlier one stored (see store.SEEN_LAST).
RENAMING = ("regions", "agencies")


def check_kind(kind: str) -> tuple[str, ...]:
    if kind not in COLUMNS:
        raise UserError(f"unknown import kind {kind!r}: expected one of {', '.join(COLUMNS)}")
    return COLUMNS[kind]


async def import_file(pool: asyncpg.Pool, node: Node, kind: str, path: str | Path, progress: bool | None = None,
                      *, caller: str = "cli", scope: str | None = None, via: str = "cli", name: str | None = None,
                      sha256: str | None = None, job: Progress | None = None, max_bytes: int = 0) -> Report:
    """Import one file, all or nothing, and record it in the history.

    ``scope`` (a file submitted over HTTP: the token's scope) narrows the regions the
    records may name. Raises ImportFailed with the first thousand bad rows and their
    count, or UserError for a file that cannot be read; a file already imported
    returns a report with outcome ``unchanged`` and changes nothing. ``max_bytes``: the most the
    file may hold once decompressed (0: no limit).
    """
    columns = check_kind(kind)
    src = Source.open(path, columns, name, sha256)
    src.max_bytes = max_bytes
    job = job or Progress()
    where = Scope(node, scope)
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    bar = _bar(src, progress)
    tick = (lambda: bar.update(src.lines_read - bar.n)) if bar else None
    rep = Report(kind, 0, 0, 0, file_name=src.name, sha256=src.sha256)

    def run_row(outcome: str, message: str = "") -> list[Any]:
        rep.outcome, rep.message, rep.seconds = outcome, message, time.perf_counter() - t0
        return [started, caller, scope or node.region, via, kind, src.name, src.sha256, src.size, rep.rows,
                rep.inserted, rep.unchanged, rep.bad_rows, outcome, message or None, json.dumps(rep.warnings),
                rep.same_as]

    try:
        async with pool.acquire() as con:
            try:
                async with con.transaction():
                    await con.execute(store.LOCK)
                    await con.execute(store.WORK_MEM)
                    # Persons a transfer holds, read at once: no transfer reserves one while this
                    # import holds LOCK, and one that commits meanwhile is in this set (its records
                    # would slip between the checks of transfers and this read).
                    held = await records.persons_held(con) if kind in store.RECORDS else {}
                    seen = await con.fetchrow(store.SEEN_LAST if kind in RENAMING else store.SEEN_ANY,
                                              kind, src.sha256)
                    if seen is not None:
                        rep.rows = rep.unchanged = seen["rows"]
                        rep.same_as = seen["id"]
                        rep.import_id = await con.fetchval(store.RECORD_RUN, *run_row(
                            "unchanged", f"the same file as import {seen['id']}: nothing to do"))
                        return rep
                    written = None  # records the direct path already wrote (records.direct)
                    if kind in store.RECORDS:
                        errors, nbad, total, written = await records.stage_and_check(con, src, kind, where, job, tick)
                    else:
                        errors, nbad, total = await rows.check(con, src, kind, where, job, tick)
                    rep.rows = total
                    if not nbad and held and total:
                        errors, nbad = await records.held_by_changes(src, held)
                    if nbad:
                        raise ImportFailed(src.name, errors, nbad)
                    months: list[date] = []  # a records file's months, in order
                    if kind in store.RECORDS and total:
                        # the direct path read them; else the staged rows' (before apply drops stored ones)
                        months = written[1] if written is not None else await records.staged_months(con)
                    if months:
                        rep.first_month, rep.last_month = codes.month_str(months[0]), codes.month_str(months[-1])
                    rep.warnings = await notices.collect(con, kind)
                    if written is not None:
                        rep.inserted = written[0]
                    elif kind in store.RECORDS:
                        rep.inserted = await records.apply(pool, con, src, kind, node.region, job, months)
                    else:
                        rep.inserted = await rows.apply(con, kind, node.region, job)
                    rep.unchanged = total - rep.inserted
                    rep.import_id = await con.fetchval(
                        store.RECORD_RUN, *run_row("imported" if rep.inserted else "unchanged"))
                    if rep.inserted:
                        await con.execute(store.SET_VERSION, rep.import_id)
                        rep.version = rep.import_id
            except ImportFailed as e:
                rep.bad_rows, rep.errors = e.total, e.errors
                e.report = rep
                rep.import_id = await _record(con, run_row("rejected", str(e)))
                raise
            except UserError as e:
                rep.import_id = await _record(con, run_row("rejected", str(e)))
                raise
            except Exception as e:
                await _record(con, run_row("failed", f"{type(e).__name__}"))
                raise
    finally:
        job.phase = "done"
        if bar:
            bar.close()
    rep.seconds = time.perf_counter() - t0
    return rep


async def _record(con: asyncpg.Connection, args: list[Any]) -> int | None:
    """The history row of an import that changed nothing; best effort when the database is gone."""
    try:
        return int(await con.fetchval(store.RECORD_RUN, *args))
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        return None


@dataclass
class ImportRunRec:
    """One import as the history (``imports``) shows it. Not frozen: the GraphQL type
    (``schema/imports.ImportRun``) is this record with its descriptions, a subclass."""

    id: str
    kind: str
    file_name: str
    sha256: str
    caller: str
    scope: str
    via: str
    started_at: str
    finished_at: str
    seconds: float
    bytes: float
    rows: int
    inserted: int
    unchanged: int
    bad_rows: int
    outcome: str
    message: str | None
    warnings: list[str]
    version: str | None
    same_as: str | None


async def history(pool: asyncpg.Pool, scope: str, kind: str | None, limit: int) -> list[ImportRunRec]:
    """Imports submitted inside ``scope``'s subtree, newest first."""
    return [ImportRunRec(
        str(r["id"]), r["kind"], r["file_name"], r["sha256"], r["caller"], r["scope"], r["via"],
        r["started_at"].isoformat(), r["finished_at"].isoformat(),
        round((r["finished_at"] - r["started_at"]).total_seconds(), 3), float(r["bytes"]),
        r["rows"], r["inserted"], r["unchanged"], r["bad_rows"], r["outcome"], r["message"],
        list(json.loads(r["warnings"])), str(r["version"]) if r["version"] is not None else None,
        str(r["same_as"]) if r["same_as"] is not None else None) for r in await pool.fetch(store.HISTORY, scope, kind, limit)]


def _bar(src: Source, enabled: bool | None) -> Any:
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(unit=" lines", unit_scale=True, desc=f"import {src.name}", file=sys.stderr)

