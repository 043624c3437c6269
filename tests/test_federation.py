"""Federation with real nodes: uvicorn servers on loopback ports, each with its own database.

Topology: central (000000) with Guangdong (440000) and Sichuan (510000) as
child nodes, and Shenzhen (440300) as a child of Guangdong: three tiers of
nodes. The same generated data set is loaded split by node here and whole on
one node (``loaded_db``), and the answers must agree figure by figure.
"""

from __future__ import annotations

import asyncio
import csv
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from tierfed.tiers.tree import Tree

from tests.conftest import load_dataset, node_config, token
from tests.nodes import RunningNode, free_port, start_node
from tierfed.generator import Options, generate

pytestmark = pytest.mark.federation

NATIONAL = token("000000", ("VIEWER", "PII_READER"))
ROLLUP = """query($r: ID!) { rollup(region: $r, period: {from: "2025-01", to: "2025-06"}) {
  region { code name } complete missing { code }
  totals { scheme insured contributorMonths contributionEmployer contributionIndividual contributionTotal
           individualAccount pooled benefitsPaid beneficiaries }
  byChild { region { code } complete totals { scheme insured contributorMonths contributionTotal pooled benefitsPaid beneficiaries } }
  byMonth { month totals { scheme insured contributionTotal benefitsPaid beneficiaries } } } }"""


def owner_of(tree: Tree, region: str) -> str:
    for root, name in (("440300", "shenzhen"), ("440000", "guangdong"), ("510000", "sichuan")):
        if tree.within(region, root):
            return name
    return "central"


@dataclass
class Federation:
    nodes: dict[str, RunningNode]
    dbs: dict[str, str]
    single: RunningNode

    async def central(self, query: str, variables: dict[str, Any] | None = None, tok: str = NATIONAL) -> dict[str, Any]:
        return await self.nodes["central"].post(query, variables, tok)

    async def one(self, query: str, variables: dict[str, Any] | None = None, tok: str = NATIONAL) -> dict[str, Any]:
        return await self.single.post(query, variables, tok)

    def counts(self) -> dict[str, int]:
        return {n: r.requests for n, r in self.nodes.items()}


async def start_topology(dbs: dict[str, str], ports: dict[str, int], timeout: float = 5.0) -> dict[str, RunningNode]:
    def url(n: str) -> str:
        return f"http://127.0.0.1:{ports[n]}/graphql"

    def parent(n: str) -> dict[str, Any]:
        # Each child knows its parent, as in a real federation: it tells it of its commits and
        # persons, so the parent may answer from what it was told (else it asks on every lookup).
        return {"parent": {"url": url(n), "timeout_s": timeout}}

    nodes = {}
    nodes["shenzhen"] = await start_node(node_config("440300", "shenzhen", **parent("guangdong")), dbs["shenzhen"],
                                         ports["shenzhen"])
    nodes["guangdong"] = await start_node(node_config("440000", "guangdong", [
        {"region": "440300", "url": url("shenzhen"), "name": "shenzhen", "timeout_s": timeout}], **parent("central")),
        dbs["guangdong"], ports["guangdong"])
    nodes["sichuan"] = await start_node(node_config("510000", "sichuan", **parent("central")), dbs["sichuan"],
                                        ports["sichuan"])
    nodes["central"] = await start_node(node_config("000000", "central", [
        {"region": "440000", "url": url("guangdong"), "name": "guangdong", "timeout_s": timeout},
        {"region": "510000", "url": url("sichuan"), "name": "sichuan", "timeout_s": timeout}]),
        dbs["central"], ports["central"])
    return nodes


@pytest.fixture(scope="module")
async def fed(tmp_path_factory: pytest.TempPathFactory, tree: Tree, new_db: Any, loaded_db: str) -> AsyncIterator[Federation]:
    out = tmp_path_factory.mktemp("split")
    # Same options and seed as the ``dataset`` fixture: the same records, split by node.
    generate(tree, out, Options(persons=2000, first=date(2025, 1, 1), last=date(2025, 6, 1), seed=7),
             split=lambda region: owner_of(tree, region))
    # A province pool over Guangdong would span the Shenzhen node: it is held nowhere here.
    _drop_rows(out / "guangdong" / "pools.csv", lambda row: row["region_code"] == "440000")
    dbs = {}
    for name, region in (("central", "000000"), ("guangdong", "440000"), ("shenzhen", "440300"),
                         ("sichuan", "510000")):
        dbs[name] = await new_db()
        children = {"central": [{"region": "440000", "url": "http://x/graphql", "name": "guangdong"},
                                {"region": "510000", "url": "http://y/graphql", "name": "sichuan"}],
                    "guangdong": [{"region": "440300", "url": "http://z/graphql", "name": "shenzhen"}]}
        await load_dataset(dbs[name], node_config(region, name, children.get(name)), out / name)
    ports = {n: free_port() for n in dbs}
    nodes = await start_topology(dbs, ports)
    single = await start_node(node_config("000000", "single"), loaded_db)
    yield Federation(nodes, dbs, single)
    for n in [single, *nodes.values()]:
        try:
            await n.stop()
        except Exception:  # noqa: BLE001 - a test may have stopped it already
            pass


def _drop_rows(path: Path, drop: Any) -> None:
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0].keys()) if rows else ["scheme", "region_code",
                                                                             "opened_from", "opening_balance"])
        w.writeheader()
        w.writerows(r for r in rows if not drop(r))


@pytest.mark.parametrize("region", ["000000", "440000", "440300", "440305", "510000", "110000"])
async def test_rollup_equals_single_node(fed: Federation, region: str) -> None:
    got = await fed.central(ROLLUP, {"r": region})
    want = await fed.one(ROLLUP, {"r": region})
    assert "errors" not in got, got.get("errors")
    assert got == want
    assert got["data"]["rollup"]["complete"] is True


async def test_every_contract_field_across_nodes(fed: Federation) -> None:
    # A person registered in Shenzhen, two tiers of nodes below the central one.
    q = """query($id: String!) { person(idNumber: $id) { idNumber name region { code name }
             statement(year: 2025) { year schemes { scheme months contributionEmployer contributionIndividual
             individualAccount benefitsPaid } } }
           sz: region(code: "440300") { name parent { code } children { code } ancestors { code }
             agencies { code name department kind tier verticallyManaged parent { code } children { code } }
             pool(scheme: MEDICAL, asOf: "2025-03") { id level region { code } openedFrom closedAfter
               openingBalance balance(asOf: "2025-06") predecessors { id } } }
           sc: region(code: "510100") { pool(scheme: PENSION, asOf: "2025-02") { id level balance(asOf: "2025-05") } }
           a: agency(code: "YB440300") { code name region { code } parent { code } }
           p: pool(id: "440300-MEDICAL-202401") { id balance(asOf: "2025-04") }
           adj: centralAdjustment(year: 2025, ratio: "0.045") { ratio complete
             provinces { region { code } insuredWorkers averageBase retirees remittance allocation net } } }"""
    sz_person = await _a_person_of(fed, "shenzhen")
    got = await fed.central(q, {"id": sz_person})
    want = await fed.one(q, {"id": sz_person})
    assert "errors" not in got, got.get("errors")
    assert got == want
    assert got["data"]["person"]["region"]["code"].startswith("4403")
    assert got["data"]["sz"]["pool"]["id"] == "440300-MEDICAL-202401"


async def test_employers_across_nodes(fed: Federation) -> None:
    code = await fed.nodes["sichuan"].runtime.pool.fetchval(
        "select employer_credit_code from contribution where employer_credit_code is not null "
        "group by 1 order by count(*) desc limit 1")
    q = """query($c: String!) { employer(creditCode: $c) { creditCode name industryRiskClass region { code }
             contributions(period: {from: "2025-01", to: "2025-06"}) { scheme employees contributorMonths
               contributionEmployer contributionIndividual averageBase } } }"""
    got = await fed.central(q, {"c": code})
    assert "errors" not in got, got.get("errors")
    assert got == await fed.one(q, {"c": code})
    assert got["data"]["employer"]["contributions"][0]["contributorMonths"] > 0
    raw = await fed.nodes["sichuan"].runtime.pool.fetchval(
        "select sum(employer_amount) from contribution where employer_credit_code = $1 and scheme = 1", code)
    assert got["data"]["employer"]["contributions"][0]["contributionEmployer"] == f"{raw:.2f}"
    gd = token("440000", ("VIEWER",))
    body = await fed.central(q, {"c": code}, gd)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    bad = await fed.central(q, {"c": code[:17] + ("0" if code[17] != "0" else "1")})
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT" and "check character" in bad["errors"][0]["message"]


async def test_pooling_overview_across_nodes(fed: Federation) -> None:
    q = '{ poolingOverview(asOf: "2025-03") { scheme levels { level count regions { code } } } }'
    got = await fed.central(q)
    want = await fed.one(q)
    assert "errors" not in got, got.get("errors")
    by = {s["scheme"]: s for s in got["data"]["poolingOverview"]}
    # MEDICAL is pooled by city everywhere: the same pools, wherever they are held
    assert by["MEDICAL"] == {s["scheme"]: s for s in want["data"]["poolingOverview"]}["MEDICAL"]
    assert {lv["level"]: lv["count"] for lv in by["MEDICAL"]["levels"]}["CITY"] == 333


async def _a_person_of(fed: Federation, node: str) -> str:
    rt = fed.nodes[node].runtime
    return str(await rt.pool.fetchval("select id_number from person order by id_number limit 1"))


async def test_one_request_per_child_per_operation(fed: Federation) -> None:
    sc_person = await _a_person_of(fed, "sichuan")
    q = """query($id: String!) {
      a: rollup(region: "000000", period: {from: "2025-01", to: "2025-06"}) {
        totals { insured } byChild { region { code } totals { pooled } byChild { totals { insured } byMonth { month } } } }
      b: rollup(region: "440000", period: {from: "2025-02", to: "2025-03"}, schemes: [PENSION]) { totals { insured } }
      c: rollup(region: "440305", period: {from: "2025-01", to: "2025-01"}) { byMonth { totals { insured } } }
      d: rollup(region: "510000", period: {from: "2025-01", to: "2025-06"}) { byChild { totals { insured } } }
      e: region(code: "440300") { pool(scheme: MEDICAL, asOf: "2025-02") { balance } agencies { code } }
      f: region(code: "440100") { pool(scheme: MEDICAL, asOf: "2025-02") { balance } }
      g: region(code: "510100") { pool(scheme: PENSION) { id } }
      h: person(idNumber: $id) { name statement(year: 2025) { schemes { months } } }
      i: nation { children { code pool(scheme: PENSION, asOf: "2025-01") { id } } }
    }"""
    before = fed.counts()
    got = await fed.central(q, {"id": sc_person})
    after = fed.counts()
    assert "errors" not in got, got.get("errors")
    sent = {n: after[n] - before[n] for n in after}
    # central got the caller's request; each child node exactly one from its parent
    assert sent == {"central": 1, "guangdong": 1, "sichuan": 1, "shenzhen": 1}


async def test_fields_below_a_childs_answer_take_one_more_round_not_one_request_each(fed: Federation) -> None:
    """Fields of a region that only a child's answer names (a person's region, held by a
    grandchild) cannot be asked before that answer comes: they are asked in one more round, one
    request per child for all of them, however many there are (each had been one request of its
    own, to each node on the way). The answer is one node's."""
    sz_person = await _a_person_of(fed, "shenzhen")
    below = " ".join(f'p{i}: pool(scheme: MEDICAL, asOf: "2025-0{i + 1}") {{ id }}' for i in range(5))
    q = "query($id: String!) { person(idNumber: $id) { name region { code agencies { code } " + below + " } } }"
    before = fed.counts()
    got = await fed.central(q, {"id": sz_person})
    after = fed.counts()
    assert "errors" not in got, got.get("errors")
    assert got == await fed.one(q, {"id": sz_person})
    sent = {n: after[n] - before[n] for n in after}
    # the person asked of Guangdong (and by it of Shenzhen), then the region's six fields: a round more
    assert sent == {"central": 1, "guangdong": 2, "shenzhen": 2, "sichuan": 0}, sent


async def test_fields_of_many_child_regions_are_one_field(fed: Federation) -> None:
    """A field on each of a child's 140 regions travels as one _entities field, not 140 root fields."""
    q = """{ region(code: "440000") { children { code agencies { code verticallyManaged }
             children { code agencies(department: HEALTHCARE_SECURITY) { code parent { code } } } } } }"""
    before = fed.counts()
    got = await fed.central(q)
    after = fed.counts()
    assert "errors" not in got, got.get("errors")
    assert got == await fed.one(q)
    assert after["guangdong"] - before["guangdong"] == 1 and after["shenzhen"] - before["shenzhen"] == 1
    counties = [c for city in got["data"]["region"]["children"] for c in city["children"]]
    assert len(counties) > 100 and all(len(c["agencies"]) == 1 for c in counties)


async def test_a_callers_variables_named_as_the_forwarding_requests_own(fed: Federation) -> None:
    """A caller's variable named as the parent names its own in the request to a child (its
    representations, its internal calls) is forwarded under its name; the parent's own take
    another (the child had refused the request: two variables of one name)."""
    q = """query($tierfedE0: Scheme!, $tierfedC0: ID!) { region(code: "440300") { pool(scheme: $tierfedE0, asOf: "2025-02")
      { id } } rollup(region: $tierfedC0, period: {from: "2025-01", to: "2025-02"}) { complete totals { insured } } }"""
    v = {"tierfedE0": "MEDICAL", "tierfedC0": "440000"}
    got, want = await fed.central(q, v), await fed.one(q, v)
    assert "errors" not in got, got
    assert got == want


async def test_a_forwarded_request_is_held_to_the_callers_limits_not_twice(fed: Federation) -> None:
    """Sixteen aliases under a region Shenzhen holds are within every node's limit of 30; the
    request central sends down gives each piece a root field and an alias of its own, which the
    children had counted against their own limits and refused (every pool null). A request a
    node above sends is held to that node's limits only; a caller asking a child directly is
    still held to the child's."""
    pools = " ".join(f'p{i}: pool(scheme: MEDICAL, asOf: "2025-{i % 6 + 1:02d}") {{ id }}' for i in range(16))
    q = '{ region(code: "440300") { code ' + pools + " } }"
    got, want = await fed.central(q), await fed.one(q)
    assert "errors" not in want and want["data"]["region"]["p0"] is not None, want
    assert got == want
    many = "{ " + " ".join(f'r{i}: region(code: "440300") {{ code }}' for i in range(21)) + " }"
    direct = await fed.nodes["shenzhen"].post(many, None, NATIONAL)
    assert direct["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX", direct


async def test_an_error_below_a_forwarded_field_is_at_its_own_path(fed: Federation) -> None:
    """A non-null field that fails below a forwarded one (an account over months before the
    pool opened) nulls the forwarded field, and its error is at its own path, as on one node
    (it had been raised at the forwarded field's path)."""
    account = 'account(period: {from: "2000-01", to: "2000-02"}) { closingBalance }'
    q = ('{ region(code: "440300") { pool(scheme: MEDICAL, asOf: "2025-03") { id ' + account + " } } "
         'p: pool(id: "440300-MEDICAL-202401") { id ' + account + " } }")
    got, want = await fed.central(q), await fed.one(q)
    assert want["errors"], want
    assert sorted(e["path"] for e in got["errors"]) == sorted(e["path"] for e in want["errors"]), (got, want)
    assert {e["extensions"]["code"] for e in got["errors"]} == {e["extensions"]["code"] for e in want["errors"]}
    assert got["data"] == want["data"]


async def test_province_token_at_central(fed: Federation) -> None:
    gd = token("440000", ("VIEWER",))
    ok = await fed.central(ROLLUP, {"r": "440300"}, gd)
    assert "errors" not in ok and ok == await fed.one(ROLLUP, {"r": "440300"}, gd)
    for region in ("510000", "000000"):
        body = await fed.central(ROLLUP, {"r": region}, gd)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    sc_person = await _a_person_of(fed, "sichuan")
    body = await fed.central('query($id: String!) { person(idNumber: $id) { name } }', {"id": sc_person}, gd)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_refusals_below_forwarded_fields_are_the_holders(fed: Federation) -> None:
    """A field a child answers inside a forwarded object (a pool outside a city token's scope,
    below that city's county) fails at the central node exactly as on the one node holding
    everything: the same data, the same error at the same path, not a silent null."""
    chengdu = token("510100", ("VIEWER",))
    q = """{ r: region(code: "510104") { code p: pool(scheme: PENSION, asOf: "2025-02") { id level }
                                         m: pool(scheme: MEDICAL, asOf: "2025-02") { id level } }
             g: region(code: "440305") { s: pool(scheme: PENSION, asOf: "2025-02") { id } } }"""

    def shape(body: dict[str, Any]) -> Any:
        return body.get("data"), sorted((tuple(e["path"]), e["extensions"]["code"]) for e in body.get("errors", []))

    want = shape(await fed.one(q, None, chengdu))
    assert want[1], want  # the case exists: some pool here lies outside the city's scope
    assert shape(await fed.central(q, None, chengdu)) == want


async def test_child_down_leaves_the_rest_intact(fed: Federation) -> None:
    want = (await fed.one(ROLLUP, {"r": "000000"}))["data"]["rollup"]
    sichuan = (await fed.one(ROLLUP, {"r": "510000"}))["data"]["rollup"]
    node = fed.nodes["sichuan"]
    await node.stop()
    try:
        t0 = time.monotonic()
        body = await fed.central(ROLLUP, {"r": "000000"})
        assert time.monotonic() - t0 < 5.0 + 2  # never past the child's timeout
        r = body["data"]["rollup"]
        assert r["complete"] is False
        assert r["missing"] == [{"code": "510000"}]
        errs = [e for e in body["errors"] if e["extensions"]["code"] == "TIER_UNAVAILABLE"]
        assert len(errs) == 1 and "sichuan" in errs[0]["message"]
        # the rest is intact: national totals minus Sichuan's, figure by figure
        for got, full, part in zip(r["totals"], want["totals"], sichuan["totals"]):
            assert got["insured"] == full["insured"] - part["insured"]
            assert _d(got["contributionTotal"]) == _d(full["contributionTotal"]) - _d(part["contributionTotal"])
            assert _d(got["benefitsPaid"]) == _d(full["benefitsPaid"]) - _d(part["benefitsPaid"])
        by_child = {c["region"]["code"]: c for c in r["byChild"]}
        assert by_child["510000"]["complete"] is False
        assert by_child["440000"]["complete"] is True
        assert by_child["440000"]["totals"] == {c["region"]["code"]: c for c in want["byChild"]}["440000"]["totals"]
        # a field answered by the dead child alone is null with the error, the rest stands
        b2 = await fed.central('{ region(code: "510100") { name pool(scheme: PENSION) { id } } }')
        assert b2["data"]["region"]["name"] == "成都市" and b2["data"]["region"]["pool"] is None
        assert b2["errors"][0]["extensions"]["code"] == "TIER_UNAVAILABLE"
    finally:
        fed.nodes["sichuan"] = await start_node(node.cfg, fed.dbs["sichuan"], node.port)
    # the pooled connection recovers when the child is back
    again = await fed.central(ROLLUP, {"r": "000000"})
    assert "errors" not in again and again["data"]["rollup"] == want


async def test_a_grandchild_down_is_named_at_the_top(fed: Federation) -> None:
    """Shenzhen (below Guangdong) stopped: the national rollup at central says it is missing,
    and its errors name it, as they name a direct child (the middle node's report of it had
    been dropped at central, leaving complete: false with no error)."""
    node = fed.nodes["shenzhen"]
    await node.stop()
    try:
        body = await fed.central(ROLLUP, {"r": "000000"})
        r = body["data"]["rollup"]
        assert r["complete"] is False and r["missing"] == [{"code": "440300"}], r
        errs = [e for e in body.get("errors", []) if e["extensions"]["code"] == "TIER_UNAVAILABLE"]
        assert len(errs) == 1 and "shenzhen" in errs[0]["message"], body.get("errors")
        assert errs[0]["extensions"]["region"] == "440300"
    finally:
        fed.nodes["shenzhen"] = await start_node(node.cfg, fed.dbs["shenzhen"], node.port)
    again = await fed.central(ROLLUP, {"r": "000000"})
    assert "errors" not in again and again["data"]["rollup"]["complete"] is True


def _d(s: str) -> Any:
    from decimal import Decimal

    return Decimal(s)


async def test_slow_and_garbage_children(new_db: Any, loaded_db: str) -> None:
    """A child that never answers times out; one that answers garbage is reported; neither hangs."""
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)
        writer.close()

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\nnot json!")
        await writer.drain()
        writer.close()

    slow_srv = await asyncio.start_server(silent, "127.0.0.1", 0)
    junk_srv = await asyncio.start_server(garbage, "127.0.0.1", 0)
    slow_port = slow_srv.sockets[0].getsockname()[1]
    junk_port = junk_srv.sockets[0].getsockname()[1]
    db = await new_db()
    central = await start_node(node_config("000000", "central", [
        {"region": "440000", "url": f"http://127.0.0.1:{slow_port}/graphql", "name": "slow", "timeout_s": 1},
        {"region": "510000", "url": f"http://127.0.0.1:{junk_port}/graphql", "name": "junk", "timeout_s": 1}]), db)
    try:
        t0 = time.monotonic()
        body = await central.post(ROLLUP, {"r": "000000"}, NATIONAL)
        assert time.monotonic() - t0 < 3
        r = body["data"]["rollup"]
        assert r["complete"] is False and r["missing"] == [{"code": "440000"}, {"code": "510000"}]
        msgs = {e["extensions"].get("node"): e["message"] for e in body["errors"]}
        assert "within 1 s" in msgs["slow"] and "garbage" in msgs["junk"]
    finally:
        await central.stop()
        slow_srv.close()
        junk_srv.close()
