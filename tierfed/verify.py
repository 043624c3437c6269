"""``tierfed verify``: every summary row equals the same figures computed from the raw records."""

from __future__ import annotations

import asyncpg

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


async def verify(con: asyncpg.Connection | asyncpg.Pool, root: str) -> tuple[int, list[tuple[str, str, int]]]:
    """Return (summary rows checked, mismatching (region, month, scheme) keys)."""
    bad = await con.fetch(VERIFY, root)
    n = await con.fetchval("select count(*) from summary")
    return int(n), [(r["region_code"], r["month"].isoformat()[:7], r["scheme"]) for r in bad]
