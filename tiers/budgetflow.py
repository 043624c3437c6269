"""Budgets: the write side. Every step in one transaction on the node holding the pool,
with the budget's row locked (``for update``), so that two steps on one budget apply one
after the other, each against the state the other left; a refused step writes nothing.

Each step first holds the pool's row (``for share``) and checks there that the pool still
covers the year: a raise closing the pool waits for the step to commit, or the step waits
for the raise and is refused, so no step moves a budget that counts nowhere. A raise across
nodes closes the pool only when told its decision: while it is in progress (its reservation
over the pool's scheme and region), a step is a CONFLICT.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from tierfed.errors import bad_input, conflict

from . import budgetstore as bs
from .budgets import EDITABLE, FROZEN, RETURNERS, STEPS, covers, not_covered
from .budgetstore import BudgetRec

HEADCOUNTS = ("expectedInsured", "expectedContributors", "expectedBeneficiaries")


@dataclass(frozen=True)
class Who:
    """Whoever takes a step, as the history records them."""

    sub: str
    roles: Sequence[str]


async def create(pool: asyncpg.Pool, rec: BudgetRec, who: Who) -> BudgetRec:
    """A new DRAFT; CONFLICT when the pool has a budget for the year already."""
    async with pool.acquire() as con, con.transaction():
        await _pool_covers(con, rec.pool_id, rec.year)
        prior = await bs.locked(con, rec.pool_id, rec.year)
        if prior is not None:
            raise conflict(f"pool {rec.pool_id} already has a budget for {rec.year} ({prior.state}): edit it with "
                           "editBudget")
        try:
            await bs.insert(con, rec)
        except asyncpg.UniqueViolationError:
            # Started at the same moment by another request (no row to lock yet): it went first.
            raise conflict(f"pool {rec.pool_id} already has a budget for {rec.year}, started just now by another "
                           "request: edit it with editBudget") from None
        expected = [rec.expected_insured, rec.expected_contributors, rec.expected_beneficiaries]
        await bs.record(con, rec.pool_id, rec.year, "STARTED", None, "DRAFT", who.sub, who.roles, None,
                        {"basis": rec.basis, "lines": {k: [None, str(v)] for k, v in rec.lines.items()},
                         "expected": expected})
        return await _reread(con, rec.pool_id, rec.year)


async def edit(pool: asyncpg.Pool, pool_id: str, year: int, lines: dict[str, Decimal],
               expected: tuple[int | None, int | None, int | None], who: Who) -> BudgetRec:
    """New amounts for the categories given (others unchanged) and headcounts; only a DRAFT."""
    async with pool.acquire() as con, con.transaction():
        await _pool_covers(con, pool_id, year)
        cur = await _current(con, pool_id, year)
        if cur.state != EDITABLE:
            raise bad_input(_not_editable(pool_id, year, cur), argument="poolId", state=cur.state)
        changes: dict[str, Any] = {"lines": {k: [str(cur.amount(k)), str(v)] for k, v in lines.items()
                                             if cur.amount(k) != v}}
        old = (cur.expected_insured, cur.expected_contributors, cur.expected_beneficiaries)
        heads = (old[0] if expected[0] is None else expected[0], old[1] if expected[1] is None else expected[1],
                 old[2] if expected[2] is None else expected[2])
        for n, o, v in zip(HEADCOUNTS, old, heads):
            if o != v:
                changes[n] = [o, v]
        await bs.set_lines(con, pool_id, year, lines)
        await bs.set_headcounts(con, pool_id, year, heads)
        await bs.record(con, pool_id, year, "EDITED", cur.state, cur.state, who.sub, who.roles, None, changes)
        return await _reread(con, pool_id, year)


async def advance(pool: asyncpg.Pool, pool_id: str, year: int, to: str, action: str, who: Who) -> BudgetRec:
    """SUBMITTED, REVIEWED or APPROVED: the next state, only from the state before it."""
    frm = STEPS[to][0]
    async with pool.acquire() as con, con.transaction():
        await _pool_covers(con, pool_id, year)
        cur = await _current(con, pool_id, year)
        if cur.state != frm:
            raise bad_input(f"{action} moves a {frm} budget to {to}; the {year} budget of pool {pool_id} is "
                            f"{cur.state}" + (" and frozen" if cur.state == FROZEN else ""),
                            argument="poolId", state=cur.state)
        await bs.move(con, pool_id, year, to, None)
        await bs.record(con, pool_id, year, to, frm, to, who.sub, who.roles, None, {})
        return await _reread(con, pool_id, year)


async def give_back(pool: asyncpg.Pool, pool_id: str, year: int, reason: str, who: Who,
                    may: Callable[[str, str], None]) -> BudgetRec:
    """Back to DRAFT with a reason; ``may(role, action)`` refuses a caller without the role the
    stored state asks for (RETURNERS), raising before anything is written."""
    async with pool.acquire() as con, con.transaction():
        await _pool_covers(con, pool_id, year)
        cur = await _current(con, pool_id, year)
        needs = RETURNERS.get(cur.state)
        if needs is None:
            raise bad_input(f"returnBudget returns a SUBMITTED or REVIEWED budget; the {year} budget of pool "
                            f"{pool_id} is {cur.state}" + (" and frozen" if cur.state == FROZEN else ""),
                            argument="poolId", state=cur.state)
        may(needs, f"returning a {cur.state} budget")
        await bs.move(con, pool_id, year, "DRAFT", reason)
        await bs.record(con, pool_id, year, "RETURNED", cur.state, "DRAFT", who.sub, who.roles, reason, {})
        return await _reread(con, pool_id, year)


def _not_editable(pool_id: str, year: int, cur: BudgetRec) -> str:
    if cur.state == FROZEN:
        return f"the {year} budget of pool {pool_id} is APPROVED and frozen: it cannot change any more"
    return (f"the {year} budget of pool {pool_id} is {cur.state}: only a DRAFT can be edited "
            "(a reviewer or approver can return it to DRAFT with a reason)")


async def _pool_covers(con: asyncpg.Connection, pool_id: str, year: int) -> None:
    span = await bs.pool_span(con, pool_id)
    if span is None:
        raise bad_input(f"pool {pool_id} does not exist on this node", argument="poolId")
    opened, closed, raising = span
    if not covers(opened, closed, year):
        raise bad_input(not_covered(pool_id, opened, closed, year), argument="year")
    if raising is not None:
        raise conflict(f"raise {raising} in progress across nodes covers pool {pool_id} (it may close it): try "
                       "again when it has finished", change=raising)


async def _current(con: asyncpg.Connection, pool_id: str, year: int) -> BudgetRec:
    cur = await bs.locked(con, pool_id, year)
    if cur is None:
        raise bad_input(f"pool {pool_id} has no budget for {year}: start one with startBudget", argument="poolId")
    return cur


async def _reread(con: asyncpg.Connection, pool_id: str, year: int) -> BudgetRec:
    rec = await bs.locked(con, pool_id, year)
    assert rec is not None
    return rec
