"""The node's own database: every SQL statement tierfed runs for reads, as constant text.

Records become typed dataclasses here; nothing above this module sees a row.
Batch reads take arrays (``unnest(...) with ordinality``) so that one loader
batch is one statement whatever its size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import asyncpg

from .figures import BOOKED, Figures, Summary
from .tree import RegionRec
from .vocabulary import fund_flow_sql


@dataclass(frozen=True, slots=True)
class AgencyRec:
    code: str
    name: str
    department: int
    kind: int
    region_code: str
    parent_code: str | None
    vertically_managed: bool


@dataclass(frozen=True, slots=True)
class PoolRec:
    id: str
    scheme: int
    region_code: str
    opened_from: date
    closed_after: date | None
    opening_balance: Decimal
    successor_id: str | None
    # Set for a pool that exists only in a dry run's answer: its opening balance is
    # fixed and its predecessors are carried along.
    virtual: bool = False
    predecessor_recs: tuple[PoolRec, ...] = ()
    # The child node holding a pool this node knows of only as a predecessor (tiers/changes.py).
    held_by: str | None = None


@dataclass(frozen=True, slots=True)
class StatementRow:
    scheme: int
    months: int
    employer: Decimal
    individual: Decimal
    individual_account: Decimal
    benefits_paid: Decimal
    # The months with a contribution record, bit 0 for January: merged across nodes by "or".
    mask: int = 0


# ---------------------------------------------------------------- the tree

TREE = "select code, name, tier, parent_code, ancestors from region order by code"

REBUILD_CLOSURE = """
with recursive c (ancestor, descendant, depth) as (
    select code, code, 0 from region
    union all
    select r.parent_code, c.descendant, c.depth + 1
    from c join region r on r.code = c.ancestor
    where r.parent_code is not null
)
insert into region_closure (ancestor, descendant, depth) select ancestor, descendant, depth from c
"""

REBUILD_ANCESTORS = """
update region r set ancestors = coalesce(a.codes, '{}')
from (select code from region) x
left join lateral (
    select array_agg(rc.ancestor order by rc.depth desc) as codes
    from region_closure rc where rc.descendant = x.code and rc.depth > 0
) a on true
where r.code = x.code and r.ancestors is distinct from coalesce(a.codes, '{}')
"""


async def rebuild_tree(con: asyncpg.Connection) -> None:
    """Recompute the closure and every region's ancestors after the tree changed."""
    await con.execute("delete from region_closure")
    await con.execute(REBUILD_CLOSURE)
    await con.execute(REBUILD_ANCESTORS)


async def load_tree(con: asyncpg.Connection | asyncpg.Pool) -> list[RegionRec]:
    return [RegionRec(r["code"], r["name"], r["tier"], r["parent_code"], tuple(r["ancestors"]))
            for r in await con.fetch(TREE)]


# ---------------------------------------------------------------- reads for loaders

REGIONS = "select code, name, tier, parent_code, ancestors from region where code = any($1::text[])"

AGENCIES = """
select code, name, department, kind, region_code, parent_code, vertically_managed
from agency where code = any($1::text[])
"""

AGENCIES_BY_REGION = """
select code, name, department, kind, region_code, parent_code, vertically_managed
from agency where region_code = any($1::text[]) order by code
"""

AGENCIES_BY_PARENT = """
select code, name, department, kind, region_code, parent_code, vertically_managed
from agency where parent_code = any($1::text[]) order by code
"""

# The summary columns of the categories booked from fund_flows files, in BOOKED order.
BOOKED_COLUMNS = ", ".join(f"s.{c.lower()}" for c in BOOKED)
BOOKED_SUMS = ", ".join(f"sum(s.{c.lower()})" for c in BOOKED)

SUMMARIES = f"""
select k.i, s.month, s.scheme, s.contributions, s.employer, s.individual,
       s.individual_account, s.base, s.benefits, s.benefits_paid, s.transfers_in, s.transfers_out, {BOOKED_COLUMNS}
from unnest($1::text[], $2::date[], $3::date[]) with ordinality as k (region, first, last, i)
join summary s on s.region_code = k.region and s.month between k.first and k.last
"""

# The same, the period added up in SQL: per scheme, one row for the last month (the
# headcounts of the contract are those of the last month) and one for all the months
# before it, keyed by the period's first month. Totals over the period need no more.
SUMMARIES_COMPACT = f"""
select k.i, case when s.month = k.last then k.last else k.first end as month, s.scheme,
       sum(s.contributions)::bigint, sum(s.employer), sum(s.individual), sum(s.individual_account),
       sum(s.base), sum(s.benefits)::bigint, sum(s.benefits_paid), sum(s.transfers_in), sum(s.transfers_out),
       {BOOKED_SUMS}
from unnest($1::text[], $2::date[], $3::date[]) with ordinality as k (region, first, last, i)
join summary s on s.region_code = k.region and s.month between k.first and k.last
group by k.i, 2, s.scheme
"""

STATEMENT_CONTRIBUTIONS = """
select k.i, c.scheme, count(*) as months, bit_or(1 << (extract(month from c.month)::int - 1)) as mask,
       sum(c.employer_amount) as employer,
       sum(c.individual_amount) as individual, sum(c.individual_account_amount) as individual_account
from unnest($1::text[], $2::date[], $3::date[]) with ordinality as k (id, first, last, i)
join contribution c on c.id_number = k.id and c.month between k.first and k.last
group by k.i, c.scheme
"""

STATEMENT_BENEFITS = """
select k.i, b.scheme, sum(b.amount) as paid
from unnest($1::text[], $2::date[], $3::date[]) with ordinality as k (id, first, last, i)
join benefit b on b.id_number = k.id and b.month between k.first and k.last
group by k.i, b.scheme
"""

POOL_COLUMNS = "p.id, p.scheme, p.region_code, p.opened_from, p.closed_after, p.opening_balance, p.successor_id"

POOLS = f"select {POOL_COLUMNS} from pool p where p.id = any($1::text[])"

POOLS_BY_SUCCESSOR = f"select {POOL_COLUMNS} from pool p where p.successor_id = any($1::text[]) order by p.region_code, p.id"

POOLS_COVERING = f"""
select k.i, {POOL_COLUMNS}
from unnest($1::text[], $2::smallint[], $3::date[]) with ordinality as k (region, scheme, at, i)
join region_closure rc on rc.descendant = k.region
join pool p on p.region_code = rc.ancestor and p.scheme = k.scheme
           and p.opened_from <= k.at and (p.closed_after is null or p.closed_after >= k.at)
"""

POOLS_AT = f"""
select {POOL_COLUMNS} from pool p
where p.opened_from <= $1 and (p.closed_after is null or p.closed_after >= $1)
order by p.scheme, p.region_code
"""

# A pool's live opening balance: the opening balances of the pools its chain
# started from, plus the flows (pooled contributions minus benefits) of every
# predecessor over the months it covered. Late records for a predecessor's
# months change its flows and so, through this, its successor's opening.
POOL_OPENINGS = f"""
with recursive chain (root, id) as (
    select p.id, p.id from pool p where p.id = any($1::text[])
    union all
    select c.root, q.id from chain c join pool q on q.successor_id = c.id
), members as (
    select c.root, q.id, q.scheme, q.region_code, q.opened_from, q.closed_after, q.opening_balance,
           c.id <> c.root as is_predecessor,
           not exists (select 1 from pool x where x.successor_id = q.id) as is_origin
    from chain c join pool q on q.id = c.id
)
select m.root,
       coalesce(sum(m.opening_balance) filter (where m.is_origin), 0)
       + coalesce(sum(f.flow) filter (where m.is_predecessor), 0) as opening
from members m
left join lateral (
    select sum({fund_flow_sql("s")}) as flow
    from summary s
    where m.is_predecessor and s.region_code = m.region_code and s.scheme = m.scheme
      and s.month between m.opened_from and m.closed_after
) f on true
group by m.root
"""


def _agency(r: asyncpg.Record) -> AgencyRec:
    return AgencyRec(r["code"], r["name"], r["department"], r["kind"], r["region_code"],
                     r["parent_code"], r["vertically_managed"])


def _pool(r: asyncpg.Record) -> PoolRec:
    return PoolRec(r["id"], r["scheme"], r["region_code"], r["opened_from"], r["closed_after"],
                   r["opening_balance"], r["successor_id"])


class Store:
    """Batch reads over one node's pool; each method is one statement."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def regions(self, codes: Sequence[str]) -> dict[str, RegionRec]:
        rows = await self.pool.fetch(REGIONS, list(codes))
        return {r["code"]: RegionRec(r["code"], r["name"], r["tier"], r["parent_code"], tuple(r["ancestors"]))
                for r in rows}

    async def agencies(self, codes: Sequence[str]) -> dict[str, AgencyRec]:
        return {r["code"]: _agency(r) for r in await self.pool.fetch(AGENCIES, list(codes))}

    async def agencies_by_region(self, regions: Sequence[str]) -> dict[str, list[AgencyRec]]:
        out: dict[str, list[AgencyRec]] = {c: [] for c in regions}
        for r in await self.pool.fetch(AGENCIES_BY_REGION, list(regions)):
            out[r["region_code"]].append(_agency(r))
        return out

    async def agencies_by_parent(self, parents: Sequence[str]) -> dict[str, list[AgencyRec]]:
        out: dict[str, list[AgencyRec]] = {c: [] for c in parents}
        for r in await self.pool.fetch(AGENCIES_BY_PARENT, list(parents)):
            out[r["parent_code"]].append(_agency(r))
        return out

    async def summaries(self, keys: Sequence[tuple[str, date, date, bool]]) -> list[Summary]:
        """Local summaries of (region, first month, last month, compact) keys, in key order:
        month by month, or compact (see SUMMARIES_COMPACT). At most one statement of each."""
        out = [Summary() for _ in keys]
        for compact, sql in ((False, SUMMARIES), (True, SUMMARIES_COMPACT)):
            idx = [i for i, k in enumerate(keys) if k[3] is compact]
            if not idx:
                continue
            rows = await self.pool.fetch(sql, [keys[i][0] for i in idx], [keys[i][1] for i in idx],
                                         [keys[i][2] for i in idx])
            # (key, month, scheme) is unique in the answer: every row is new to its Summary.
            for i, month, scheme, c, e, ind, acc, base, b, paid, t_in, t_out, *booked in rows:
                out[idx[i - 1]].rows[(month, scheme)] = Figures(c, e, ind, acc, base, b, paid, t_in, t_out, booked)
        return out

    async def statements(self, keys: Sequence[tuple[str, int]]) -> list[dict[int, StatementRow]]:
        """Per (ID number, year): the person's records summed per scheme."""
        ids = [k[0] for k in keys]
        firsts = [date(k[1], 1, 1) for k in keys]
        lasts = [date(k[1], 12, 1) for k in keys]
        out: list[dict[int, StatementRow]] = [{} for _ in keys]
        async with self.pool.acquire() as con:
            for r in await con.fetch(STATEMENT_CONTRIBUTIONS, ids, firsts, lasts):
                out[r["i"] - 1][r["scheme"]] = StatementRow(
                    r["scheme"], r["months"], r["employer"], r["individual"], r["individual_account"], Decimal("0.00"),
                    r["mask"])
            for r in await con.fetch(STATEMENT_BENEFITS, ids, firsts, lasts):
                cur = out[r["i"] - 1].get(r["scheme"])
                z = Decimal("0.00")
                out[r["i"] - 1][r["scheme"]] = StatementRow(
                    r["scheme"], cur.months if cur else 0, cur.employer if cur else z,
                    cur.individual if cur else z, cur.individual_account if cur else z, r["paid"],
                    cur.mask if cur else 0)
        return out

    async def pools(self, ids: Sequence[str]) -> dict[str, PoolRec]:
        return {r["id"]: _pool(r) for r in await self.pool.fetch(POOLS, list(ids))}

    async def pools_by_successor(self, ids: Sequence[str]) -> dict[str, list[PoolRec]]:
        out: dict[str, list[PoolRec]] = {i: [] for i in ids}
        for r in await self.pool.fetch(POOLS_BY_SUCCESSOR, list(ids)):
            out[r["successor_id"]].append(_pool(r))
        return out

    async def pools_covering(self, keys: Sequence[tuple[str, int, date]]) -> list[PoolRec | None]:
        out: list[PoolRec | None] = [None] * len(keys)
        rows = await self.pool.fetch(POOLS_COVERING, [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys])
        for r in rows:
            out[r["i"] - 1] = _pool(r)
        return out

    async def pools_at(self, at: date) -> list[PoolRec]:
        return [_pool(r) for r in await self.pool.fetch(POOLS_AT, at)]

    async def pool_openings(self, ids: Sequence[str]) -> dict[str, Decimal]:
        return {r["root"]: r["opening"] for r in await self.pool.fetch(POOL_OPENINGS, list(ids))}


# Raw figures per (region, month, scheme) for every region from the node's root down,
# full-outer-joined with the summaries; any difference is a row here.
VERIFY = """
with raw_c as (
    select rc.ancestor as region_code, c.month, c.scheme, count(*) as contributions,
           sum(c.employer_amount) as employer, sum(c.individual_amount) as individual,
           sum(c.individual_account_amount) as individual_account, sum(c.base) as base
    from contribution c join region_closure rc on rc.descendant = c.region_code
    join region_closure top on top.ancestor = $1 and top.descendant = rc.ancestor
    group by 1, 2, 3
), raw_b as (
    select rc.ancestor as region_code, b.month, b.scheme, count(*) as benefits, sum(b.amount) as benefits_paid
    from benefit b join region_closure rc on rc.descendant = b.region_code
    join region_closure top on top.ancestor = $1 and top.descendant = rc.ancestor
    group by 1, 2, 3
), raw as (
    select coalesce(c.region_code, b.region_code) as region_code, coalesce(c.month, b.month) as month,
           coalesce(c.scheme, b.scheme) as scheme,
           coalesce(c.contributions, 0) as contributions, coalesce(c.employer, 0) as employer,
           coalesce(c.individual, 0) as individual, coalesce(c.individual_account, 0) as individual_account,
           coalesce(c.base, 0) as base, coalesce(b.benefits, 0) as benefits,
           coalesce(b.benefits_paid, 0) as benefits_paid
    from raw_c c full join raw_b b using (region_code, month, scheme)
)
select coalesce(r.region_code, s.region_code) as region_code, coalesce(r.month, s.month) as month,
       coalesce(r.scheme, s.scheme) as scheme
from raw r full join summary s using (region_code, month, scheme)
where (coalesce(r.contributions, 0), coalesce(r.employer, 0), coalesce(r.individual, 0),
       coalesce(r.individual_account, 0), coalesce(r.base, 0), coalesce(r.benefits, 0),
       coalesce(r.benefits_paid, 0))
   is distinct from
      (coalesce(s.contributions, 0), coalesce(s.employer, 0), coalesce(s.individual, 0),
       coalesce(s.individual_account, 0), coalesce(s.base, 0), coalesce(s.benefits, 0),
       coalesce(s.benefits_paid, 0))
order by 1, 2, 3
limit 100
"""


async def verify_summaries(con: asyncpg.Connection | asyncpg.Pool, root: str) -> tuple[int, list[tuple[str, str, int]]]:
    """``tierfed verify``: (summary rows checked, the (region, month, scheme) keys whose summary differs
    from the same figures computed from the raw records)."""
    bad = await con.fetch(VERIFY, root)
    n = await con.fetchval("select count(*) from summary")
    return int(n), [(r["region_code"], r["month"].isoformat()[:7], r["scheme"]) for r in bad]


PII_AUDIT = """
insert into pii_audit (caller, scope, id_number, operation)
select $1, $2, unnest($3::text[]), unnest($4::text[])
"""


async def record_pii_reads(pool: asyncpg.Pool, caller: str, scope: str, reads: Sequence[tuple[str, str]]) -> None:
    """One audit row per unmasked ID number read: (ID number, operation) pairs of one request."""
    await pool.execute(PII_AUDIT, caller, scope, [r[0] for r in reads], [r[1] for r in reads])


async def has_persons(pool: asyncpg.Pool) -> bool:
    return bool(await pool.fetchval("select exists (select 1 from person)"))


PII_AUDIT_LOG = """
select a.id, a.at, a.caller, a.scope, a.id_number, a.operation from pii_audit a
where ($1::text is null or a.id_number = $1) order by a.id desc limit $2
"""


@dataclass(frozen=True, slots=True)
class PiiReadRec:
    """One unmasked read of an ID number, as the audit log keeps it."""

    id: str
    at: str
    caller: str
    scope: str
    id_number: str
    operation: str


async def pii_audit_log(pool: asyncpg.Pool, id_number: str | None, limit: int) -> list[PiiReadRec]:
    return [PiiReadRec(str(r["id"]), r["at"].isoformat(), r["caller"], r["scope"], r["id_number"], r["operation"])
            for r in await pool.fetch(PII_AUDIT_LOG, id_number, limit)]


@dataclass(frozen=True, slots=True)
class EmployerRec:
    credit_code: str
    name: str
    region_code: str
    industry_risk_class: int


@dataclass(frozen=True, slots=True)
class EmployerSchemeRow:
    scheme: int
    employees: int
    contributor_months: int
    employer: Decimal
    individual: Decimal
    base: Decimal


EMPLOYERS = "select credit_code, name, region_code, industry_risk_class from employer where credit_code = any($1::text[])"

EMPLOYER_TOTALS = """
select k.i, c.scheme, count(*) as months,
       count(distinct c.id_number) filter (where c.month = k.last) as employees,
       sum(c.employer_amount) as employer, sum(c.individual_amount) as individual, sum(c.base) as base
from unnest($1::text[], $2::date[], $3::date[]) with ordinality as k (code, first, last, i)
join contribution c on c.employer_credit_code = k.code and c.month between k.first and k.last
group by k.i, c.scheme
"""


async def employers(pool: asyncpg.Pool, codes: Sequence[str]) -> dict[str, EmployerRec]:
    return {r["credit_code"]: EmployerRec(r["credit_code"], r["name"], r["region_code"], r["industry_risk_class"])
            for r in await pool.fetch(EMPLOYERS, list(codes))}


async def employer_totals(pool: asyncpg.Pool, keys: Sequence[tuple[str, date, date]]) -> list[dict[int, EmployerSchemeRow]]:
    out: list[dict[int, EmployerSchemeRow]] = [{} for _ in keys]
    rows = await pool.fetch(EMPLOYER_TOTALS, [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys])
    for r in rows:
        out[r["i"] - 1][r["scheme"]] = EmployerSchemeRow(r["scheme"], r["employees"], r["months"], r["employer"],
                                                         r["individual"], r["base"])
    return out
