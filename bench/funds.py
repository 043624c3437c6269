"""Case 11: rankings and fund accounts (issue 15), all in one run on the same data.

- a national ranking of all counties by an indicator (PENSION contributors per
  beneficiary over the year, the first page of 20), on one node and federated
  (central + the demo's province nodes), the answer cache off, against raw SQL
  over the same summaries (one statement that sums, divides, sorts and cuts in
  PostgreSQL: the floor of any server answering it);
- a province pool's yearly account (Guangdong's pension pool: opening balance,
  every category, closing balance) against raw SQL over its summaries.

Both GraphQL answers are checked against the raw SQL's before anything is timed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import asyncpg

from .cases import FIRST, LAST, PROVINCE, Bench, Row, ms, ratio, start_single, start_topology, timed_request
from .load import Stats, gql, timed

RANKING = """query($first: Int!, $from: Month!, $to: Month!) { ranking(region: "000000", tier: COUNTY,
  period: {from: $from, to: $to}, scheme: PENSION, by: DEPENDENCY_RATIO, first: $first) {
  count complete entries { rank value region { code } } } }"""

# The same ranking in one statement over the single node's summaries.
RAW_RANKING = """
with f as (
    select s.region_code, sum(s.contributions) filter (where s.month = $2) as insured,
           sum(s.benefits) filter (where s.month = $2) as beneficiaries
    from summary s join region r on r.code = s.region_code and r.tier = 3
    where s.scheme = 1 and s.month between $1 and $2
    group by s.region_code)
select r.code, round(f.insured::numeric / nullif(f.beneficiaries, 0), 2) as value, count(*) over () as n
from region r left join f on f.region_code = r.code
where r.tier = 3
order by value desc nulls last, r.code
limit $3
"""

ACCOUNT = """query($id: ID!, $from: Month!, $to: Month!) { pool(id: $id) { account(period: {from: $from, to: $to}) {
  openingBalance totalIncome totalExpenditure closingBalance monthsOfPayment
  income { category amount } expenditure { category amount } } } }"""

# Opening balance (the pool's own plus every flow before the period) and the period's flows.
RAW_ACCOUNT = """
select p.opening_balance + coalesce(sum(s.employer + s.individual - s.individual_account - s.benefits_paid
                                        + s.transfers_in - s.transfers_out + s.booked_net)
                                    filter (where s.month < $2), 0) as opening,
       coalesce(sum(s.employer + s.individual - s.individual_account) filter (where s.month >= $2), 0) as pooled,
       coalesce(sum(s.benefits_paid) filter (where s.month >= $2), 0) as benefits,
       coalesce(sum(s.booked_net + s.transfers_in - s.transfers_out) filter (where s.month >= $2), 0) as other
from pool p left join summary s on s.region_code = p.region_code and s.scheme = p.scheme
                               and s.month between p.opened_from and $3
where p.id = $1
group by p.opening_balance
"""


def _month(m: str) -> Any:
    from datetime import date

    return date(int(m[:4]), int(m[5:]), 1)


async def _sql_stats(url: str, sql: str, args: tuple[Any, ...], n: int, budget: float) -> tuple[Stats, list[Any]]:
    con = await asyncpg.connect(url)
    try:
        rows = await con.fetch(sql, *args)

        async def go() -> None:
            await con.fetch(sql, *args)

        return await timed(go, n, budget_s=budget), list(rows)
    finally:
        await con.close()



async def case_funds(b: Bench) -> None:
    ds = b.data
    tok = b.token()
    n, budget = b.n(200, 40), b.n(40, 8)
    first = 20
    out: dict[str, Any] = {}

    # --- the national ranking of counties
    raw_q = gql(RANKING, {"first": first, "from": FIRST, "to": LAST}, tok)
    single = await start_single(b, "funds-single", 0)
    s_one, doc = await timed_request(single.port, raw_q, n, budget)
    s_sql, rows = await _sql_stats(ds.single_url, RAW_RANKING, (_month(FIRST), _month(LAST), first), n, budget)
    got = [(e["region"]["code"], e["value"]) for e in doc["data"]["ranking"]["entries"]]
    want = [(r["code"], None if r["value"] is None else str(r["value"])) for r in rows]
    if got != want or doc["data"]["ranking"]["count"] != rows[0]["n"]:
        raise AssertionError(f"case 11: the ranking differs from raw SQL: {got[:3]} vs {want[:3]}")

    # --- a province pool's yearly account
    pool_id = await _pool_id(ds.single_url)
    raw_a = gql(ACCOUNT, {"id": pool_id, "from": FIRST, "to": LAST}, tok)
    a_one, adoc = await timed_request(single.port, raw_a, n, budget)
    a_sql, arows = await _sql_stats(ds.single_url, RAW_ACCOUNT, (pool_id, _month(FIRST), _month(LAST)), n, budget)
    acc, r = adoc["data"]["pool"]["account"], arows[0]
    closing = r["opening"] + r["pooled"] - r["benefits"] + r["other"]
    if Decimal(acc["openingBalance"]) != r["opening"] or Decimal(acc["closingBalance"]) != closing:
        raise AssertionError(f"case 11: the account differs from raw SQL: {acc['closingBalance']} vs {closing}")
    b.stop_all()

    # --- the ranking federated
    central = (await start_topology(b, b.data, 0))[0]
    f_one, fdoc = await timed_request(central.port, raw_q, b.n(200, 30), budget)
    b.stop_all()
    if fdoc["data"]["ranking"] != doc["data"]["ranking"]:
        raise AssertionError("case 11: the federated ranking differs from the single node's")

    out["ranking"] = {"single": s_one.to_json(), "federated": f_one.to_json(), "raw_sql": s_sql.to_json(),
                      "single_vs_sql": ratio(s_one, s_sql), "federated_vs_single": ratio(f_one, s_one),
                      "counties": rows[0]["n"]}
    out["account"] = {"pool": pool_id, "graphql": a_one.to_json(), "raw_sql": a_sql.to_json(),
                      "graphql_vs_sql": ratio(a_one, a_sql)}
    b.results["funds"] = out
    b.rows += [
        Row("11 funds", f"national ranking of {rows[0]['n']:,} counties, first {first}, one node (cache off)",
            ms(s_one.median), ms(s_one.p99), f"{ratio(s_one, s_sql):.2f}x raw SQL"),
        Row("11 funds", "  raw SQL over the summaries: sum, divide, sort, limit in one statement",
            ms(s_sql.median), ms(s_sql.p99)),
        Row("11 funds", "national ranking federated (central + province nodes, cache off)",
            ms(f_one.median), ms(f_one.p99), f"{ratio(f_one, s_one):.2f}x one node"),
        Row("11 funds", f"yearly account of {pool_id} (cache off)", ms(a_one.median), ms(a_one.p99),
            f"{ratio(a_one, a_sql):.2f}x raw SQL"),
        Row("11 funds", "  raw SQL over the pool's summaries", ms(a_sql.median), ms(a_sql.p99)),
    ]


async def _pool_id(url: str) -> str:
    con = await asyncpg.connect(url)
    try:
        pid = await con.fetchval("select id from pool where region_code = $1 and scheme = 1 and closed_after is null",
                                 PROVINCE)
    finally:
        await con.close()
    if pid is None:
        raise AssertionError(f"case 11: no open PENSION pool over {PROVINCE} in the data set")
    return str(pid)
