"""Settling the central adjustment across real nodes (central, Guangdong, Shenzhen under
Guangdong, Sichuan; node keys, real HTTP): every province pool books its remittance and its
allocation, they add up to the same total to the fen and the federation's pension pools keep
their sum (the conservation law); idempotent; a refusal or a node down leaves nothing booked
on any node."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from tierfed.tiers import changestore
from tierfed.tiers.tree import Tree

from tests.conftest import load_dataset, token
from tests.nodes import RunningNode, free_port, start_node
from tests.test_changes import NATIONAL_OP, NODES, RAISE, SC_OP, configs, make_keys, owner_of
from tests.test_fund_accounts import Flow, flows_csv
from tierfed.config import Limits
from tierfed.generator import Options, generate
from tierfed.importer import ImportFailed, import_file

pytestmark = [pytest.mark.federation, pytest.mark.slow]

SETTLE = """mutation($in: SettleCentralAdjustmentInput!) { settleCentralAdjustment(input: $in) {
  changeId state month replayed dryRun total
  bookings { region { code } pool remittance allocation } } }"""
ADJUSTMENT = """{ centralAdjustment(year: 2024, ratio: "0.045") { complete
  provinces { region { code } remittance allocation } } }"""
PROVINCES = ("110000", "120000", "130000", "140000", "150000", "210000", "220000", "230000", "310000", "320000",
             "330000", "340000", "350000", "360000", "370000", "410000", "420000", "430000", "440000", "450000",
             "460000", "500000", "510000", "520000", "530000", "540000", "610000", "620000", "630000", "640000",
             "650000")
BALANCES = "{ " + " ".join(f'p{p}: pool(id: "{p}-PENSION-202401") {{ balance(asOf: "2025-03") }}'
                           for p in PROVINCES) + " }"
FLOWS = "select region_code, month, category, amount from fund_flow where category in " \
        "('REMITTANCE_TO_ABOVE', 'SUBSIDY_FROM_ABOVE') order by 1, 2, 3"


@dataclasses.dataclass
class Fed:
    nodes: dict[str, RunningNode]
    dbs: dict[str, str]

    async def ask(self, query: str, variables: dict[str, Any] | None = None, tok: str = NATIONAL_OP,
                  node: str = "central") -> dict[str, Any]:
        return await self.nodes[node].post(query, variables, tok)

    async def flows(self) -> dict[str, list[tuple[Any, ...]]]:
        return {n: [tuple(r) for r in await rn.runtime.pool.fetch(FLOWS)] for n, rn in self.nodes.items()}

    async def balances(self) -> dict[str, Decimal]:
        body = await self.ask(BALANCES)
        assert "errors" not in body, body["errors"]
        return {k[1:]: Decimal(v["balance"]) for k, v in body["data"].items()}

    async def settled(self) -> None:
        for rn in self.nodes.values():
            await rn.runtime.changes.settled()


@pytest.fixture(scope="module")
async def fed(tmp_path_factory: pytest.TempPathFactory, tree: Tree, new_db: Any) -> AsyncIterator[Fed]:
    keys = make_keys(tmp_path_factory.mktemp("keys"))
    out = tmp_path_factory.mktemp("year")
    # A whole year (the adjustment reads December), split by node.
    generate(tree, out, Options(persons=600, first=date(2024, 1, 1), last=date(2024, 12, 1), seed=15),
             split=lambda region: owner_of(tree, region))
    load_cfgs = configs(keys, {n: i + 1 for i, n in enumerate(NODES)})
    dbs = {}
    for n in NODES:
        dbs[n] = await new_db()
        await load_dataset(dbs[n], load_cfgs[n], out / n)
    ports = {n: free_port() for n in NODES}
    big = Limits(max_aliases=5000, max_root_fields=5000, max_cost=100_000_000, max_body_bytes=10_000_000)
    cfgs = {n: dataclasses.replace(c, limits=big) for n, c in configs(keys, ports).items()}
    nodes = {n: await start_node(cfgs[n], dbs[n], ports[n]) for n in ("shenzhen", "guangdong", "sichuan", "central")}
    yield Fed(nodes, dbs)
    for rn in nodes.values():
        try:
            await rn.stop()
        except Exception:  # noqa: BLE001 - a test may have stopped it
            pass


def settle_in(**over: Any) -> dict[str, Any]:
    return {"in": {"year": 2024, "ratio": "0.045", "idempotencyKey": "adj-2024", **over}}


async def nothing_booked(fed: Fed, before: dict[str, list[tuple[Any, ...]]]) -> None:
    await fed.settled()
    assert await fed.flows() == before
    # and no reservation is left behind: every node's pools are free again
    for rn in fed.nodes.values():
        assert await rn.runtime.pool.fetchval("select count(*) from change_reservation") == 0


async def test_a_dry_run_books_nothing_and_shares_the_total_to_the_fen(fed: Fed) -> None:
    before = await fed.flows()
    body = await fed.ask(SETTLE, settle_in(dryRun=True))
    assert "errors" not in body, body
    r = body["data"]["settleCentralAdjustment"]
    assert r["dryRun"] and r["state"] is None and r["changeId"] is None and r["month"] == "2024-12"
    assert [b["region"]["code"] for b in r["bookings"]] == list(PROVINCES)
    assert [b["pool"] for b in r["bookings"]] == [f"{p}-PENSION-202401" for p in PROVINCES]
    rem = sum(Decimal(b["remittance"]) for b in r["bookings"])
    alloc = sum(Decimal(b["allocation"]) for b in r["bookings"])
    assert rem == alloc == Decimal(r["total"]) > 0
    adj = (await fed.ask(ADJUSTMENT))["data"]["centralAdjustment"]
    assert adj["complete"]
    assert [(b["region"]["code"], b["remittance"], b["allocation"]) for b in r["bookings"]] == \
        [(p["region"]["code"], p["remittance"], p["allocation"]) for p in adj["provinces"]]
    await nothing_booked(fed, before)


async def test_a_participant_refusing_aborts_the_whole_settlement(fed: Fed, tmp_path: Path) -> None:
    """Guangdong's pool already has a remittance in 2025-01: its prepare says CONFLICT; the
    central node's own provinces and Sichuan book nothing either."""
    rt = fed.nodes["guangdong"].runtime
    await import_file(rt.pool, rt.node, "fund_flows", flows_csv(tmp_path / "f.csv", [
        Flow("PENSION", "440000", date(2025, 1, 1), "REMITTANCE_TO_ABOVE", Decimal("1.00"))]), progress=False)
    before = await fed.flows()
    body = await fed.ask(SETTLE, settle_in(month="2025-01", idempotencyKey="adj-2024-jan"))
    err = body["errors"][0]
    assert err["extensions"]["code"] == "CONFLICT", err
    assert "440000-PENSION-202401 already has REMITTANCE_TO_ABOVE" in err["message"] and "guangdong" in err["message"]
    await nothing_booked(fed, before)


async def test_fund_flows_for_a_pool_a_settlement_holds_wait_until_it_is_decided(
        fed: Fed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a settlement is prepared, an import of fund flows into a pool it will book is
    refused, saying which change holds the pool; before, the import went through and the
    settlement's commit then failed on Guangdong for good (its remittance already there). The
    settlement held here is then given up (the year is settled by the test after this one):
    nothing is booked, the pools are free again and the same flow imports."""
    gate = asyncio.Event()
    real = changestore.decide

    async def held(con: Any, change_id: str, state: str, result: Any = None, flushed: bool = True) -> bool:
        if state == "COMMITTED" and isinstance(result, dict) and "bookings" in result:  # the coordinator's decision
            await gate.wait()
            raise ConnectionError("the coordinator gives the settlement up")
        return await real(con, change_id, state, result, flushed)

    monkeypatch.setattr(changestore, "decide", held)
    before = await fed.flows()
    settling = asyncio.create_task(fed.ask(SETTLE, settle_in(month="2025-02", idempotencyKey="adj-2024-feb")))
    rt = fed.nodes["guangdong"].runtime
    flow = [Flow("PENSION", "440000", date(2025, 2, 1), "REMITTANCE_TO_ABOVE", Decimal("1.00"))]
    try:
        for _ in range(400):  # until Guangdong has prepared its part
            if await rt.pool.fetchval("select count(*) from change_reservation"):
                break
            await asyncio.sleep(0.025)
        else:
            raise AssertionError("Guangdong never prepared its part of the settlement")
        with pytest.raises(ImportFailed) as failed:
            await import_file(rt.pool, rt.node, "fund_flows", flows_csv(tmp_path / "f.csv", flow), progress=False)
        (err,) = failed.value.errors
        assert err.column == "region_code" and "is held by change" in err.reason and "in progress" in err.reason, err
    finally:
        gate.set()
        body = await settling
        monkeypatch.undo()
    assert body["errors"], body
    await nothing_booked(fed, before)
    rep = await import_file(rt.pool, rt.node, "fund_flows", flows_csv(tmp_path / "g.csv", flow), progress=False)
    assert rep.inserted == 1


async def test_a_province_node_down_refuses_the_whole_settlement(fed: Fed) -> None:
    before = await fed.flows()
    sichuan = fed.nodes["sichuan"]
    await sichuan.stop()
    try:
        body = await fed.ask(SETTLE, settle_in(idempotencyKey="adj-2024-down"))
        err = body["errors"][0]
        assert err["extensions"]["code"] == "TIER_UNAVAILABLE" and "510000" in err["message"], err
        assert body["data"] is None
    finally:
        fed.nodes["sichuan"] = await start_node(sichuan.cfg, fed.dbs["sichuan"], sichuan.port)
    await nothing_booked(fed, before)


async def test_a_key_a_participant_used_for_another_change_refuses_the_settlement(fed: Fed) -> None:
    """Idempotency keys hold across kinds and nodes: Sichuan raised MEDICAL under a key the
    centre has never seen; a settlement under that key is refused by Sichuan's prepare, and
    nothing is booked anywhere."""
    raised = await fed.ask(RAISE, {"in": {"scheme": "MEDICAL", "region": "510000", "effectiveFrom": "2025-04",
                                          "idempotencyKey": "sc-medical-2025"}}, tok=SC_OP, node="sichuan")
    assert "errors" not in raised, raised
    before = await fed.flows()
    body = await fed.ask(SETTLE, settle_in(idempotencyKey="sc-medical-2025"))
    err = body["errors"][0]
    assert err["extensions"]["code"] == "CONFLICT", err
    assert "sc-medical-2025" in err["message"] and "sichuan" in err["message"], err
    await nothing_booked(fed, before)


async def test_settled_every_province_pool_books_its_part_and_the_sum_is_kept(fed: Fed) -> None:
    balances = await fed.balances()
    body = await fed.ask(SETTLE, settle_in())
    assert "errors" not in body, body
    r = body["data"]["settleCentralAdjustment"]
    assert r["state"] == "COMMITTED" and not r["replayed"] and not r["dryRun"]
    await fed.settled()
    booked: dict[tuple[str, str], Decimal] = {}
    for n, rows in (await fed.flows()).items():
        for region, month, category, amount in rows:
            if month == date(2024, 12, 1):
                assert (region, category) not in booked, "booked twice"
                booked[(region, category)] = amount
                assert owner_of(fed.nodes[n].runtime.node.tree, region) == n, "booked on the node holding the pool"
    want = {}
    for b in r["bookings"]:
        want[(b["region"]["code"], "REMITTANCE_TO_ABOVE")] = Decimal(b["remittance"])
        want[(b["region"]["code"], "SUBSIDY_FROM_ABOVE")] = Decimal(b["allocation"])
    assert booked == want
    remitted = sum(v for (_, c), v in booked.items() if c == "REMITTANCE_TO_ABOVE")
    allocated = sum(v for (_, c), v in booked.items() if c == "SUBSIDY_FROM_ABOVE")
    assert remitted == allocated == Decimal(r["total"]) > 0
    # The conservation law: each pool moved by its allocation less its remittance, the sum of all not at all.
    after = await fed.balances()
    for b in r["bookings"]:
        p = b["region"]["code"]
        assert after[p] - balances[p] == Decimal(b["allocation"]) - Decimal(b["remittance"]), p
    assert sum(after.values()) == sum(balances.values())
    assert any(after[p] != balances[p] for p in PROVINCES)
    # The pools' accounts show the flows, on the node holding them, asked at the centre.
    acc = await fed.ask('{ pool(id: "440000-PENSION-202401") { account(period: {from: "2024-12", to: "2024-12"}) '
                        "{ income { category amount } expenditure { category amount } } } }")
    a = acc["data"]["pool"]["account"]
    assert {f["category"]: Decimal(f["amount"]) for f in a["income"]}["SUBSIDY_FROM_ABOVE"] == \
        want[("440000", "SUBSIDY_FROM_ABOVE")]
    assert {f["category"]: Decimal(f["amount"]) for f in a["expenditure"]}["REMITTANCE_TO_ABOVE"] == \
        want[("440000", "REMITTANCE_TO_ABOVE")]
    # The change as the coordinator records it, every participant told.
    ch = await fed.ask("{ changes(first: 5) { id kind state participants { node state } } }")
    (mine,) = [c for c in ch["data"]["changes"] if c["id"] == r["changeId"]]
    assert mine["kind"] == "settleCentralAdjustment" and mine["state"] == "COMMITTED"
    assert {p["node"]: p["state"] for p in mine["participants"] if p["node"] != "central"} == \
        {"guangdong": "COMMITTED", "sichuan": "COMMITTED"}

    # Idempotent: the same key again books nothing more and gives the same answer.
    flows = await fed.flows()
    again = (await fed.ask(SETTLE, settle_in()))["data"]["settleCentralAdjustment"]
    assert again["replayed"] and again["changeId"] == r["changeId"] and again["bookings"] == r["bookings"]
    same = (await fed.ask(SETTLE, settle_in(ratio="0.0450")))["data"]["settleCentralAdjustment"]
    assert same["replayed"] and same["changeId"] == r["changeId"], same  # the same ratio, written otherwise
    other = await fed.ask(SETTLE, settle_in(ratio="0.05"))
    assert other["errors"][0]["extensions"]["code"] == "CONFLICT"
    # another key, the same month or another: the year is settled (it had been booked again in another month)
    for month in ("2024-12", "2025-03"):
        twice = await fed.ask(SETTLE, settle_in(idempotencyKey=f"adj-2024-{month}", month=month))
        err = twice["errors"][0]
        assert err["extensions"]["code"] == "CONFLICT" and "a year is settled once" in err["message"], err
    await fed.settled()
    assert await fed.flows() == flows


@pytest.mark.parametrize(("variables", "tok", "node", "code", "says"), [
    (settle_in(), token("000000", ("VIEWER",)), "central", "FORBIDDEN", "OPERATOR"),
    (settle_in(month="2024-11"), NATIONAL_OP, "central", "BAD_USER_INPUT", "December"),
    (settle_in(idempotencyKey=""), NATIONAL_OP, "central", "BAD_USER_INPUT", "idempotencyKey"),
    (settle_in(ratio="2"), NATIONAL_OP, "central", "BAD_USER_INPUT", "ratio"),
    (settle_in(year=0), NATIONAL_OP, "central", "BAD_USER_INPUT", "year 0 is out of range"),
    (settle_in(), token("440000", ("VIEWER", "OPERATOR")), "guangdong", "BAD_USER_INPUT", "central node"),
])
async def test_bad_settlements_are_refused(fed: Fed, variables: dict[str, Any], tok: str, node: str, code: str,
                                           says: str) -> None:
    before = await fed.flows()
    body = await fed.ask(SETTLE, variables, tok, node)
    err = body["errors"][0]
    assert err["extensions"]["code"] == code and says in err["message"], err
    assert await fed.flows() == before
