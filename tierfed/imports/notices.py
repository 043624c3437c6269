"""Warnings: what an import reports without refusing the file.

Each check is an async function of the import's connection and kind, run inside
the import's transaction once every blocking check has passed and before the
rows are applied (the records' staging table, ``import_staging``, holds the
checked rows then; except for a records file the direct path took, whose rows are
already in their new partitions, uncommitted, and which has no ``import_staging``:
a check of records would read those, see records.direct). It returns messages, which go to the report's ``warnings``,
the CLI's output, the HTTP answer and the history. Register one by appending it
to ``CHECKS``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

WarningCheck = Callable[[asyncpg.Connection, str], Awaitable[list[str]]]
CHECKS: list[WarningCheck] = []


async def collect(con: asyncpg.Connection, kind: str) -> list[str]:
    out: list[str] = []
    for check in CHECKS:
        out += await check(con, kind)
    return out
