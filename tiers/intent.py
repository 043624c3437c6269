"""The coordinator's intent, shared by every kind of change across nodes (``tiers.changes``,
``tiers.transfers``, ``tiers.settlement``): one transaction that checks this node's part and
records the change, its participants and its reservations, committed only when it is no dry
run, and rolled back whole on any error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from .faults import crash_point

# The intent need not be flushed: lost in a crash, the participants asking about the change
# hear UNKNOWN and release (no decision can have been made).
ASYNC_COMMIT = "set local synchronous_commit = off"


@asynccontextmanager
async def intent(pool: asyncpg.Pool, dry_run: bool) -> AsyncIterator[asyncpg.Connection]:
    """A connection in the intent's transaction; after it, the crash point of a recorded intent."""
    async with pool.acquire() as con:
        tr = con.transaction()
        await tr.start()
        try:
            await con.execute(ASYNC_COMMIT)
            yield con
        except BaseException:
            await tr.rollback()
            raise
        if dry_run:
            await tr.rollback()
        else:
            await tr.commit()
    if not dry_run:
        crash_point("coordinator-after-intent")
