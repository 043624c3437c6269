"""The SQL of pooling changes (raises on one node and across nodes, the central adjustment's
settlement): statements a transaction of ``tiers.pooling``, ``tiers.changes`` or
``tiers.settlement`` runs."""

from __future__ import annotations

from .figures import BOOKED
from .store import POOL_COLUMNS
from .vocabulary import fund_flow_sql

TRY_LOCK = "select pg_try_advisory_xact_lock($1)"
TRY_LOCK_SHARED = "select pg_try_advisory_xact_lock_shared($1)"
POOL_EXISTS = "select exists (select 1 from pool where id = $1)"
POOLS_BY_ID = f"select {POOL_COLUMNS} from pool p where p.id = any($1::text[])"
RAISE_KEY_USED = "select exists (select 1 from pooling_change where idempotency_key = $1)"


POOLS_OF_SCHEME_NEAR = f"""
select {POOL_COLUMNS}, rc.depth, (rc.descendant = $2 and rc.depth > 0) as above
from pool p
join region_closure rc on (rc.ancestor = $2 and rc.descendant = p.region_code)
                       or (rc.descendant = $2 and rc.ancestor = p.region_code and rc.depth > 0)
where p.scheme = $1
order by p.region_code, p.opened_from
"""


# Pooled contributions minus benefits, plus transfers in minus out, of open pools' regions
# from their first month to $4.
FLOWS = f"""
select coalesce(sum({fund_flow_sql("s")}), 0)
from unnest($1::text[], $2::date[]) as k (region, first)
join summary s on s.region_code = k.region and s.scheme = $3 and s.month between k.first and $4
"""


CLOSE = "update pool set closed_after = $2, successor_id = $3 where id = any($1::text[])"


OPEN = """
insert into pool (id, scheme, region_code, opened_from, closed_after, opening_balance)
values ($1, $2, $3, $4, null, $5)
"""


VERTICAL = """
update agency a set vertically_managed = true,
       parent_code = coalesce((select p.code from agency p join region r on r.code = a.region_code
                               where p.region_code = r.parent_code and p.department = a.department
                               and p.kind = 1 order by p.code limit 1), a.parent_code)
from region_closure rc
where rc.ancestor = $1 and rc.descendant = a.region_code and rc.depth > 0
  and a.department = $2 and a.kind = 1
"""


CHANGE_BY_KEY = "select input, result from pooling_change where idempotency_key = $1"


RECORD_CHANGE = """
insert into pooling_change (idempotency_key, input, result, caller) values ($1, $2::jsonb, $3::jsonb, $4)
"""


CHANGES = """
select c.id, c.idempotency_key, c.input, c.result, c.caller, c.created_at
from pooling_change c
where $1::text is null or c.input->>'region' = any(select descendant from region_closure where ancestor = $1)
order by c.id desc limit $2
"""


# The central adjustment's settlement (tiers/settlement.py).
PROVINCE_POOL = """
select id from pool where scheme = $1 and region_code = $2
  and opened_from <= $3 and (closed_after is null or closed_after >= $3)
"""


BOOKED_ALREADY = """
select category, amount from fund_flow
where pool_id = $1 and month = $2 and category in ('REMITTANCE_TO_ABOVE', 'SUBSIDY_FROM_ABOVE')
order by category
"""


# The summary's columns of the categories booked as fund flows, in BOOKED order; their sums
# over a set of flows ``f`` (columns category, amount); and an upsert adding them up.
BOOKED_COLUMNS = ", ".join(c.lower() for c in BOOKED)
BOOKED_SUMS = ", ".join(f"coalesce(sum(f.amount) filter (where f.category = '{c}'), 0)" for c in BOOKED)
_ADD = ", ".join(f"{c} = summary.{c} + excluded.{c}" for c in (x.lower() for x in BOOKED))


def book_flows(rows: str) -> str:
    """One statement inserting the fund flows that ``rows`` selects (pool_id, month, category,
    scheme, region_code, amount) and adding them to the summaries of each pool's region and
    every ancestor up to the node's root ($1). The settlement books with it, and so does the
    fund_flows import: one way to book a flow."""
    return f"""
with f as (
    insert into fund_flow (pool_id, month, category, scheme, region_code, amount)
    {rows}
    returning pool_id, month, category, scheme, amount)
insert into summary (region_code, month, scheme, {BOOKED_COLUMNS})
select rc.ancestor, f.month, f.scheme, {BOOKED_SUMS}
from f join pool p on p.id = f.pool_id
join region_closure rc on rc.descendant = p.region_code
join region_closure top on top.ancestor = $1 and top.descendant = rc.ancestor
group by 1, 2, 3
on conflict (region_code, month, scheme) do update set {_ADD}
"""


# The settlement's flows ($2: the month; $3, $4, $5: pools, categories, amounts).
BOOK = book_flows("""select p.id, $2::date, k.category, p.scheme, p.region_code, k.amount
    from unnest($3::text[], $4::text[], $5::numeric[]) as k (pool_id, category, amount)
    join pool p on p.id = k.pool_id""")
