"""Fund accounts across nodes (real nodes over HTTP): central, Guangdong, Shenzhen under
Guangdong, Sichuan. Guangdong's province pension pool covers records held by the Shenzhen
node; flows are booked on the node holding each pool. Every account figure, asked at the
central node, equals the raw records, transfers and flows of all four databases."""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from tierfed.tiers.tree import Tree

from tests.nodes import RunningNode, free_port, start_node
from tests.test_changes import NODES, configs, load_split, make_keys
from tests.test_fund_accounts import OP, Flow, Raw, check_account, flows_csv, m
from tierfed.config import Limits
from tierfed.importer import ImportFailed, import_file

pytestmark = pytest.mark.federation

# (node, flows): each pool's flows on the node that holds the pool.
FLOWS = {
    "guangdong": [Flow("PENSION", "440000", m(2), "FISCAL_SUBSIDY", Decimal("123456.78")),
                  Flow("PENSION", "440106", m(4), "INTEREST", Decimal("99.99")),
                  Flow("PENSION", "440000", m(6), "REMITTANCE_TO_ABOVE", Decimal("4321.00")),
                  Flow("MEDICAL", "440100", m(3), "OTHER_INCOME", Decimal("5.55"))],
    "shenzhen": [Flow("MEDICAL", "440300", m(1), "FISCAL_SUBSIDY", Decimal("700.00")),
                 Flow("MEDICAL", "440304", m(5), "SUBSIDY_TO_BELOW", Decimal("70.07"))],
    "sichuan": [Flow("PENSION", "510000", m(3), "SUBSIDY_FROM_ABOVE", Decimal("4321.00"))],
}


@dataclasses.dataclass
class Fed:
    nodes: dict[str, RunningNode]
    raw: Raw
    dbs: dict[str, str]


@pytest.fixture(scope="module")
async def fed(tmp_path_factory: pytest.TempPathFactory, tree: Tree, new_db: Any) -> AsyncIterator[Fed]:
    keys = make_keys(tmp_path_factory.mktemp("keys"))
    dbs = await load_split(tree, new_db, tmp_path_factory.mktemp("split"),
                           configs(keys, {n: i + 1 for i, n in enumerate(NODES)}))
    ports = {n: free_port() for n in NODES}
    big = Limits(max_aliases=5000, max_root_fields=5000, max_cost=100_000_000, max_body_bytes=10_000_000)
    cfgs = {n: dataclasses.replace(c, limits=big) for n, c in configs(keys, ports).items()}
    nodes = {n: await start_node(cfgs[n], dbs[n], ports[n]) for n in ("shenzhen", "guangdong", "sichuan", "central")}
    d = tmp_path_factory.mktemp("flows")
    for n, flows in FLOWS.items():
        rt = nodes[n].runtime
        rep = await import_file(rt.pool, rt.node, "fund_flows", flows_csv(d / f"{n}.csv", flows), progress=False)
        assert rep.inserted == len(flows)
    cons = [await asyncpg.connect(dbs[n]) for n in NODES]
    try:
        yield Fed(nodes, Raw(cons[0], tree, [f for fl in FLOWS.values() for f in fl], tuple(cons[1:])), dbs)
    finally:
        for con in cons:
            await con.close()
        for n in ("central", "guangdong", "sichuan", "shenzhen"):
            await nodes[n].stop()


@pytest.mark.parametrize("pool_id", ["440000-PENSION-202401", "440300-MEDICAL-202401", "440100-MEDICAL-202401",
                                     "510000-PENSION-202401", "110000-MEDICAL-202401"])
async def test_account_across_nodes_equals_raw(fed: Fed, pool_id: str) -> None:
    for first, last in ((m(1), m(6)), (m(2), m(4)), (m(6), m(6))):
        for asked in ("central", "guangdong"):
            if not pool_id.startswith("44") and asked == "guangdong":
                continue
            await check_account(fed.nodes[asked], fed.raw, pool_id, first, last)


async def test_province_pool_counts_the_child_nodes_records(fed: Fed) -> None:
    """Guangdong's pension account includes Shenzhen's records (held by the child node): without them
    the contributions would be smaller."""
    a = await check_account(fed.nodes["central"], fed.raw, "440000-PENSION-202401", m(1), m(6))
    local = await fed.raw.cons[NODES.index("guangdong")].fetchval(
        "select sum(employer_amount + individual_amount - individual_account_amount) from contribution where scheme = 1")
    assert Decimal(a["income"][0]["amount"]) > local


async def test_a_flow_for_a_pool_held_above_is_refused_on_the_child(fed: Fed, tmp_path: Path) -> None:
    rt = fed.nodes["shenzhen"].runtime
    with pytest.raises(ImportFailed) as e:
        await import_file(rt.pool, rt.node, "fund_flows",
                          flows_csv(tmp_path / "f.csv", [Flow("PENSION", "440304", m(2), "INTEREST", Decimal("1.00"))]),
                          progress=False)
    assert [(r.line, r.column) for r in e.value.errors] == [(2, "month")]
    assert "parent node" in e.value.errors[0].reason
    body = await fed.nodes["central"].post('{ pool(id: "440000-PENSION-202401") { balance(asOf: "2025-06") } }', None, OP)
    assert Decimal(body["data"]["pool"]["balance"]) == await fed.raw.balance("440000-PENSION-202401", m(6))


async def test_fund_report_across_nodes_is_the_holders_own(fed: Fed) -> None:
    """fundReport asked at the centre is forwarded whole to the node holding the region; Guangdong's
    report counts Shenzhen's insured and accounts its province pool with Shenzhen's records."""
    from tierfed.reports import QUERY

    for region, holder in (("440000", "guangdong"), ("440300", "shenzhen")):
        v = {"region": region, "year": 2025, "half": 1}
        at_centre = await fed.nodes["central"].post(QUERY, v, OP)
        at_holder = await fed.nodes[holder].post(QUERY, v, OP)
        assert "errors" not in at_centre, at_centre
        assert at_centre == at_holder
    r = at_centre["data"]["fundReport"]  # Shenzhen: pension pooled by the province, held above this node
    assert r["region"]["code"] == "440300" and not r["schemes"][0]["ownPool"]
    assert r["schemes"][0]["note"].startswith("本地区由上级统筹区统筹")
    gd = (await fed.nodes["central"].post(QUERY, {"region": "440000", "year": 2025, "half": 1}, OP))["data"]
    pension = gd["fundReport"]["schemes"][0]
    a = await check_account(fed.nodes["central"], fed.raw, "440000-PENSION-202401", m(1), m(6))
    assert pension["account"]["closingBalance"] == a["closingBalance"]
    rollup = await fed.nodes["central"].post('{ rollup(region: "440000", period: {from: "2025-01", to: "2025-06"}) '
                                             "{ totals { insured } } }", None, OP)
    assert [s["insured"] for s in gd["fundReport"]["schemes"]] == \
        [t["insured"] for t in rollup["data"]["rollup"]["totals"]]


async def test_a_fund_report_whose_holder_is_down_is_incomplete_and_the_rest_stands(fed: Fed) -> None:
    """Sichuan stopped: its report, asked at the centre, says it is incomplete and which region is
    missing, with the TIER_UNAVAILABLE error naming the node; the rest of the answer stands (the
    report may not be null, and it had taken the whole answer down with it)."""
    q = ('query($r: ID!) { fundReport(region: $r, year: 2025, half: 1) { title complete missing { code } '
         "schemes { scheme insured ownPool pool { id } account { closingBalance } } } nation { name } }")
    sichuan = fed.nodes["sichuan"]
    await sichuan.stop()
    try:
        body = await fed.nodes["central"].post(q, {"r": "510000"}, OP)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{fed.nodes['central'].port}") as c:
            got = await c.get("/reports/fund", params={"region": "510000", "year": "2025", "half": "1",
                                                       "format": "csv"}, headers={"Authorization": f"Bearer {OP}"})
    finally:
        fed.nodes["sichuan"] = await start_node(sichuan.cfg, fed.dbs["sichuan"], sichuan.port)
    assert body["data"] is not None and body["data"]["nation"]["name"], body
    r = body["data"]["fundReport"]
    assert r["complete"] is False and r["missing"] == [{"code": "510000"}], r
    assert r["title"] == "四川省2025年上半年社会保险基金报告"
    assert all(s["insured"] == 0 and s["pool"] is None and s["account"] is None for s in r["schemes"]), r
    assert [e["extensions"]["code"] for e in body["errors"]] == ["TIER_UNAVAILABLE"]
    assert "sichuan" in body["errors"][0]["message"]
    # The CSV says so on every row, and leaves the unknown figures empty rather than zero.
    assert got.status_code == 200, got.text
    rows = list(csv.DictReader(io.StringIO(got.text.lstrip("\ufeff"))))
    assert rows and all(r["complete"] == "false" and r["missing"] == "510000" for r in rows), rows[:2]
    assert {r["value"] for r in rows if r["item"] in ("insured", "beneficiaries")} == {""}, rows[:2]
