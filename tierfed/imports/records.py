"""Contributions and benefits, checked as set-based SQL over a staging table (nothing
parsed in Python); the reported rows are worded by the same Python checks as every
other kind.

Two ways in. The fast path (``stage_csv``): one COPY through PostgreSQL's CSV parser
into a text column per field, one check statement over it. Any file it cannot take
(a row with another number of fields, a line that is not one CSV record, a value that
does not cast) or with any bad row rolls back to a savepoint and takes the line path
(``stage``, ``check``): the lines as they are, split in SQL, the first bad column of
each row flagged and worded. Then apply: months already stored take an insert, months
not stored yet are loaded whole into new partitions, indexed by one sort and attached;
a key repeated in the file or already stored is found by the unique index itself, and
only then do the slower checks that word it run; then the summaries.

A file whose months are all new (the first file of each month on a node) first tries the
direct path (``direct``), inside the fast path: no staging table, the staged fields checked
and inserted into the new partitions by one statement. Any row it refuses, a repeated key
or a transfer out rolls it back, and the fast path's check runs as above (a bad file costs
that attempt more; the reports are the same).
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import date
from typing import Any

import asyncpg

from tierfed import codes
from tierfed.errors import UserError
from tierfed.tiers.figures import SCHEME_ID

from . import checks, store
from .checks import Bad, Checker, Scope
from .report import MAX_REPORTED, ImportFailed, Progress, RowError, field_count
from .source import Source

ROW_CHECK: dict[str, Callable[[Checker, list[str]], tuple]] = {
    "contributions": checks.contribution, "benefits": checks.benefit}


# What the direct path wrote: the rows inserted and the file's months, in order.
Written = tuple[int, list[date]]


async def stage_and_check(con: asyncpg.Connection, src: Source, kind: str, scope: Scope, progress: Progress,
                          tick: Callable[[], None] | None = None
                          ) -> tuple[list[RowError], int, int, Written | None]:
    """Stage the file and run every check: by the fast path when it takes the file and finds
    nothing wrong, else line by line (which words every bad row). Returns the first bad rows
    (by line), their count, the row count, and when the direct path already wrote the rows
    (summaries and all) how many and the file's months, else None (``apply`` writes them;
    ``staged_months`` has the months)."""
    await lookups(con, scope)
    fast = await stage_csv(con, src, kind, progress, scope.node.region, tick)
    if fast is not None:
        return fast
    src.lines_read = 0
    progress.rows_read = progress.rows_checked = 0
    await stage(con, src, progress, tick)
    return (*await check(con, src, kind, scope, progress), None)


async def lookups(con: asyncpg.Connection, scope: Scope) -> None:
    """What a record may name: regions, months, schemes (the checks join on them)."""
    await con.execute(store.LOOKUPS[0])
    await con.copy_records_to_table("import_region", records=[(c,) for c in scope.record_regions()])
    await con.execute(store.LOOKUPS[1], codes.MIN_MONTH, codes.MAX_MONTH)
    await con.execute(store.LOOKUPS[2], list(SCHEME_ID), list(SCHEME_ID.values()))
    for sql in (*store.LOOKUPS[3:], store.ANALYZE_REGIONS):
        await con.execute(sql)


def _counted(src: Source, chunks: Iterator[bytes], progress: Progress, tick: Callable[[], None] | None,
             last: dict[str, bytes]) -> AsyncIterator[bytes]:
    async def lines() -> AsyncIterator[bytes]:
        for block in chunks:
            last["byte"] = block[-1:]
            progress.rows_read = src.lines_read
            if tick:
                tick()
            yield block
    return lines()


async def stage_csv(con: asyncpg.Connection, src: Source, kind: str, progress: Progress, root: str,
                    tick: Callable[[], None] | None = None) -> tuple[list[RowError], int, int, Written | None] | None:
    """The fast path: PostgreSQL's CSV parser splits the fields into text columns (no line
    split in SQL), and the check runs over them. None (everything it did rolled back) when
    the file needs the line path: a row with another number of fields than the header, a line
    PostgreSQL does not read as one CSV record, or any bad row at all, so that the reasons
    are found and worded exactly as the line path always has. Rows repeated or conflicting
    with stored ones are worded here (their lines are the file's lines: one record a line)."""
    sql = store.RECORDS[kind]
    _, chunks = src.body()
    if len(set(src.header)) != len(src.header):
        chunks.close()  # type: ignore[attr-defined]
        return None
    progress.phase = "reading"
    last = {"byte": b"\n"}
    await con.execute(store.SAVEPOINT_CSV)
    try:
        await con.execute(store.lines_csv(src.header))
        status = await con.copy_to_table("import_line", source=_counted(src, chunks, progress, tick, last),
                                          columns=src.header, format="csv", force_not_null=src.header)
        copied = int(status.rsplit(" ", 1)[1])
        if copied != src.lines_read + (0 if last["byte"] == b"\n" else 1):
            raise _LinePath
        progress.rows_read = copied
        progress.phase = "checking"
        written = await direct(con, sql, copied, root, progress)
        if written is not None:
            await con.execute(store.RELEASE_CSV)
            progress.rows_checked = progress.rows_written = written[0]
            return [], 0, copied, written
        await con.execute(sql.check_csv)
        fmt, unregistered, unknown_employer, total = await con.fetchrow(store.COUNT_PROBLEMS)
        if fmt or unregistered or unknown_employer:
            raise _LinePath
    except (_LinePath, asyncpg.DataError):
        await con.execute(store.ROLLBACK_CSV)
        chunks.close()  # type: ignore[attr-defined]
        return None
    await con.execute(store.RELEASE_CSV)
    progress.rows_checked = total
    # A transfer out refuses the person's later months here whether or not the key is new.
    rows = await con.fetch(store.TRANSFERRED_OUT)
    if rows:
        await number_lines(con)
        rows = await con.fetch(store.TRANSFERRED_OUT)
    return [RowError(r[0], r[1], r[2]) for r in rows], (rows[0][3] if rows else 0), total, None


async def direct(con: asyncpg.Connection, sql: store.RecordSql, copied: int, root: str,
                 progress: Progress) -> Written | None:
    """The direct path, for a file of months not stored yet (the first file of each month):
    the staged fields go through every check and straight into new partitions in one
    statement (``store._direct``), the summaries are added up from them, their indexes
    built by one sort each (a key repeated in the file fails the primary key) and they are
    attached, all under a savepoint. Returns the rows inserted and the file's months (in
    order), or None (everything it did rolled back) when the file is not of new months only
    or any row fails a check: the fast path's check then runs as before and words the reasons."""
    months = await con.fetch(store.FILE_MONTHS)
    if not copied or any(m is None for _, m in months):
        return None
    stored, new = await _split_months(con, sql.table, [m for _, m in months])
    if stored:
        return None
    before, after = store.new_months(sql.table, new)
    shadow = store.new_table(sql.table)
    await con.execute(store.SAVEPOINT_DIRECT)
    try:
        for q in before:
            await con.execute(q)
        status = await con.execute(sql.direct)
        n = int(status.rsplit(" ", 1)[1])
        if n != copied or await con.fetchval(store.transferred_out_in(shadow)):
            raise _LinePath
        progress.phase = "writing"
        await con.execute(sql.summarise_from(shadow), root)
        for q in after:
            await con.execute(q)
    except (_LinePath, asyncpg.DataError, asyncpg.UniqueViolationError, asyncpg.CheckViolationError):
        await con.execute(store.ROLLBACK_DIRECT)
        progress.phase = "checking"
        return None
    await con.execute(store.RELEASE_DIRECT)
    return n, new


async def number_lines(con: asyncpg.Connection) -> None:
    """The file's line of each staged record, when the fast path staged them (a report needs them)."""
    if await con.fetchval(store.NEEDS_LINES):
        await con.execute(store.NUMBER_LINES)


class _LinePath(Exception):
    """The fast path hands the file to the line path."""


async def stage(con: asyncpg.Connection, src: Source, progress: Progress,
                tick: Callable[[], None] | None = None) -> int:
    """COPY the file's data lines into ``import_line`` as they are; returns the line count."""
    _, chunks = src.body()
    await con.execute(store.LINES)
    progress.phase = "reading"
    last = {"byte": b"\n"}
    try:
        status = await con.copy_to_table("import_line", source=_counted(src, chunks, progress, tick, last),
                                          columns=["raw"], format="csv", delimiter="\x01", quote="\x02")
    except asyncpg.DataError as e:  # e.g. carriage returns mixed with newlines as line ends
        raise UserError(f"{src.name}: the file's lines cannot be read as CSV: {e.args[0] if e.args else e}"
                        + (f" ({e.context})" if getattr(e, "context", None) else "")) from None
    copied = int(status.rsplit(" ", 1)[1])
    expected = src.lines_read + (0 if last["byte"] == b"\n" else 1)
    if copied != expected:
        raise UserError(f"{src.name}: {expected} data lines, of which only {copied} could be read: a line "
                        "holding only '\\.', or carriage returns alone as line ends, stop the data; fix the file")
    progress.rows_read = copied
    return copied


async def check(con: asyncpg.Connection, src: Source, kind: str, scope: Scope,
                progress: Progress) -> tuple[list[RowError], int, int]:
    """Every check, set-based. Returns the first bad rows (by line), their count and the row count."""
    sql = store.RECORDS[kind]
    progress.phase = "checking"
    index = src.index
    await con.execute(sql.check, *[i + 1 for i in index], len(src.header))
    fmt, unregistered, unknown_employer, total = await con.fetchrow(store.COUNT_PROBLEMS)
    progress.rows_checked = total
    nbad = fmt + unregistered + unknown_employer
    errors: list[RowError] = []
    if nbad:
        errors = describe(await con.fetch(sql.problems), kind, index, len(src.header), scope)
        more, n = await keyed(con, kind)
        errors += more
        nbad += n
    else:
        # A transfer out refuses the person's later months here whether or not the key is new.
        rows = await con.fetch(store.TRANSFERRED_OUT)
        errors = [RowError(r[0], r[1], r[2]) for r in rows]
        nbad = rows[0][3] if rows else 0
    return sorted(errors, key=lambda e: e.line)[:MAX_REPORTED], nbad, total


async def keyed(con: asyncpg.Connection, kind: str) -> tuple[list[RowError], int]:
    """Keys repeated in the file, records differing from stored ones under the same key, and
    records of months after the person moved out by an insurance transfer."""
    sql = store.RECORDS[kind]
    await number_lines(con)
    errors: list[RowError] = []
    n = 0
    for q in (sql.repeated, sql.conflicting, store.TRANSFERRED_OUT):
        rows = await con.fetch(q)
        errors += [RowError(r[0], r[1], r[2]) for r in rows]
        n += rows[0][3] if rows else 0
    return errors, n


async def persons_held(con: asyncpg.Connection) -> dict[str, tuple[str, str]]:
    """The persons a change across nodes in progress holds (an insurance transfer between its
    checks and its apply), each with the change's id and kind."""
    return {r["id_number"]: (r["id"], r["kind"]) for r in await con.fetch(store.PERSONS_HELD)}


async def held_by_changes(src: Source, held: dict[str, tuple[str, str]]) -> tuple[list[RowError], int]:
    """The file's rows of persons a change across nodes in progress holds (a record written
    meanwhile would stay at the origin for a month the transfer hands over, or change what it
    moves), by line; and their count. Read from the file again, off the event loop, and only
    when some person is held (rarely: a transfer takes milliseconds, unless a node it waits on
    is down)."""
    return await asyncio.to_thread(_held_rows, src, held)


def _held_rows(src: Source, held: dict[str, tuple[str, str]]) -> tuple[list[RowError], int]:
    lines_read = src.lines_read  # the file is read again: the progress stays where the checks left it
    index, rows = src.rows()
    at = index[src.columns.index("id_number")]
    errors: list[RowError] = []
    n = 0
    for line, row in rows:
        who = row[at].strip().upper() if at < len(row) else ""
        if who in held:
            n += 1
            if len(errors) < MAX_REPORTED:
                change, kind = held[who]
                errors.append(RowError(line, "id_number", (
                    f"person {codes.mask_id(who)} is held by change {change} ({kind}) in progress: import this "
                    "file again once it has finished (a transfer's records from its month on belong to the "
                    "destination)")))
    src.lines_read = lines_read
    return errors, n


async def staged_months(con: asyncpg.Connection) -> list[date]:
    """The months of the staged records, in order."""
    return [r[0] for r in await con.fetch(store.STAGED_MONTHS)]


async def apply(pool: asyncpg.Pool, con: asyncpg.Connection, src: Source, kind: str, root: str,
                progress: Progress, months: list[date]) -> int:
    """Insert the checked records (of ``months``, from ``staged_months``) and update the
    summaries; returns how many were new."""
    sql = store.RECORDS[kind]
    progress.phase = "writing"
    await con.execute(store.SAVEPOINT)
    try:
        inserted = await _insert(con, sql, months)
        await con.execute(store.RELEASE_SAVEPOINT)
    except asyncpg.UniqueViolationError:
        # Some keys are repeated in the file or already stored: word the first, or drop
        # the records stored identically (importing a file again changes nothing).
        await con.execute(store.ROLLBACK_SAVEPOINT)
        errors, n = await keyed(con, kind)
        if n:
            raise ImportFailed(src.name, sorted(errors, key=lambda e: e.line)[:MAX_REPORTED], n) from None
        await con.execute(sql.drop_stored)
        inserted = await _insert(con, sql, await staged_months(con))
    progress.rows_written = inserted
    await con.execute(sql.summarise, root)
    return inserted


async def _split_months(con: asyncpg.Connection, table: str, months: list[date]) -> tuple[list[date], list[date]]:
    """``months`` that ``table`` has a partition for already, and the others (new)."""
    have = {r[0] for r in await con.fetch(store.PARTITIONS_OF, table)}
    return ([m for m in months if store.partition_name(table, m) in have],
            [m for m in months if store.partition_name(table, m) not in have])


async def _insert(con: asyncpg.Connection, sql: store.RecordSql, months: list[date]) -> int:
    """The staged records (of ``months``) into the kind's table: months it has a partition
    for by an insert, the others as new partitions attached whole (``store.new_months``)."""
    stored, new = await _split_months(con, sql.table, months)
    n = 0
    if stored:
        status = await con.execute(sql.insert_into(sql.table, bool(new)), *([stored] if new else []))
        n += int(status.rsplit(" ", 1)[1])
    if new:
        before, after = store.new_months(sql.table, new)
        for q in before:
            await con.execute(q)
        status = await con.execute(sql.insert_into(store.new_table(sql.table), bool(stored)),
                                   *([new] if stored else []))
        n += int(status.rsplit(" ", 1)[1])
        for q in after:
            await con.execute(q)
    return n


def describe(rows: list[Any], kind: str, index: list[int], width: int, scope: Scope) -> list[RowError]:
    """Word the rows the SQL flagged, with the row path's own checks (same column, same reason)."""
    ck = Checker(scope)
    columns = store.RECORDS[kind].columns
    row_check = ROW_CHECK[kind]
    out = []
    for line, raw, problem, unregistered, unknown_employer in rows:
        try:
            fields = next(csv.reader([raw]), []) if raw else []
        except csv.Error as e:  # e.g. a field over the csv module's limit of 128 KiB
            out.append(RowError(line, "*", f"cannot be read as one CSV record ({e})"))
            continue
        if problem == 0:
            out.append(RowError(line, "*", field_count(len(fields), width)))
            continue
        values = [fields[i] for i in index]
        if problem is not None:
            try:
                row_check(ck, values)
                # The SQL and the row checks disagree: say which column, never pass the row (an ID
                # number shown masked, as in every other report).
                col = columns[min(problem, len(columns)) - 1]
                shown = values[columns.index(col)]
                if col == "id_number":
                    shown = codes.mask_id(shown.strip())
                out.append(RowError(line, col, f"value {shown!r} is not accepted here: write it with ASCII digits "
                                               "and letters, and no spaces other than plain ones around it"))
            except Bad as b:
                out.append(RowError(line, b.column, b.reason))
            continue
        if unregistered:
            out.append(RowError(line, "id_number", f"person {codes.mask_id(values[0].strip().upper())} "
                                                   "is not registered on this node: import persons first"))
        if unknown_employer:
            out.append(RowError(line, "employer_credit_code", f"employer {values[4].strip().upper()} "
                                                              "is not registered on this node: import employers first"))
    return out
