"""The transactions of a change's steps, shared by every kind of change across nodes
(``tiers.changes``, ``tiers.transfers``, ``tiers.settlement``); and the coordinator's intent:
one transaction that checks this node's part and
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
async def step(pool: asyncpg.Pool, dry_run: bool, flushed: bool = True) -> AsyncIterator[asyncpg.Connection]:
    """A connection in one transaction of a change's step: committed, or with ``dry_run`` rolled
    back after doing everything; rolled back whole on any error. ``flushed`` false: committed
    without waiting for the disk (an intent only, see ASYNC_COMMIT)."""
    async with pool.acquire() as con:
        tr = con.transaction()
        await tr.start()
        try:
            if not flushed:
                await con.execute(ASYNC_COMMIT)
            yield con
        except BaseException:
            await tr.rollback()
            raise
        if dry_run:
            await tr.rollback()
        else:
            await tr.commit()


@asynccontextmanager
async def intent(pool: asyncpg.Pool, dry_run: bool, set_async: bool = True) -> AsyncIterator[asyncpg.Connection]:
    """A connection in the intent's transaction; after it, the crash point of a recorded intent.
    ``set_async`` false: the caller's first statement makes the commit not wait for the flush
    (``set_config('synchronous_commit', 'off', true)``, saving a round trip)."""
    async with step(pool, dry_run, flushed=not set_async) as con:
        yield con
    if not dry_run:
        crash_point("coordinator-after-intent")
