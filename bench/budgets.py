"""Case budgets (issue 16): the national compiled budget, federated (central + the demo's
province nodes) against the same drafts on one node, in the same run.

Every pool open in 2025 gets a draft, the same on both sides: seeded by SQL on the
database that holds the pool (the workflow's speed is not what is measured here),
amounts derived from the pool's id so that both sides hold identical figures, one
pool in three approved. The federated answer is checked equal to the single node's
before anything is timed; then the national budgetExecution (PENSION, June) the same
way. The answer cache is off on both sides, as in case 5: each answer is computed.
"""

from __future__ import annotations

import zlib
from decimal import Decimal
from typing import Any

from tierfed.tiers.figures import FUND_CATEGORIES

from tierfed.db import create_pool

from .cases import Bench, Row, ms, sequential
from .dataset import fed_specs
from .load import gql, timed
from .servers import start_node
from .topology import NATION

YEAR = 2025
COMPILED = """query($y: Int!) { compiledBudget(region: "000000", year: $y) {
  complete states { pools approved waiting notDrafted }
  schemes { scheme totalIncome totalExpenditure income { category amount } expenditure { category amount }
            states { pools approved waiting notDrafted } }
  parts(states: [DRAFT]) { poolId } } }"""
EXECUTION = """query($m: Month!) { budgetExecution(region: "000000", scheme: PENSION, month: $m) {
  complete income { category budget actual actualNotBudgeted share }
  expenditure { category budget actual actualNotBudgeted share } totalIncome { budget actual share } } }"""

POOLS = """select id, scheme, region_code from pool
where opened_from <= make_date($1, 12, 1) and (closed_after is null or closed_after >= make_date($1, 1, 1))"""
INSERT = """insert into budget (pool_id, year, scheme, region_code, state)
select * from unnest($1::text[], $2::smallint[], $3::smallint[], $4::text[], $5::text[]) on conflict do nothing"""
LINES = """insert into budget_line (pool_id, year, category, amount)
select * from unnest($1::text[], $2::smallint[], $3::text[], $4::numeric[]) on conflict do nothing"""


def amount(pool_id: str, category: str) -> Decimal:
    return Decimal(zlib.crc32(f"{pool_id}/{category}".encode()) % 10_000_000_00) / 100


async def seed(url: str) -> int:
    """A draft for every pool of this database open in YEAR; returns how many pools."""
    pool = await create_pool(url, min_size=1, max_size=1)
    try:
        rows = await pool.fetch(POOLS, YEAR)
        ids = [r["id"] for r in rows]
        states = ["APPROVED" if zlib.crc32(i.encode()) % 3 == 0 else "DRAFT" for i in ids]
        async with pool.acquire() as con, con.transaction():
            await con.execute(INSERT, ids, [YEAR] * len(ids), [r["scheme"] for r in rows],
                              [r["region_code"] for r in rows], states)
            cats = [c for c in FUND_CATEGORIES if c in ("CONTRIBUTIONS", "FISCAL_SUBSIDY", "INTEREST", "BENEFITS",
                                                        "OTHER_EXPENDITURE")]
            keys = [(i, c) for i in ids for c in cats]
            await con.execute(LINES, [k[0] for k in keys], [YEAR] * len(keys), [k[1] for k in keys],
                              [amount(*k) for k in keys])
        return len(ids)
    finally:
        await pool.close()


async def case_budgets(b: Bench) -> None:
    ds = b.data
    tok = b.token()
    n = b.n(200, 40)
    budget = b.n(30, 6)
    specs = fed_specs(ds.spec)
    pools = {s.name: await seed(s.database_url) for s in specs}
    single_pools = await seed(ds.single_url)
    if sum(pools.values()) != single_pools:
        raise AssertionError(f"case budgets: {sum(pools.values())} pools across nodes, {single_pools} on one node")
    single = await b.node(ds.single_url, "budget-single")
    for p in specs[1:]:
        b.servers.append(await start_node(p, 1))
    central = await start_node(specs[0], 1)
    b.servers.append(central)
    out: dict[str, Any] = {"pools": pools, "nodes": len(specs)}
    for label, raw in (("compiled", gql(COMPILED, {"y": YEAR}, tok)), ("execution", gql(EXECUTION, {"m": "2025-06"}, tok))):
        g_single, g_fed = sequential(single.port, raw), sequential(central.port, raw)
        a_single, a_fed = await g_single(), await g_fed()
        if a_single != a_fed or "errors" in a_fed:
            raise AssertionError(f"case budgets: the federated {label} answer differs from the single node's")
        s_single = await timed(g_single, n, budget_s=budget)
        s_fed = await timed(g_fed, n, budget_s=budget)
        s_single2 = await timed(g_single, n, budget_s=budget)
        for f in (g_single, g_fed):
            await f.conn.close()
        single_med = (s_single.median + s_single2.median) / 2
        out[label] = {"single": s_single.to_json(), "single_again": s_single2.to_json(), "federated": s_fed.to_json(),
                      "ratio": s_fed.median / single_med, "verified_equal": True}
        what = (f"national compiled budget, {single_pools:,} pools, at central + {len(specs) - 1} province nodes"
                if label == "compiled" else "national budget execution (PENSION, 2025-06), federated")
        b.rows += [
            Row("budgets", what + " (checked equal)", ms(s_fed.median), ms(s_fed.p99),
                f"{out[label]['ratio']:.2f}x single node"),
            Row("budgets", "  same drafts on one node", ms(single_med), ms(max(s_single.p99, s_single2.p99))),
        ]
    b.results["budgets"] = out
    b.stop_all()


__all__ = ["case_budgets", "NATION"]
