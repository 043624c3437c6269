"""Budgets in the node's own database: constant SQL, rows become dataclasses here.

A budget belongs to one pool and one year and lives on the node that holds the
pool. Writes lock the budget's row (``for update``) so two steps on one budget
are applied one after the other, each against the state the other left.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from .changestore import overlapping_region
from .figures import FUND_CATEGORIES, ZERO

STATES = ("DRAFT", "SUBMITTED", "REVIEWED", "APPROVED")


@dataclass(frozen=True, slots=True)
class BudgetRec:
    pool_id: str
    year: int
    scheme: int
    region_code: str
    state: str
    expected_insured: int
    expected_contributors: int
    expected_beneficiaries: int
    basis: dict[str, Any] | None
    returned_reason: str | None
    lines: dict[str, Decimal] = field(default_factory=dict)

    def amount(self, category: str) -> Decimal:
        return self.lines.get(category, ZERO)


@dataclass(frozen=True, slots=True)
class StepRec:
    action: str
    from_state: str | None
    to_state: str
    caller: str
    roles: tuple[str, ...]
    reason: str | None
    changes: dict[str, Any]
    at: datetime


@dataclass(frozen=True, slots=True)
class PartRow:
    """A pool open in the year inside a region's subtree, and its budget if it has one."""

    pool_id: str
    scheme: int
    region_code: str
    opened_from: date
    closed_after: date | None
    state: str | None
    expected: tuple[int, int, int]
    lines: dict[str, Decimal]


BUDGET_COLUMNS = """b.pool_id, b.year, b.scheme, b.region_code, b.state, b.expected_insured, b.expected_contributors,
       b.expected_beneficiaries, b.basis, b.returned_reason,
       coalesce((select array_agg(l.category order by l.category) from budget_line l
                 where l.pool_id = b.pool_id and l.year = b.year), '{}') as categories,
       coalesce((select array_agg(l.amount order by l.category) from budget_line l
                 where l.pool_id = b.pool_id and l.year = b.year), '{}') as amounts"""

BUDGETS = f"""
select k.i, {BUDGET_COLUMNS}
from unnest($1::text[], $2::smallint[]) with ordinality as k (pool_id, year, i)
join budget b on b.pool_id = k.pool_id and b.year = k.year
"""

BUDGET_FOR_UPDATE = f"select {BUDGET_COLUMNS} from budget b where b.pool_id = $1 and b.year = $2 for update of b"

# The months a pool covers, its row held against a raise closing it until the step commits; and
# a raise across nodes in progress over the pool's scheme and an overlapping subtree (reserved
# from its prepare to its decision: it closes the pool only when told, so the row says nothing yet).
POOL_SPAN_FOR_SHARE = f"""
select p.opened_from, p.closed_after,
       (select c.id from change_reservation r join change c on c.id = r.change_id
        where c.kind = 'raisePoolingLevel' and r.scheme = p.scheme and {overlapping_region("p.region_code")}
        limit 1) as raising
from pool p where p.id = $1 for share of p
"""

STEPS = """
select k.i, s.action, s.from_state, s.to_state, s.caller, s.roles, s.reason, s.changes, s.at
from unnest($1::text[], $2::smallint[]) with ordinality as k (pool_id, year, i)
join budget_step s on s.pool_id = k.pool_id and s.year = k.year
order by k.i, s.id
"""

# The pools open in at least one month of a year (between $2 and $3) inside each region's
# subtree that this node holds, with their budget of the year and its lines.
PARTS = """
select k.i, p.id, p.scheme, p.region_code, p.opened_from, p.closed_after, b.state,
       b.expected_insured, b.expected_contributors, b.expected_beneficiaries,
       coalesce((select array_agg(l.category order by l.category) from budget_line l
                 where l.pool_id = b.pool_id and l.year = b.year), '{}') as categories,
       coalesce((select array_agg(l.amount order by l.category) from budget_line l
                 where l.pool_id = b.pool_id and l.year = b.year), '{}') as amounts
from unnest($1::text[], $2::smallint[]) with ordinality as k (region, year, i)
join region_closure rc on rc.ancestor = k.region
join pool p on p.region_code = rc.descendant
           and p.opened_from <= make_date(k.year, 12, 1)
           and (p.closed_after is null or p.closed_after >= make_date(k.year, 1, 1))
left join budget b on b.pool_id = p.id and b.year = k.year
order by k.i, p.id
"""

INSERT = """
insert into budget (pool_id, year, scheme, region_code, expected_insured, expected_contributors,
                    expected_beneficiaries, basis)
values ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)
"""

UPSERT_LINES = """
insert into budget_line (pool_id, year, category, amount)
select $1, $2, c, a from unnest($3::text[], $4::numeric[]) as x (c, a)
on conflict (pool_id, year, category) do update set amount = excluded.amount
"""

UPDATE_HEADCOUNTS = """
update budget set expected_insured = $3, expected_contributors = $4, expected_beneficiaries = $5, updated_at = now()
where pool_id = $1 and year = $2
"""

MOVE = """
update budget set state = $3, returned_reason = $4, updated_at = now() where pool_id = $1 and year = $2
"""

STEP = """
insert into budget_step (pool_id, year, action, from_state, to_state, caller, roles, reason, changes)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)
"""


def _budget(r: asyncpg.Record) -> BudgetRec:
    return BudgetRec(r["pool_id"], r["year"], r["scheme"], r["region_code"], r["state"], r["expected_insured"],
                     r["expected_contributors"], r["expected_beneficiaries"],
                     json.loads(r["basis"]) if r["basis"] is not None else None, r["returned_reason"],
                     dict(zip(r["categories"], r["amounts"])))


async def budgets(pool: asyncpg.Pool, keys: Sequence[tuple[str, int]]) -> list[BudgetRec | None]:
    """Budgets by (pool id, year), in key order; None where there is none. One statement."""
    out: list[BudgetRec | None] = [None] * len(keys)
    for r in await pool.fetch(BUDGETS, [k[0] for k in keys], [k[1] for k in keys]):
        out[r["i"] - 1] = _budget(r)
    return out


async def steps(pool: asyncpg.Pool, keys: Sequence[tuple[str, int]]) -> list[list[StepRec]]:
    """Every step of each budget, oldest first. One statement."""
    out: list[list[StepRec]] = [[] for _ in keys]
    for r in await pool.fetch(STEPS, [k[0] for k in keys], [k[1] for k in keys]):
        out[r["i"] - 1].append(StepRec(r["action"], r["from_state"], r["to_state"], r["caller"], tuple(r["roles"]),
                                       r["reason"], json.loads(r["changes"]), r["at"]))
    return out


async def parts(pool: asyncpg.Pool, keys: Sequence[tuple[str, int]]) -> list[list[PartRow]]:
    """Per (region, year): this node's pools open in the year inside the region's subtree, with
    their budgets. One statement."""
    out: list[list[PartRow]] = [[] for _ in keys]
    rows = await pool.fetch(PARTS, [k[0] for k in keys], [k[1] for k in keys])
    for r in rows:
        lines = dict(zip(r["categories"], r["amounts"]))
        out[r["i"] - 1].append(PartRow(
            r["id"], r["scheme"], r["region_code"], r["opened_from"], r["closed_after"], r["state"],
            (r["expected_insured"] or 0, r["expected_contributors"] or 0, r["expected_beneficiaries"] or 0), lines))
    return out


async def pool_span(con: asyncpg.Connection, pool_id: str) -> tuple[date, date | None, str | None] | None:
    """The first and last month of a pool (None: still open) and the id of a raise across nodes
    in progress over it (None: none), or None when there is no such pool; the pool's row stays
    locked ``for share`` to the end of the transaction, so that a raise closing the pool here
    waits for the step, or the step sees the pool closed."""
    row = await con.fetchrow(POOL_SPAN_FOR_SHARE, pool_id)
    return (row["opened_from"], row["closed_after"], row["raising"]) if row is not None else None


async def locked(con: asyncpg.Connection, pool_id: str, year: int) -> BudgetRec | None:
    row = await con.fetchrow(BUDGET_FOR_UPDATE, pool_id, year)
    return _budget(row) if row is not None else None


async def insert(con: asyncpg.Connection, rec: BudgetRec) -> None:
    await con.execute(INSERT, rec.pool_id, rec.year, rec.scheme, rec.region_code, rec.expected_insured,
                      rec.expected_contributors, rec.expected_beneficiaries,
                      json.dumps(rec.basis) if rec.basis is not None else None)
    await set_lines(con, rec.pool_id, rec.year, rec.lines)


async def set_lines(con: asyncpg.Connection, pool_id: str, year: int, lines: dict[str, Decimal]) -> None:
    cats = [c for c in FUND_CATEGORIES if c in lines]
    if cats:
        await con.execute(UPSERT_LINES, pool_id, year, cats, [lines[c] for c in cats])


async def set_headcounts(con: asyncpg.Connection, pool_id: str, year: int, expected: tuple[int, int, int]) -> None:
    await con.execute(UPDATE_HEADCOUNTS, pool_id, year, *expected)


async def move(con: asyncpg.Connection, pool_id: str, year: int, state: str, reason: str | None) -> None:
    await con.execute(MOVE, pool_id, year, state, reason)


async def record(con: asyncpg.Connection, pool_id: str, year: int, action: str, from_state: str | None,
                 to_state: str, caller: str, roles: Sequence[str], reason: str | None,
                 changes: dict[str, Any]) -> None:
    await con.execute(STEP, pool_id, year, action, from_state, to_state, caller, sorted(roles), reason,
                      json.dumps(changes, ensure_ascii=False))
