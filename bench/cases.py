"""The cases of issue 7, each with its baselines measured in the same run.

Every case returns a JSON-able dict and appends rows to the printed table. A
case measures, it never asserts a speed; it does check that the figures it
compares are the same figures (the GraphQL answer against the raw SQL and the
plain endpoint), so a fast wrong answer cannot pass for a fast right one.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import asyncpg
import psutil
from tierfed.tiers.figures import SCHEMES

from tierfed import codes
from tierfed.auth import Keys
from tierfed.config import AuthConfig
from tierfed.db import create_pool

from . import cluster, queries
from .dataset import DataSet, _write_slice, fed_specs, run_import, single_spec
from .load import Conn, HttpError, Op, RssSampler, Stats, check_graphql, closed_loop, gql, post, timed
from .servers import Server, start_node, start_plain
from .topology import NATION, SECRET

FIRST, LAST = "2025-01", "2025-12"
PERIOD = {"from": FIRST, "to": LAST}
PROVINCE = "440000"  # Guangdong: the largest province, and a province node in the demo topology


def ms(s: float) -> str:
    return f"{s * 1e3:,.1f} ms" if s < 10 else f"{s:,.1f} s"


@dataclass
class Row:
    case: str
    what: str
    median: str = ""
    p99: str = ""
    ratio: str = ""
    target: str = ""


@dataclass
class Bench:
    quick: bool
    data: DataSet
    small: DataSet | None  # the data set a tenth the size (case 3)
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    servers: list[Server] = field(default_factory=list)
    soak_seconds: float | None = None

    def __post_init__(self) -> None:
        self.keys = Keys(AuthConfig(jwt_secret=SECRET))

    def token(self, scope: str = NATION, roles: tuple[str, ...] = ("VIEWER",)) -> str:
        return self.keys.sign("bench", scope, list(roles), 6 * 3600)

    def n(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def stop_all(self) -> None:
        for s in self.servers:
            s.stop()
        self.servers.clear()

    async def node(self, url: str, name: str, workers: int = 1) -> Server:
        s = await start_node(single_spec(url, name), workers)
        self.servers.append(s)
        return s


async def request(port: int, raw: bytes) -> dict[str, Any]:
    c = Conn(port)
    try:
        status, body = await c.send(raw)
    finally:
        await c.close()
    return check_graphql(status, body)


def sequential(port: int, raw: bytes) -> Any:
    """A closure sending ``raw`` over one kept-alive connection, checking every answer."""
    conn = Conn(port)

    async def go() -> dict[str, Any]:
        status, body = await conn.send(raw)
        return check_graphql(status, body)

    go.conn = conn  # type: ignore[attr-defined]
    return go


async def timed_request(port: int, raw: bytes, n: int, budget: float) -> tuple[Stats, dict[str, Any]]:
    """``raw`` sent once (its answer returned, checked) and then timed ``n`` times, within
    ``budget`` seconds, over one kept-alive connection."""
    call = sequential(port, raw)
    try:
        doc = await call()
        return await timed(call, n, budget_s=budget), doc
    finally:
        await call.conn.close()


def ratio(a: Stats, b: Stats) -> float:
    return a.median / b.median


# ---------------------------------------------------------------- case 1: import vs raw COPY


async def case_import(b: Bench) -> None:
    ds = b.data
    db = ds.spec.db("c1")
    url = await cluster.create(db, template=ds.spec.db("base"))
    # A twentieth of the records, the first rows the generator wrote (whole persons).
    rows = max(ds.manifest["contributions"] // 20, 1000)
    part = ds.slice_file.with_name(f"contributions-{rows}.csv")
    if not part.exists():
        _write_slice(ds.slice_file, part, rows)
    try:
        cfg = single_spec(url, "c1").write()
        # Warm the file cache, then the baseline (three times, median) and tierfed's import.
        run_import(None, "raw", part, raw_url=url)
        raws = [run_import(None, "raw", part, raw_url=url) for _ in range(3)]
        imp = run_import(cfg, "contributions", part)
    finally:
        await cluster.drop(db)
    raw_rate = sorted(r["rows"] / r["seconds"] for r in raws)[1]
    imp_rate = imp["rows"] / imp["seconds"]
    phases = imp.get("phases", {})
    # "Without checks": the same run with its checking stage left out (COPY of the lines,
    # the insert and the summaries; the file's SHA-256 and the history included).
    unchecked_s = imp["seconds"] - phases.get("checking", 0.0)
    unchecked_rate = imp["rows"] / unchecked_s
    full = ds.manifest["full_import"]
    full_raw = ds.manifest["full_raw_copy"]
    b.results["import"] = {
        "slice_rows": imp["rows"], "import_seconds": imp["seconds"], "import_rows_per_s": imp_rate,
        "import_peak_rss_mb": imp["peak_rss"] / 2**20, "raw_copy_rows_per_s": raw_rate,
        "raw_copy_runs": raws, "ratio": imp_rate / raw_rate, "phases": phases,
        "without_checks_rows_per_s": unchecked_rate,
        "at_build": {"rows": full["rows"], "import_rows_per_s": full["rows_per_s"],
                     "raw_copy_rows_per_s": full_raw["rows_per_s"], "ratio": full["rows_per_s"] / full_raw["rows_per_s"],
                     "import_peak_rss_mb": full["peak_rss"] / 2**20, "built_at": ds.manifest["built_at"]},
    }
    ok = imp_rate / raw_rate >= 0.5
    b.rows += [
        Row("1 import", f"tierfed import, {imp['rows']:,} contributions into an empty node",
            f"{imp_rate:,.0f} rows/s", "", f"{imp_rate / raw_rate:.2f}x raw COPY",
            f">= 0.5x: {'met' if ok else 'MISSED'}"),
        Row("1 import", "  the same without its checking stage", f"{unchecked_rate:,.0f} rows/s", "",
            f"{unchecked_rate / raw_rate:.2f}x raw COPY"),
        Row("1 import", "  stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items() if v >= 0.05)),
        Row("1 import", "  raw COPY of the same rows into a bare table (median of 3)", f"{raw_rate:,.0f} rows/s"),
        Row("1 import", "  peak RSS of the importer", f"{imp['peak_rss'] / 2**20:,.0f} MiB"),
        Row("1 import", f"full import at build ({full['rows']:,} rows, {ds.manifest['built_at'][:10]})",
            f"{full['rows_per_s']:,.0f} rows/s", "", f"{full['rows_per_s'] / full_raw['rows_per_s']:.2f}x raw COPY "
            f"({full_raw['rows_per_s']:,.0f} rows/s)", f"peak RSS {full['peak_rss'] / 2**20:,.0f} MiB"),
    ]


# ---------------------------------------------------------------- case 2 and 3: the national rollup


def rollup_request(token: str, region: str = NATION) -> bytes:
    return gql(queries.ROLLUP_BY_CHILD, {"region": region, "p": PERIOD}, token)


async def raw_records(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch(queries.RAW_RECORDS, codes.month(FIRST), codes.month(LAST))


def figures_from_graphql(doc: dict[str, Any]) -> dict[tuple[str, str], tuple]:
    out = {}
    for child in doc["data"]["rollup"]["byChild"]:
        for t in child["totals"]:
            out[(child["region"]["code"], t["scheme"])] = (
                t["contributorMonths"], Decimal(t["contributionEmployer"]), Decimal(t["contributionIndividual"]),
                Decimal(t["individualAccount"]), Decimal(t["benefitsPaid"]), t["insured"], t["beneficiaries"])
    return out


def figures_from_raw(rows: list[asyncpg.Record]) -> dict[tuple[str, str], tuple]:
    out = {}
    for r in rows:
        out[(r["region_code"], SCHEMES[r["scheme"] - 1])] = (
            r["contributor_months"], r["employer"], r["individual"], r["account"], r["paid"], r["insured"],
            r["beneficiaries"])
    return out


def same_figures(gq: dict[tuple[str, str], tuple], raw: dict[tuple[str, str], tuple]) -> bool:
    zero = (0, Decimal(0), Decimal(0), Decimal(0), Decimal(0), 0, 0)
    keys = set(gq) | set(raw)
    return all(gq.get(k, zero) == raw.get(k, zero) for k in keys)


async def case_rollup(b: Bench) -> None:
    ds = b.data
    tok = b.token()
    node = await b.node(ds.single_url, "single")
    plain = await start_plain(ds.single_url, SECRET)
    b.servers.append(plain)
    pool = await create_pool(ds.single_url, min_size=1, max_size=2)
    n = b.n(300, 100)
    budget = b.n(45, 5)
    try:
        gq = sequential(node.port, rollup_request(tok))
        floor = sequential(node.port, gql(queries.FLOOR, None, tok))
        plain_raw = post("/rollup", {"region": NATION, **PERIOD}, tok)
        pl_conn = Conn(plain.port)

        async def plain_call() -> dict[str, Any]:
            status, body = await pl_conn.send(plain_raw)
            return check_graphql(status, body)

        from .serve import ROLLUP_SQL
        region_list = [NATION, *[r["code"] for r in await pool.fetch(
            "select code from region where parent_code = $1 order by code", NATION)]]

        async def summary_sql() -> Any:
            return await pool.fetch(ROLLUP_SQL, codes.month(FIRST), codes.month(LAST), region_list)

        async def records_sql() -> Any:
            return await raw_records(pool)

        # The answers first: same figures everywhere, or the timings mean nothing.
        g_doc = await gq()
        p_doc = await plain_call()
        same_json = g_doc == p_doc
        raw_rows = await records_sql()
        same_raw = same_figures(figures_from_graphql(g_doc), figures_from_raw(raw_rows))
        if not (same_json and same_raw):
            raise AssertionError(f"case 2: answers differ (plain JSON equal: {same_json}, raw records equal: {same_raw})")

        s_gql = await timed(gq, n, budget_s=budget)
        s_floor = await timed(floor, n, budget_s=budget)
        s_plain = await timed(plain_call, n, budget_s=budget)
        s_sum = await timed(summary_sql, n, budget_s=budget)
        s_rec = await timed(records_sql, b.n(5, 3), warmup=1, budget_s=b.n(120, 10))
        await gq.conn.close()
        await floor.conn.close()
        await pl_conn.close()
    finally:
        await pool.close()
    b.results["rollup"] = {
        "records": ds.manifest["contributions"], "verified_equal_to_raw_records": same_raw,
        "verified_json_equal_to_plain": same_json,
        "graphql": s_gql.to_json(), "floor_graphql": s_floor.to_json(), "plain_starlette": s_plain.to_json(),
        "raw_sql_summaries": s_sum.to_json(), "raw_sql_records": s_rec.to_json(),
        "ratios": {"graphql_vs_raw_records": ratio(s_gql, s_rec), "graphql_vs_raw_summaries": ratio(s_gql, s_sum),
                   "graphql_vs_plain": ratio(s_gql, s_plain), "graphql_vs_floor": ratio(s_gql, s_floor)},
    }
    r = b.results["rollup"]["ratios"]
    label = f"{ds.manifest['contributions'] / 1e6:.1f}M records"
    b.rows += [
        Row("2 rollup", f"GraphQL national rollup by province, 1 year ({label}), HTTP", ms(s_gql.median), ms(s_gql.p99),
            f"{r['graphql_vs_floor']:.2f}x floor", f"<= 3x cheapest: {'met' if r['graphql_vs_floor'] <= 3 else 'MISSED'}"),
        Row("2 rollup", "  raw SQL over the records (same figures, checked equal)", ms(s_rec.median), ms(s_rec.p99),
            f"GraphQL {1 / r['graphql_vs_raw_records']:,.0f}x faster"),
        Row("2 rollup", "  raw SQL over the summaries (asyncpg, no HTTP)", ms(s_sum.median), ms(s_sum.p99),
            f"GraphQL {r['graphql_vs_raw_summaries']:.1f}x"),
        Row("2 rollup", "  plain Starlette endpoint, same SQL, same JSON (checked equal)", ms(s_plain.median),
            ms(s_plain.p99), f"GraphQL {r['graphql_vs_plain']:.2f}x"),
        Row("2 rollup", "  floor: { __typename } through the node (auth, HTTP, GraphQL)", ms(s_floor.median),
            ms(s_floor.p99)),
    ]
    b.stop_all()


async def case_scale(b: Bench) -> None:
    """Case 3: the same rollup over the data set a tenth the size, in the same run."""
    if b.small is None:
        return
    tok = b.token()
    n = b.n(300, 100)
    budget = b.n(45, 5)
    out = {}
    for label, ds in (("small", b.small), ("large", b.data)):
        node = await b.node(ds.single_url, f"scale-{label}")
        gq = sequential(node.port, rollup_request(tok))
        s = await timed(gq, n, budget_s=budget)
        await gq.conn.close()
        pool = await create_pool(ds.single_url, min_size=1, max_size=1)
        try:
            async def records(p: asyncpg.Pool = pool) -> Any:
                return await raw_records(p)

            s_rec = await timed(records, b.n(3, 3), warmup=1, budget_s=b.n(90, 10))
        finally:
            await pool.close()
        out[label] = {"records": ds.manifest["contributions"], "graphql": s.to_json(), "raw_sql_records": s_rec.to_json()}
        b.stop_all()
    g = out["large"]["graphql"]["median_ms"] / out["small"]["graphql"]["median_ms"]
    r = out["large"]["raw_sql_records"]["median_ms"] / out["small"]["raw_sql_records"]["median_ms"]
    x = out["large"]["records"] / out["small"]["records"]
    out["growth"] = {"records": x, "graphql": g, "raw_sql_records": r}
    b.results["scale"] = out
    b.rows += [
        Row("3 scale", f"GraphQL rollup, {out['small']['records'] / 1e6:.2f}M records",
            f"{out['small']['graphql']['median_ms']:,.1f} ms", f"{out['small']['graphql']['p99_ms']:,.1f} ms"),
        Row("3 scale", f"GraphQL rollup, {out['large']['records'] / 1e6:.2f}M records ({x:.1f}x)",
            f"{out['large']['graphql']['median_ms']:,.1f} ms", f"{out['large']['graphql']['p99_ms']:,.1f} ms",
            f"{g:.2f}x time", f"< 1.2x: {'met' if g < 1.2 else 'MISSED'}"),
        Row("3 scale", "  raw SQL over the records, same two data sets", "", "", f"{r:.1f}x time"),
    ]


# ---------------------------------------------------------------- case 4: the provincial dashboard


async def persons_of(url: str, region: str, k: int) -> list[str]:
    con = await asyncpg.connect(url)
    try:
        rows = await con.fetch(
            "select p.id_number from person p join region_closure rc on rc.descendant = p.region_code "
            "where rc.ancestor = $1 order by md5(p.id_number) limit $2", region, k)
    finally:
        await con.close()
    return [r[0] for r in rows]


def dashboard_ops(token: str, region: str, ids: list[str]) -> list[Op]:
    v = {"region": region, "p": PERIOD}
    totals = gql(queries.DASH_TOTALS, v, token)
    by_child = gql(queries.DASH_BY_CHILD, v, token)
    by_month = gql(queries.DASH_BY_MONTH, v, token)
    statements = [gql(queries.DASH_STATEMENT, {"id": i, "year": 2025}, token) for i in ids]
    return [Op("totals", lambda rng: totals), Op("byChild", lambda rng: by_child),
            Op("byMonth", lambda rng: by_month), Op("statement", lambda rng: rng.choice(statements))]


async def load_run(port: int, pids: list[int], ops: list[Op], clients: int, seconds: float) -> dict[str, Any]:
    # A short warm-up, unmeasured, so every worker has its caches and connections.
    await closed_loop(port, ops, clients, min(3.0, seconds / 5))
    with RssSampler(pids) as rss:
        res = await closed_loop(port, ops, clients, seconds)
    out = res.to_json()
    out["peak_rss_mb"] = rss.peak / 2**20
    out["rss"] = rss.drift()
    out["rss_samples_mb"] = [round(s / 2**20, 1) for _, s in rss.samples]
    return out


def load_rows(case: str, label: str, r: dict[str, Any], target: str = "") -> list[Row]:
    lat = r.get("latency", {})
    return [Row(case, f"{label}: {r['req_per_s']:,.0f} req/s, {r['errors']} errors, peak RSS "
                      f"{r['peak_rss_mb']:,.0f} MiB", f"{lat.get('median_ms', 0):,.1f} ms",
                f"{lat.get('p99_ms', 0):,.1f} ms", "", target)]


async def case_dashboard(b: Bench) -> None:
    ds = b.data
    tok = b.token(PROVINCE)
    ids = await persons_of(ds.single_url, PROVINCE, 2000)
    ops = dashboard_ops(tok, PROVINCE, ids)
    clients, seconds = 16, b.n(30, 5)
    out: dict[str, Any] = {"clients": clients, "seconds": seconds, "region": PROVINCE, "runs": {}}
    cores = os.cpu_count() or 2
    for workers in sorted({1, cores}):
        node = await b.node(ds.single_url, f"dash-w{workers}", workers)
        r = await load_run(node.port, [node.pid], ops, clients, seconds)
        out["runs"][str(workers)] = r
        b.rows += load_rows("4 dashboard", f"{clients} clients, {workers} worker(s)", r)
        b.stop_all()
    best = max(out["runs"], key=lambda w: out["runs"][w]["req_per_s"])
    out["recommended_workers"] = int(best)
    b.results["dashboard"] = out
    for op, st in out["runs"][best]["per_op"].items():
        b.rows.append(Row("4 dashboard", f"  {op} ({best} worker(s))", f"{st['median_ms']:,.1f} ms",
                          f"{st['p99_ms']:,.1f} ms"))


# ---------------------------------------------------------------- case 5: federation


async def start_single(b: Bench, name: str, cache_bytes: int) -> Server:
    """One node over the whole national database, answers cached in ``cache_bytes`` (0: none)."""
    spec = single_spec(b.data.single_url, name)
    spec.cache_bytes = cache_bytes
    s = await start_node(spec, 1)
    b.servers.append(s)
    return s


async def start_topology(b: Bench, ds: DataSet, cache_bytes: int | None = None,
                         **kw: Any) -> tuple[Server, list[Server], list[Any]]:
    """Central and its province nodes, leaves first; ``cache_bytes`` for every node when given."""
    specs = fed_specs(ds.spec)
    if cache_bytes is not None:
        for sp in specs:
            sp.cache_bytes = cache_bytes
    central, provs = specs[0], specs[1:]
    prov_servers = []
    for p in provs:
        s = await start_node(p, 1, **kw)
        b.servers.append(s)
        prov_servers.append(s)
    c = await start_node(central, 1, **kw)  # its children's ports are known now
    b.servers.append(c)
    return c, prov_servers, provs


async def case_federation(b: Bench) -> None:
    ds = b.data
    tok = b.token()
    n = b.n(300, 60)
    budget = b.n(40, 4)
    single = await b.node(ds.single_url, "fed-single")
    central, prov_servers, provs = await start_topology(b, ds)
    g_single = sequential(single.port, rollup_request(tok))
    g_fed = sequential(central.port, rollup_request(tok))
    a_single, a_fed = await g_single(), await g_fed()
    if a_single != a_fed:
        raise AssertionError("case 5: the federated answer differs from the single node's")
    s_single = await timed(g_single, n, budget_s=budget)
    s_fed = await timed(g_fed, n, budget_s=budget)
    s_single2 = await timed(g_single, n, budget_s=budget)  # again, to see drift between the two
    child: dict[str, dict[str, float]] = {}
    for spec, srv in zip(provs, prov_servers):
        raw = gql(queries.TIER_SUMMARIES % (spec.region, FIRST, LAST), None, tok)
        f = sequential(srv.port, raw)
        child[spec.name] = (await timed(f, n, budget_s=budget / 2)).to_json()
        await f.conn.close()
    for f in (g_single, g_fed):
        await f.conn.close()
    single_med = (s_single.median + s_single2.median) / 2
    slowest_child = max(c["median_ms"] for c in child.values())
    out: dict[str, Any] = {
        "single": s_single.to_json(), "single_again": s_single2.to_json(), "federated": s_fed.to_json(),
        "children_tier_summaries": child, "verified_equal": True,
        "ratio": s_fed.median / single_med,
        "added_ms": (s_fed.median - single_med) * 1e3,
        "central_own_ms": s_fed.median * 1e3 - slowest_child,
    }
    b.results["federation"] = out
    ok = out["ratio"] <= 1.5
    b.rows += [
        Row("5 federation", "national rollup at central + 3 province nodes (checked equal)", ms(s_fed.median),
            ms(s_fed.p99), f"{out['ratio']:.2f}x single node", f"<= 1.5x: {'met' if ok else 'MISSED'}"),
        Row("5 federation", "  same data on one node", ms(single_med), ms(max(s_single.p99, s_single2.p99))),
        Row("5 federation", "  the tier adds (federated - single)", f"{out['added_ms']:,.1f} ms"),
    ] + [Row("5 federation", f"  province node {k}: _tierSummaries the central sends", f"{v['median_ms']:,.1f} ms",
             f"{v['p99_ms']:,.1f} ms") for k, v in child.items()] + [
        Row("5 federation", "  central's own part (federated - slowest child)", f"{out['central_own_ms']:,.1f} ms"),
    ]
    b.stop_all()


async def case_persons(b: Bench) -> None:
    """Issue 17: a person's statement at the central node against the same at the province node
    that holds the person (the index makes the central node ask that node alone), and
    duplicateInsurance over the nation at the central node."""
    ds = b.data
    tok = b.token()
    n = b.n(300, 60)
    budget = b.n(30, 5)
    central, prov_servers, provs = await start_topology(b, ds)
    at = next(i for i, p in enumerate(provs) if p.region == PROVINCE)
    idn = (await persons_of(provs[at].database_url, PROVINCE, 1))[0]
    raw = gql(queries.PERSON_STATEMENT, {"id": idn}, tok)
    g_central, g_holder = sequential(central.port, raw), sequential(prov_servers[at].port, raw)
    a_central, a_holder = await g_central(), await g_holder()
    if a_central != a_holder or a_central["data"]["person"] is None:
        raise AssertionError("case persons: the central node's statement differs from the holder's")
    s_holder = await timed(g_holder, n, budget_s=budget)
    s_central = await timed(g_central, n, budget_s=budget)
    dup = sequential(central.port, gql(queries.DUPLICATES, {"r": NATION, "p": PERIOD}, tok))
    found = len((await dup())["data"]["duplicateInsurance"])
    s_dup = await timed(dup, b.n(50, 10), budget_s=budget)
    pool = await create_pool(cluster.url(ds.spec.db("fed_central")), min_size=1, max_size=1)
    try:
        indexed = await pool.fetchval("select count(*) from person_index")
        multi = await pool.fetchval("select count(*) from (select id_number from person_index group by 1 "
                                    "having count(*) > 1) m")
    finally:
        await pool.close()
    for f in (g_central, g_holder, dup):
        await f.conn.close()
    out = {"holder": s_holder.to_json(), "central": s_central.to_json(), "ratio": ratio(s_central, s_holder),
           "duplicates": s_dup.to_json(), "duplicates_found": found, "central_index_rows": indexed,
           "persons_on_two_or_more_children": multi, "verified_equal": True}
    b.results["persons"] = out
    b.rows += [
        Row("17 persons", "statement at central (checked equal to the holder's)", ms(s_central.median),
            ms(s_central.p99), f"{out['ratio']:.2f}x holder", "close to the holder's"),
        Row("17 persons", "  same at the province node that holds the person", ms(s_holder.median), ms(s_holder.p99)),
        Row("17 persons", f"duplicateInsurance over the nation at central ({found} found, {multi:,} persons on "
                          f"2+ child nodes, {indexed:,} index rows)", ms(s_dup.median), ms(s_dup.p99)),
    ]
    b.stop_all()


async def case_soak(b: Bench) -> None:
    """Issue 5's load run: the mixed dashboard against the demo topology's central node."""
    ds = b.data
    tok = b.token()
    central, prov_servers, provs = await start_topology(b, ds)
    ids = []
    for name in ds.spec.fed_nodes():
        ids += await persons_of(ds.fed_url(name), NATION, 500)
    random.Random(5).shuffle(ids)
    province_by_month = gql(queries.DASH_BY_MONTH, {"region": PROVINCE, "p": PERIOD}, tok)
    ops = dashboard_ops(tok, NATION, ids) + [Op("provinceByMonth", lambda rng: province_by_month)]
    seconds = min(b.soak_seconds or b.n(60, 8), 1800)  # bounded: half an hour at most
    r = await load_run(central.port, [central.pid], ops, 16, seconds)
    r["province_nodes_peak_rss_mb"] = {p.name: psutil.Process(s.pid).memory_info().rss / 2**20
                                       for p, s in zip(provs, prov_servers)}
    b.results["soak"] = r
    b.rows += load_rows("load (issue 5)", f"{seconds:.0f} s mixed dashboard at the central node, 16 clients", r,
                        f"errors 0: {'met' if r['errors'] == 0 else 'MISSED'}; RSS growth "
                        f"{r['rss'].get('growth_pct', float('nan')):+.1f}%")
    b.stop_all()


# ---------------------------------------------------------------- storage (measured, for the scale on paper)


async def storage(b: Bench) -> None:
    con = await asyncpg.connect(b.data.single_url)
    try:
        def parts(t: str) -> str:
            return (f"select coalesce(sum(pg_total_relation_size(c.oid)), 0), coalesce(sum(pg_relation_size(c.oid)), 0) "
                    f"from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = '{t}'::regclass")
        c_total, c_heap = (int(x) for x in await con.fetchrow(parts("contribution")))
        bn_total = int((await con.fetchrow(parts("benefit")))[0])
        summ_rows = await con.fetchval("select count(*) from summary")
        summ_bytes = await con.fetchval("select pg_total_relation_size('summary')")
        person_bytes = await con.fetchval("select pg_total_relation_size('person')")
        n_parts = await con.fetchval("select count(*) from pg_inherits where inhparent = 'contribution'::regclass")
    finally:
        await con.close()
    recs = b.data.manifest["contributions"]
    b.results["storage"] = {
        "contribution_records": recs, "contribution_bytes": c_total, "contribution_heap_bytes": c_heap,
        "bytes_per_contribution": c_total / recs, "benefit_bytes": bn_total, "benefit_records": b.data.manifest["benefits"],
        "summary_rows": summ_rows, "summary_bytes": summ_bytes, "person_bytes": person_bytes,
        "persons": b.data.manifest["persons"], "contribution_partitions": n_parts,
        "db_bytes": b.data.manifest["db_bytes"],
    }
    b.rows.append(Row("storage", f"contributions: {c_total / 2**30:,.2f} GiB for {recs / 1e6:.1f}M records "
                                 f"({c_total / recs:,.0f} B each with the key index); summary {summ_rows:,} rows, "
                                 f"{summ_bytes / 2**20:,.1f} MiB"))


__all__ = ["Bench", "case_import", "case_rollup", "case_scale", "case_dashboard", "case_federation", "case_soak",
           "storage", "HttpError", "json", "time", "date"]
