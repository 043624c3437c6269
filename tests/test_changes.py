"""Changes across nodes with real nodes over HTTP, three tiers deep: raises over
subtrees that span child nodes, checked figure by figure against the same raise
previewed on one node holding all the data, with nothing changed anywhere when
a participant refuses or is down.

Topology: central (000000) with Guangdong (440000) and Sichuan (510000) as
child nodes and Shenzhen (440300) as a child of Guangdong; every node has a key
pair and trusts its parent's. The tests of this module run in order on one
federation (each leaves what the next expects).
"""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from tierfed.tiers import changestore
from tierfed.tiers.identity import generate_key_pair
from tierfed.tiers.store import POOLS
from tierfed.tiers.tree import Tree

from tests.conftest import SECRET, import_held, load_dataset, token
from tests.nodes import RunningNode, free_port, start_node
from tierfed.codes import id_check_char
from tierfed.config import NodeConfig, parse
from tierfed.generator import Options, generate
from tierfed.importer import ImportFailed, import_file

pytestmark = pytest.mark.federation

NATIONAL_OP = token("000000", ("VIEWER", "OPERATOR", "AUDITOR"), sub="op-national")
GD_OP = token("440000", ("VIEWER", "OPERATOR"), sub="op-gd")
RAISE = """mutation($in: RaisePoolingLevelInput!) { raisePoolingLevel(input: $in) {
  pool { id level openedFrom openingBalance balance(asOf: "2025-06") predecessors { id } }
  closed { id level closedAfter balance(asOf: "2025-06") } transferred dryRun replayed state } }"""
NODES = ("central", "guangdong", "shenzhen", "sichuan")
REGIONS = {"central": "000000", "guangdong": "440000", "shenzhen": "440300", "sichuan": "510000"}
PARENT = {"guangdong": "central", "sichuan": "central", "shenzhen": "guangdong"}


def owner_of(tree: Tree, region: str) -> str:
    for root, name in (("440300", "shenzhen"), ("440000", "guangdong"), ("510000", "sichuan")):
        if tree.within(region, root):
            return name
    return "central"


def configs(keys: Path, ports: dict[str, int], **node_extra: Any) -> dict[str, NodeConfig]:
    """The four nodes' configurations, with node keys and parents."""
    def url(n: str) -> str:
        return f"http://127.0.0.1:{ports[n]}/graphql"

    out = {}
    for n in NODES:
        kids = [{"region": REGIONS[k], "url": url(k), "name": k, "timeout_s": 20,
                 "public_key_file": str(keys / f"{k}.pub")} for k, p in PARENT.items() if p == n]
        data: dict[str, Any] = {
            "node": {"name": n, "region": REGIONS[n], "listen": f"127.0.0.1:{ports[n]}",
                     "check_children_at_start": False, "private_key_file": str(keys / f"{n}.key"),
                     "recovery_interval_s": 0.5, **node_extra},
            "auth": {"jwt_secret": SECRET}, "children": kids,
            # a parent asks a child about each of its pools in one request: one root field per pool
            "limits": {"max_root_fields": 200, "max_aliases": 200}}
        if n in PARENT:
            data["parent"] = {"name": PARENT[n], "url": url(PARENT[n]), "public_key_file": str(keys / f"{PARENT[n]}.pub")}
        out[n] = parse(data)
    return out


def make_keys(directory: Path) -> Path:
    for n in NODES:
        generate_key_pair(directory / f"{n}.key", directory / f"{n}.pub")
    return directory


async def load_split(tree: Tree, new_db: Any, out: Path, cfgs: dict[str, NodeConfig]) -> dict[str, str]:
    generate(tree, out, Options(persons=2000, first=date(2025, 1, 1), last=date(2025, 6, 1), seed=7),
             split=lambda region: owner_of(tree, region))
    dbs = {}
    for n in NODES:
        dbs[n] = await new_db()
        await load_dataset(dbs[n], cfgs[n], out / n)
    return dbs


@dataclass
class Fed:
    nodes: dict[str, RunningNode]
    dbs: dict[str, str]
    single: RunningNode
    cfgs: dict[str, NodeConfig]

    async def ask(self, node: str, query: str, variables: dict[str, Any] | None = None, tok: str = NATIONAL_OP) -> Any:
        return await self.nodes[node].post(query, variables, tok)

    async def settle(self) -> None:
        """The decisions made are told to every node (a child that could not be reached is told later)."""
        for rn in self.nodes.values():
            await rn.runtime.changes.settled()

    async def pools(self) -> dict[str, list[tuple[Any, ...]]]:
        return {n: [tuple(r) for r in await rn.runtime.pool.fetch(
            "select id, closed_after, successor_id from pool order by id")] for n, rn in self.nodes.items()}


@pytest.fixture(scope="module")
async def fed(tmp_path_factory: pytest.TempPathFactory, tree: Tree, new_db: Any, loaded_db: str) -> AsyncIterator[Fed]:
    keys = make_keys(tmp_path_factory.mktemp("keys"))
    dbs = await load_split(tree, new_db, tmp_path_factory.mktemp("split"), configs(keys, {n: i + 1 for i, n in enumerate(NODES)}))
    ports = {n: free_port() for n in NODES}  # chosen once the data are loaded: less time for another run to take them
    cfgs = configs(keys, ports)
    nodes = {}
    for n in ("shenzhen", "guangdong", "sichuan", "central"):
        nodes[n] = await start_node(cfgs[n], dbs[n], ports[n])
    single = await start_node(parse({"node": {"name": "single", "region": "000000", "check_children_at_start": False},
                                     "auth": {"jwt_secret": SECRET}}), loaded_db)
    yield Fed(nodes, dbs, single, cfgs)
    for rn in [single, *nodes.values()]:
        try:
            await rn.stop()
        except Exception:  # noqa: BLE001 - a test may have stopped it
            pass


def _raise_in(**over: Any) -> dict[str, Any]:
    return {"in": {"scheme": "PENSION", "region": "000000", "effectiveFrom": "2025-04",
                   "idempotencyKey": "nation-pension-2025-04", **over}}


def _d(s: str) -> Decimal:
    return Decimal(s)


async def test_province_pool_spanning_a_child_node_is_imported_and_adds_the_childs_flows(fed: Fed) -> None:
    """Guangdong holds 440000's PENSION pool although Shenzhen holds 440300: its balance is the one-node figure."""
    q = '{ pool(id: "440000-PENSION-202401") { id openingBalance balance(asOf: "2025-06") } }'
    got = await fed.ask("guangdong", q)
    assert "errors" not in got, got
    assert got["data"] == (await fed.single.post(q, None, NATIONAL_OP))["data"]
    assert got == await fed.ask("central", q)


async def test_the_internal_pool_call_computes_only_the_figures_asked(fed: Fed) -> None:
    """A parent reading a pool chain across nodes asks the child for the figures it reads (``want``):
    the others are not computed. A call without ``want`` (an older node's) gets them all."""
    pid = "440000-PENSION-202401"
    q = 'query($a: [JSON!]!) { _tierCall(kind: "pool", args: $a) }'
    full = await fed.ask("guangdong", '{ pool(id: "%s") { openingBalance balance(asOf: "2025-06") } }' % pid)
    assert "errors" not in full, full
    got = await fed.ask("guangdong", q, {"a": [{"id": pid, "want": []}, {"id": pid, "want": ["openingBalance"]},
                                              {"id": pid, "want": [], "asOf": "2025-06"}, {"id": pid}]})
    assert "errors" not in got, got
    alone, opening, balance, older = got["data"]["_tierCall"]
    assert alone["openingBalance"] is None and alone["predecessors"] is None and alone["balance"] is None
    assert opening["openingBalance"] == full["data"]["pool"]["openingBalance"] and opening["predecessors"] is None
    assert balance["balance"] == full["data"]["pool"]["balance"] and balance["openingBalance"] is None
    assert older["openingBalance"] == full["data"]["pool"]["openingBalance"] and older["predecessors"] == []
    bad = await fed.ask("guangdong", q, {"a": [{"id": pid, "want": ["everything"]}]})
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT" and "want" in bad["errors"][0]["message"]
    # several pools in one call are read together: one statement for the pools, not one each
    rt = fed.nodes["guangdong"].runtime
    rt.statements.queries = []
    try:
        two = await fed.ask("guangdong", q, {"a": [{"id": pid, "want": []}, {"id": "440000-MEDICAL-202401", "want": []}]})
        ran = list(rt.statements.queries)
    finally:
        rt.statements.queries = None
    assert "errors" not in two, two
    assert two["data"]["_tierCall"][0]["openedFrom"] and two["data"]["_tierCall"][1] == {}  # MEDICAL: a city's pool
    assert sum(1 for x in ran if x.strip() == POOLS.strip()) == 1, ran


ENTITIES = """query($r: [_Any!]!) { _entities(representations: $r) { __typename ...P
  ... on Region { code name } } }
fragment P on Pool { id level openingBalance balance(asOf: "2025-06") region { code } predecessors { id } }"""


async def test_a_gateways_pool_references_are_answered_by_the_node_holding_them(fed: Fed) -> None:
    """``_entities`` at central for pools held on Guangdong, on Shenzhen under it, and at central:
    the answer of one node holding everything, in the representations' order; out of the
    caller's scope, FORBIDDEN at that entity's index as on one node."""
    reps = [{"__typename": "Pool", "id": "440000-PENSION-202401"}, {"__typename": "Region", "code": "440300"},
            {"__typename": "Pool", "id": "440300-MEDICAL-202401"}, {"__typename": "Pool", "id": "110000-PENSION-202401"}]
    got = await fed.ask("central", ENTITIES, {"r": reps})
    assert "errors" not in got, got
    want = await fed.single.post(ENTITIES, {"r": reps}, NATIONAL_OP)
    assert "errors" not in want, want
    assert got["data"] == want["data"]
    assert [e["__typename"] for e in got["data"]["_entities"]] == ["Pool", "Region", "Pool", "Pool"]
    assert got["data"]["_entities"][2]["id"] == "440300-MEDICAL-202401"
    scoped = await fed.ask("central", ENTITIES, {"r": reps}, SC_OP)
    alone = await fed.single.post(ENTITIES, {"r": reps}, SC_OP)
    assert scoped["data"] == alone["data"]
    assert [(e["path"], e["extensions"]["code"]) for e in scoped["errors"]] == \
        [(e["path"], e["extensions"]["code"]) for e in alone["errors"]] == \
        [(["_entities", i], "FORBIDDEN") for i in (0, 2, 3)]


async def test_dry_run_across_nodes_matches_one_node_and_changes_nothing(fed: Fed) -> None:
    before = await fed.pools()
    got = await fed.ask("central", RAISE, _raise_in(dryRun=True))
    assert "errors" not in got, got
    want = await fed.single.post(RAISE, _raise_in(dryRun=True), NATIONAL_OP)
    assert "errors" not in want, want
    r, w = got["data"]["raisePoolingLevel"], want["data"]["raisePoolingLevel"]
    assert r["dryRun"] is True and r["state"] is None
    assert len(r["closed"]) == 31  # 28 provinces at central, Guangdong's and Sichuan's on their nodes
    assert sorted(r["closed"], key=lambda p: p["id"]) == sorted(w["closed"], key=lambda p: p["id"])
    assert r["transferred"] == w["transferred"]
    assert r["pool"]["openingBalance"] == w["pool"]["openingBalance"] == r["transferred"]
    assert r["pool"]["balance"] == w["pool"]["balance"]
    assert await fed.pools() == before


async def test_a_participant_down_before_the_decision_changes_nothing_anywhere(fed: Fed) -> None:
    before = await fed.pools()
    sichuan = fed.nodes["sichuan"]
    await sichuan.stop()
    try:
        got = await fed.ask("central", RAISE, _raise_in(idempotencyKey="down-1"))
        err = got["errors"][0]
        assert err["extensions"]["code"] == "TIER_UNAVAILABLE" and "sichuan" in err["message"]
        assert "sichuan" in err["extensions"]["nodes"]
    finally:
        fed.nodes["sichuan"] = await start_node(sichuan.cfg, fed.dbs["sichuan"], sichuan.port)
    assert await fed.pools() == before
    # Guangdong (and Shenzhen below it) had reserved: released by the abort
    for n in ("central", "guangdong", "shenzhen"):
        assert await fed.nodes[n].runtime.pool.fetchval("select count(*) from change_reservation") == 0
    ch = await fed.ask("central", '{ changes(state: ABORTED) { kind state idempotencyKey participants { node state } } }')
    assert ch["data"]["changes"][0]["idempotencyKey"] == "down-1"


async def test_a_participant_that_refuses_makes_it_a_clear_error(fed: Fed) -> None:
    before = await fed.pools()
    # MEDICAL is pooled by city: raising it to the nation from before the pools opened is refused on each node
    got = await fed.ask("central", RAISE, _raise_in(scheme="MEDICAL", effectiveFrom="2024-01", idempotencyKey="bad-1"))
    err = got["errors"][0]
    assert err["extensions"]["code"] == "BAD_USER_INPUT" and "effectiveFrom 2024-01" in err["message"]
    assert await fed.pools() == before


async def test_a_change_a_child_asked_about_before_its_intent_was_recorded_aborts_everywhere(
        fed: Fed, monkeypatch: pytest.MonkeyPatch) -> None:
    """The coordinator records its intent while its children prepare. A child asking about a
    change the coordinator has no record of is told it is aborted, and that is recorded first:
    the intent's insert then fails on it, and the change aborts on every node instead of being
    committed after a child released its part."""
    before = await fed.pools()
    central = fed.nodes["central"].runtime.changes
    gd = fed.nodes["guangdong"].runtime.changes
    change_id = "5e7e" * 8
    asked = await gd.send(gd.parent, {"op": "status", "change": change_id})  # as its recovery asks, signed
    assert asked["state"] == "ABORTED", asked
    monkeypatch.setattr(central, "new_id", lambda: change_id)  # the next change central starts has that id
    got = await fed.ask("central", RAISE, _raise_in(idempotencyKey="presumed-1"))
    monkeypatch.undo()
    err = got["errors"][0]
    assert err["extensions"]["code"] == "CONFLICT" and "given up" in err["message"], err
    assert await fed.pools() == before
    for n in NODES:  # what Guangdong, Shenzhen and Sichuan reserved was released before the answer
        rt = fed.nodes[n].runtime
        assert await rt.pool.fetchval("select count(*) from change_reservation") == 0, n
        assert await rt.pool.fetchval("select count(*) from change where state = 'PENDING'") == 0, n
    # the presumption is no change of its own: not listed
    ch = await fed.ask("central", '{ changes { id kind } }')
    assert change_id not in [c["id"] for c in ch["data"]["changes"]]
    # and the key was not used up: the same raise as a dry run goes through
    again = await fed.ask("central", RAISE, _raise_in(idempotencyKey="presumed-1", dryRun=True))
    assert "errors" not in again, again


async def test_deeper_raise_province_over_a_city_node(fed: Fed) -> None:
    """Guangdong raises MEDICAL to the province over Shenzhen's node: the one-node figures."""
    inp = {"in": {"scheme": "MEDICAL", "region": "440000", "effectiveFrom": "2025-04", "idempotencyKey": "gd-med"}}
    want = (await fed.single.post(RAISE, {"in": {**inp["in"], "dryRun": True}}, GD_OP))["data"]["raisePoolingLevel"]
    got = await fed.ask("guangdong", RAISE, inp, GD_OP)
    assert "errors" not in got, got
    await fed.settle()
    r = got["data"]["raisePoolingLevel"]
    assert r["state"] == "COMMITTED" and r["dryRun"] is False
    assert r["transferred"] == want["transferred"] and len(r["closed"]) == len(want["closed"]) == 21
    # afterwards, read from the top: the same figures
    q = '{ pool(id: "440000-MEDICAL-202504") { openingBalance balance(asOf: "2025-06") predecessors { id } } }'
    top = await fed.ask("central", q, tok=GD_OP)
    assert "errors" not in top, top
    assert top["data"]["pool"]["openingBalance"] == want["pool"]["openingBalance"]
    assert top["data"]["pool"]["balance"] == want["pool"]["balance"]
    assert "440300-MEDICAL-202401" in {p["id"] for p in top["data"]["pool"]["predecessors"]}
    sz = await fed.nodes["shenzhen"].runtime.pool.fetchrow("select closed_after, successor_id from pool "
                                                          "where id = '440300-MEDICAL-202401'")
    assert (sz["closed_after"], sz["successor_id"]) == (date(2025, 3, 1), "440000-MEDICAL-202504")


SC_OP = token("510000", ("VIEWER", "OPERATOR"), sub="op-sc")
TRANSFER = """mutation($in: TransferInsuranceInput!) { transferInsurance(input: $in) {
  replayed dryRun transfer { id state from { code } to { code } effectiveFrom person { idNumber name region { code } }
    schemes { scheme individualAccount pooledFund fromPool { id } toPool { id } } } } }"""
TO = "510104"
UNKNOWN_ID = "11010119000101999" + id_check_char("11010119000101999")


async def _gd_person(fed: Fed) -> str:
    return str(await fed.nodes["guangdong"].runtime.pool.fetchval(
        "select p.id_number from person p where p.region_code like '4401%' and exists (select 1 from contribution c "
        "where c.id_number = p.id_number and c.scheme = 1) order by 1 limit 1"))


async def _state(fed: Fed) -> Any:
    out = {}
    for n, rn in fed.nodes.items():
        con = rn.runtime.pool
        out[n] = (await con.fetch("select * from person where id_number like '4%' order by id_number"),
                  await con.fetchval("select count(*) from insurance_transfer"),
                  await con.fetchval("select sum(transfers_in) + sum(transfers_out) from summary"),
                  await con.fetchval("select count(*) from change_reservation"))
    return out


async def test_transfer_refusals_change_nothing_anywhere(fed: Fed) -> None:
    person = await _gd_person(fed)
    before = await _state(fed)

    def tin(**over: Any) -> dict[str, Any]:
        return {"in": {"idNumber": person, "to": TO, "effectiveFrom": "2025-07", "idempotencyKey": "t-bad", **over}}

    cases = [
        (tin(effectiveFrom="2025-03"), SC_OP, "BAD_USER_INPUT", "last record at the origin"),
        (tin(idNumber=person[:6] + "********" + person[-4:]), SC_OP, "BAD_USER_INPUT", "masked"),
        (tin(idNumber=UNKNOWN_ID), SC_OP, "BAD_USER_INPUT", "no person with ID number"),
        (tin(to="510100"), SC_OP, "BAD_USER_INPUT", "county, or a city without counties"),
        (tin(to="440106"), SC_OP, "FORBIDDEN", "outside your token's scope"),
        (tin(to="999999"), SC_OP, "BAD_USER_INPUT", "names no region"),
        (tin(), token("510000", ("VIEWER",)), "FORBIDDEN", "OPERATOR"),
    ]
    for variables, tok, code, words in cases:
        got = await fed.ask("central", TRANSFER, variables, tok)
        assert got["errors"][0]["extensions"]["code"] == code, (variables, got)
        assert words in got["errors"][0]["message"], got
    own = await fed.nodes["guangdong"].runtime.pool.fetchval("select region_code from person where id_number = $1", person)
    got = await fed.ask("central", TRANSFER, tin(to=own), NATIONAL_OP)
    assert got["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT" and "already registered" in got["errors"][0]["message"]
    assert await _state(fed) == before


async def test_transfer_from_guangdong_to_sichuan(fed: Fed, tmp_path: Path) -> None:
    person = await _gd_person(fed)
    gd = fed.nodes["guangdong"].runtime.pool
    bases, account, med_account, origin = await gd.fetchrow(
        "select sum(base) filter (where scheme = 1), sum(individual_account_amount) filter (where scheme = 1), "
        "sum(individual_account_amount) filter (where scheme = 2), min(region_code) from contribution where id_number = $1",
        person)
    pooled = (bases * Decimal("0.12")).quantize(Decimal("0.01"))
    q = """{ g: pool(id: "440000-PENSION-202401") { balance(asOf: "2025-07") transfersOut(asOf: "2025-07") }
             s: pool(id: "510000-PENSION-202401") { balance(asOf: "2025-07") transfersIn(asOf: "2025-07") } }"""
    b0 = (await fed.ask("central", q))["data"]
    before = await _state(fed)
    inp = {"in": {"idNumber": person, "to": TO, "effectiveFrom": "2025-07", "idempotencyKey": "t-1"}}
    dry = await fed.ask("central", TRANSFER, {"in": {**inp["in"], "dryRun": True}}, SC_OP)
    assert "errors" not in dry, dry
    assert await _state(fed) == before  # a dry run changes nothing anywhere
    # but it released the person's figures to an operator whose scope is not the origin's: audited
    reads = await fed.ask("central", "query($i: String) { piiReads(idNumber: $i, limit: 5) { caller operation } }",
                          {"i": person})
    assert [(r["caller"], r["operation"].split(":sha256:")[0]) for r in reads["data"]["piiReads"]] == \
        [("op-sc", "transferInsurance:dryRun")], reads

    got = await fed.ask("central", TRANSFER, inp, SC_OP)
    assert "errors" not in got, got
    # No waiting for the nodes to be told: the mutation answered once both sides had applied it
    # and pushed their versions up, so every read from here on, on any node, sees the transfer
    # (the pools' figures below were cached at central before it).
    t = got["data"]["transferInsurance"]["transfer"]
    assert t["state"] == "COMMITTED" and t["from"]["code"] == origin and t["to"]["code"] == TO
    assert t["person"]["region"]["code"] == TO and "*" in t["person"]["idNumber"]
    by = {s["scheme"]: s for s in t["schemes"]}
    assert by["PENSION"]["pooledFund"] == f"{pooled:.2f}" and by["PENSION"]["individualAccount"] == f"{account:.2f}"
    assert by["MEDICAL"]["individualAccount"] == f"{med_account:.2f}" and by["MEDICAL"]["pooledFund"] == "0.00"
    assert all(s["individualAccount"] == s["pooledFund"] == "0.00" for n, s in by.items() if n not in ("PENSION", "MEDICAL"))
    # the caller sees the destination's pool, not the origin's
    assert by["PENSION"]["fromPool"] is None and by["PENSION"]["toPool"] == {"id": "510000-PENSION-202401"}
    assert dry["data"]["transferInsurance"]["transfer"]["schemes"] == t["schemes"]

    b1 = (await fed.ask("central", q))["data"]
    assert _d(b0["g"]["balance"]) - _d(b1["g"]["balance"]) == pooled
    assert _d(b1["s"]["balance"]) - _d(b0["s"]["balance"]) == pooled
    assert _d(b1["g"]["transfersOut"]) - _d(b0["g"]["transfersOut"]) == pooled
    assert _d(b1["s"]["transfersIn"]) - _d(b0["s"]["transfersIn"]) == pooled

    # both sides show the person where they are registered now, with the transfer
    pq = 'query($id: String!) { person(idNumber: $id) { region { code } transfers { id from { code } to { code } effectiveFrom } } }'
    for node in ("central", "sichuan", "guangdong"):
        p = await fed.ask(node, pq, {"id": person})
        assert "errors" not in p, (node, p)
        assert p["data"]["person"]["region"]["code"] == TO
        assert [x["id"] for x in p["data"]["person"]["transfers"]] == [t["id"]]

    # the pools a transfer moved money between are answered by the nodes holding them, with
    # the caller's selection (here their balances, equal to the pools' own), and are null
    # outside the caller's scope (a Chengdu operator sees the city's pools, not Sichuan's provincial
    # pension pool nor Guangdong's)
    tq = ('query($id: String!) { person(idNumber: $id) { transfers { schemes { scheme fromPool { id '
          'balance(asOf: "2025-07") } toPool { id region { code } balance(asOf: "2025-07") } } } } }')
    p = await fed.ask("central", tq, {"id": person}, NATIONAL_OP)
    assert "errors" not in p, p
    pension = next(s for s in p["data"]["person"]["transfers"][0]["schemes"] if s["scheme"] == "PENSION")
    assert pension["fromPool"] == {"id": "440000-PENSION-202401", "balance": b1["g"]["balance"]}, pension
    assert pension["toPool"] == {"id": "510000-PENSION-202401", "region": {"code": "510000"},
                                 "balance": b1["s"]["balance"]}, pension
    chengdu = token("510100", ("VIEWER", "OPERATOR"), sub="op-cd")
    p = await fed.ask("central", tq, {"id": person}, chengdu)
    assert "errors" not in p, p
    moved = {s["scheme"]: s for s in p["data"]["person"]["transfers"][0]["schemes"]}
    assert all(s["fromPool"] is None for s in moved.values()) and moved["PENSION"]["toPool"] is None, moved
    assert {s["toPool"]["region"]["code"] for n, s in moved.items() if n != "PENSION"} == {"510100"}, moved

    again = await fed.ask("central", TRANSFER, inp, SC_OP)
    assert again["data"]["transferInsurance"]["replayed"] is True
    assert again["data"]["transferInsurance"]["transfer"]["id"] == t["id"]
    other = await fed.ask("central", TRANSFER, {"in": {**inp["in"], "effectiveFrom": "2025-08"}}, SC_OP)
    assert other["errors"][0]["extensions"]["code"] == "CONFLICT"

    # records from 2025-07 on: refused at the origin (naming the transfer), accepted at the destination
    def late(region: str) -> Path:
        f = tmp_path / f"rec-{region}.csv"
        f.write_text("id_number,scheme,month,region_code,employer_credit_code,base,employer_amount,individual_amount,"
                     f"individual_account_amount\n{person},PENSION,2025-07,{region},,5000.00,800.00,400.00,400.00\n")
        return f

    with pytest.raises(ImportFailed) as refused:
        await import_file(gd, fed.nodes["guangdong"].runtime.node, "contributions", late(origin), progress=False)
    reason = refused.value.errors[0]
    assert reason.column == "month" and t["id"] in reason.reason and "at the destination" in reason.reason
    sc = fed.nodes["sichuan"].runtime
    await import_file(sc.pool, sc.node, "contributions", late(TO), progress=False)


RECOVERY_SQL = ("select c.id from change c where c.role = 'coordinator'", "select id, parent_node from change",
                "select c.id, c.state, p.node from change c", "select pg_try_advisory_lock(7366045",
                "select pg_advisory_unlock(7366045", "select pg_advisory_lock(7366044")
# Not the change's own: asyncpg's introspection of a type on a new connection (once per connection;
# its text spans lines, compared with its whitespace folded),
# and the read of the node's data version (with its person feed's head) that each commit pushes up
# the tree (tiers/links.py).
CONNECTION_SQL = ("SELECT current_setting('jit')",)
VERSION_SQL = ("select version from data_version", "select version, (select coalesce(max(seq), 0) from person_presence)",
               "insert into tier_link")


class Counted:
    """Around a change made through central: the steps each node sent each other node, the SQL
    statements of change steps each node ran, and its pushes of its version up the tree (read
    after every decision was told). The links' background rounds (lease checks, a version no push
    followed) are paused meanwhile: what they read and write depends on the clock, not on the
    change; versions an earlier test moved are pushed up first, leaves first."""

    def __init__(self, fed: Fed) -> None:
        self.fed = fed
        self.steps: dict[str, dict[str, int]] = {}
        self.statements: dict[str, list[str]] = {}
        self.pushes: dict[str, int] = {}
        self.log: list[tuple[str, str]] | None = None

    async def __aenter__(self) -> Counted:
        fed = self.fed
        self.sent0 = {n: dict(rn.runtime.changes.sent) for n, rn in fed.nodes.items()}
        for n in ("shenzhen", "guangdong", "sichuan", "central"):
            links = fed.nodes[n].runtime.links
            await links.pause()
            assert await links.announce() is None, n
        for rn in fed.nodes.values():
            rn.runtime.changes.statements.queries = []
        fed.nodes["central"].runtime.changes.sent_log = []
        return self

    async def __aexit__(self, *exc: Any) -> None:
        fed = self.fed
        try:
            if exc[0] is None:
                await fed.settle()
            every = {n: rn.runtime.changes.statements.queries or [] for n, rn in fed.nodes.items()}
            self.pushes = {n: sum(1 for q in qs if q.lstrip().startswith(VERSION_SQL)) for n, qs in every.items()}
            self.statements = {n: [q for q in qs if not " ".join(q.split()).startswith(
                (*RECOVERY_SQL, *CONNECTION_SQL, *VERSION_SQL))] for n, qs in every.items()}
        finally:
            for rn in fed.nodes.values():
                rn.runtime.changes.statements.queries = None
                rn.runtime.links.start()
            central = fed.nodes["central"].runtime.changes
            self.log, central.sent_log = central.sent_log, None
        self.steps = {n: {k: v - self.sent0[n].get(k, 0) for k, v in rn.runtime.changes.sent.items()
                          if v - self.sent0[n].get(k, 0)} for n, rn in fed.nodes.items()}

    def counts(self) -> dict[str, int]:
        return {n: len(q) for n, q in self.statements.items()}

    def folded(self, node: str) -> list[str]:
        return [" ".join(q.split())[:90] for q in self.statements[node]]


async def test_a_transfer_costs_a_fixed_number_of_steps_and_statements(fed: Fed) -> None:
    """Round trips between nodes and SQL statements of change steps, per node, for one transfer
    from Guangdong to Sichuan coordinated at central: counted, so that they cannot creep back up."""
    person = await _gd_person(fed)
    central = fed.nodes["central"].runtime.changes
    for n in ("central", "guangdong"):  # the person index read (a node restarted above made it not current)
        assert await fed.nodes[n].runtime.index.sync_all() == {}
    async with Counted(fed) as counted:
        got = await fed.ask("central", TRANSFER, {"in": {"idNumber": person, "to": "510105", "effectiveFrom": "2025-07",
                                                         "idempotencyKey": "t-count"}}, SC_OP)
        assert "errors" not in got, got
    steps, statements, pushes, log = counted.steps, counted.statements, counted.pushes, counted.log
    # each side prepares once (Guangdong, which the person index names alone as holding the person,
    # locates them in its prepare: no `locate` step), and each is told the decision once; no other
    # node sends anything
    assert steps == {"central": {"guangdong": 2, "sichuan": 2}, "guangdong": {}, "shenzhen": {}, "sichuan": {}}, (steps, log)
    counts = {n: len(q) for n, q in statements.items()}
    # each node that commits part of the change pushes its new version up once per commit, and its
    # parent stores what it is told: a few statements, whatever the change
    assert all(pushes[n] <= 4 for n in pushes) and pushes["shenzhen"] == 0, pushes
    # central: the key's change and where the person is (one statement), the intent (begin, the key locked with the commit made
    # unflushed, the key checked against every kind of change with the change, participants and
    # reservation recorded in the same statement, commit), the decision (decide and release, one
    # statement in a transaction of its own: central applies no side itself), the acknowledgements (begin, update unflushed, commit per child); each side: its
    # prepare (the retry check, begin, checks with the key's lock (at the origin also where the person
    # is registered: no `locate` step before), the key checked with the change
    # and reservation recorded, commit) and its commit (the row, begin, decide unflushed, transfer,
    # person, pooled fund booked, commit); Guangdong also looks for children of its own to tell
    # (a loaded machine has shown one statement more on one node now and then, from a task this
    # test does not control: one is allowed, not two). Were 21 / 18 / 16 before the key's lock,
    # check and the record went into the statements next to them, and the unflushed commits'
    # settings into their first statement; 15 / 14 / 12 before the origin located the person in its
    # prepare (Guangdong's `locate` step read where the person is; central read the key's change and
    # the person's place in two statements, and decided in a transaction begun and committed by
    # statements of their own). asyncpg's type introspection on a new connection, which
    # the filter above missed (its text spans lines), is no longer counted.
    want = {"central": 12, "guangdong": 13, "sichuan": 12, "shenzhen": 0}
    # (the key's lookup may be answered before the counting starts when an earlier test's
    # recovery pass read it: one fewer on central then; one or two more under load)
    assert all(want[n] - (1 if want[n] else 0) <= counts[n] <= want[n] + (2 if want[n] else 0) for n in want), (
        counts, {n: [" ".join(q.split())[:90] for q in statements[n]] for n in want if counts[n] != want[n]})
    assert central.statements.queries is None


async def test_a_transfer_within_one_childs_subtree_is_coordinated_at_the_parent(fed: Fed) -> None:
    """Sent to central, a transfer between two regions of Guangdong's subtree: central coordinates,
    Guangdong takes both sides (a Foshan county held by itself; a Shenzhen county held by its own
    child, for which it coordinates Shenzhen's part). The province pool's balance does not move:
    the pooled fund goes out of and into the same pool."""
    gd = fed.nodes["guangdong"].runtime.pool
    persons = [str(r[0]) for r in await gd.fetch(
        "select p.id_number from person p where p.region_code like '4401%' and exists (select 1 from contribution c "
        "where c.id_number = p.id_number and c.scheme = 1) and not exists (select 1 from insurance_transfer t "
        "where t.id_number = p.id_number) order by 1 limit 2")]
    q = """{ pool(id: "440000-PENSION-202401") { balance(asOf: "2025-07") transfersIn(asOf: "2025-07")
             transfersOut(asOf: "2025-07") } }"""
    before = (await fed.ask("central", q))["data"]["pool"]
    moved = Decimal("0.00")
    ids = []
    for person, to in zip(persons, ("440604", "440305")):
        inp = {"in": {"idNumber": person, "to": to, "effectiveFrom": "2025-07", "idempotencyKey": f"t-within-{to}"}}
        got = await fed.ask("central", TRANSFER, inp, GD_OP)
        assert "errors" not in got, got
        t = got["data"]["transferInsurance"]["transfer"]
        assert t["state"] == "COMMITTED" and t["to"]["code"] == to and t["person"]["region"]["code"] == to
        moved += _d(next(s for s in t["schemes"] if s["scheme"] == "PENSION")["pooledFund"])
        ids.append(t["id"])
        again = await fed.ask("central", TRANSFER, inp, GD_OP)
        assert again["data"]["transferInsurance"]["replayed"] is True
    await fed.settle()
    assert moved > 0
    after = (await fed.ask("central", q))["data"]["pool"]
    assert after["balance"] == before["balance"]
    assert _d(after["transfersIn"]) - _d(before["transfersIn"]) == moved
    assert _d(after["transfersOut"]) - _d(before["transfersOut"]) == moved
    # who took part: central coordinated with Guangdong; Guangdong asked Shenzhen for the second
    for change_id, child_parts in zip(ids, ({"guangdong": "COMMITTED"}, {"guangdong": "COMMITTED"})):
        parts = await fed.nodes["central"].runtime.changes.pool.fetch(
            "select node, state from change_participant where change_id = $1", change_id)
        assert {r["node"]: r["state"] for r in parts} == child_parts
    assert await fed.nodes["guangdong"].runtime.changes.pool.fetchval(
        "select state from change_participant where change_id = $1 and node = 'shenzhen'", ids[1]) == "COMMITTED"
    assert await fed.nodes["shenzhen"].runtime.pool.fetchval(
        "select region_code from person where id_number = $1", persons[1]) == "440305"
    assert [r[0] for r in await gd.fetch("select region_code from person where id_number = any($1::text[]) "
                                         "order by id_number", persons)] == ["440604", "440305"]
    for n in NODES:
        assert await fed.nodes[n].runtime.pool.fetchval("select count(*) from change_reservation") == 0


async def test_the_origin_named_by_the_person_index_locates_the_person_in_its_prepare(fed: Fed) -> None:
    """A Shenzhen person moved to Sichuan at central: central's person index names Guangdong alone,
    so Guangdong gets the origin's prepare without `from` (no `locate` step from central) and finds
    the person below it, at Shenzhen, which takes the side. Then the same person moved on to a
    county that central holds itself: the index may still name Guangdong, which no longer has them
    (it answers `notHere`, reserving nothing); central then aborts that attempt, locates the person
    at Sichuan and makes the change there. Both commit, all or nothing, nothing left reserved."""
    sz = fed.nodes["shenzhen"].runtime.pool
    person = str(await sz.fetchval(
        "select p.id_number from person p where p.region_code like '4403%' and exists (select 1 from contribution c "
        "where c.id_number = p.id_number and c.scheme = 1) and not exists (select 1 from insurance_transfer t "
        "where t.id_number = p.id_number) order by 1 limit 1"))
    for n in ("central", "guangdong"):
        assert await fed.nodes[n].runtime.index.sync_all() == {}
    sent0 = {n: dict(rn.runtime.changes.sent) for n, rn in fed.nodes.items()}
    inp = {"in": {"idNumber": person, "to": TO, "effectiveFrom": "2025-07", "idempotencyKey": "t-located"}}
    got = await fed.ask("central", TRANSFER, inp, NATIONAL_OP)
    assert "errors" not in got, got
    await fed.settle()
    t = got["data"]["transferInsurance"]["transfer"]
    assert t["state"] == "COMMITTED" and t["from"]["code"].startswith("4403") and t["to"]["code"] == TO
    steps = {n: {k: v - sent0[n].get(k, 0) for k, v in rn.runtime.changes.sent.items() if v - sent0[n].get(k, 0)}
             for n, rn in fed.nodes.items()}
    # central: a prepare and a commit to each side; Guangdong: a locate, a prepare and a commit to Shenzhen
    assert steps["central"] == {"guangdong": 2, "sichuan": 2} and steps["guangdong"] == {"shenzhen": 3}, steps
    assert await sz.fetchval("select region_code from person where id_number = $1", person) == TO
    assert await fed.nodes["sichuan"].runtime.pool.fetchval(
        "select region_code from person where id_number = $1", person) == TO

    beijing = str(await fed.nodes["central"].runtime.pool.fetchval(
        "select code from region where tier = 3 and code like '1101%' order by code limit 1"))
    again = {"in": {"idNumber": person, "to": beijing, "effectiveFrom": "2025-09", "idempotencyKey": "t-relocated"}}
    got = await fed.ask("central", TRANSFER, again, NATIONAL_OP)
    assert "errors" not in got, got
    await fed.settle()
    t = got["data"]["transferInsurance"]["transfer"]
    assert t["state"] == "COMMITTED" and t["from"]["code"] == TO and t["to"]["code"] == beijing
    # the attempt sent to Guangdong aborted (when central's index still named it), then the change made
    states = [r[0] for r in await fed.nodes["central"].runtime.pool.fetch(
        "select state from change where idempotency_key = 't-relocated' order by state")]
    assert states in (["COMMITTED"], ["ABORTED", "COMMITTED"]), states
    assert await fed.nodes["central"].runtime.pool.fetchval(
        "select region_code from person where id_number = $1", person) == beijing
    assert await fed.nodes["sichuan"].runtime.pool.fetchval(
        "select region_code from person where id_number = $1", person) == beijing
    for n in NODES:
        assert await fed.nodes[n].runtime.pool.fetchval("select count(*) from change_reservation") == 0
        assert await fed.nodes[n].runtime.pool.fetchval("select count(*) from change where state = 'PENDING'") == 0


async def test_idempotency_keys_hold_across_kinds_and_nodes(fed: Fed) -> None:
    """A key used by a transfer is refused to a raise on one node of the transfer's; a key used by
    a raise on Guangdong is refused to a transfer that Guangdong takes part in. Nothing changes."""
    before = await _state(fed)
    pools = await fed.pools()
    local = await fed.ask("sichuan", RAISE, {"in": {"scheme": "MEDICAL", "region": "510000", "effectiveFrom": "2025-05",
                                                    "idempotencyKey": "t-1"}}, SC_OP)
    err = local["errors"][0]
    assert err["extensions"]["code"] == "CONFLICT" and "already used" in err["message"], err
    person = await _gd_person(fed)
    got = await fed.ask("central", TRANSFER, {"in": {"idNumber": person, "to": TO, "effectiveFrom": "2025-07",
                                                     "idempotencyKey": "gd-med"}}, SC_OP)
    err = got["errors"][0]
    assert err["extensions"]["code"] == "CONFLICT" and "gd-med" in err["message"], err
    assert "guangdong" in err["extensions"]["nodes"]
    assert await _state(fed) == before and await fed.pools() == pools


async def test_a_change_that_holds_a_person_conflicts(fed: Fed) -> None:
    """A raise in progress over Sichuan (its part reserved there) makes a transfer into Sichuan a CONFLICT."""
    sc = fed.nodes["sichuan"].runtime
    async with sc.pool.acquire() as con, con.transaction():
        await con.execute("insert into change (id, kind, role, idempotency_key, input, caller) "
                          "values ('held', 'raisePoolingLevel', 'participant', 'held', '{}', 'test')")
        await con.execute("insert into change_reservation (change_id, scheme, region_code) values ('held', 2, '510000')")
    try:
        person = await _gd_person(fed)
        got = await fed.ask("central", TRANSFER, {"in": {"idNumber": person, "to": "510105", "effectiveFrom": "2025-09",
                                                         "idempotencyKey": "t-held"}}, SC_OP)
        assert got["errors"][0]["extensions"]["code"] == "CONFLICT", got
        assert "sichuan" in got["errors"][0]["extensions"]["nodes"]
    finally:
        async with sc.pool.acquire() as con, con.transaction():
            await con.execute("delete from change_reservation where change_id = 'held'")
            await con.execute("update change set state = 'ABORTED' where id = 'held'")


async def test_national_raise_across_nodes(fed: Fed) -> None:
    want = (await fed.single.post(RAISE, _raise_in(dryRun=True), NATIONAL_OP))["data"]["raisePoolingLevel"]
    async with Counted(fed) as counted:
        got = await fed.ask("central", RAISE, _raise_in())
        assert "errors" not in got, got
    # Round trips between nodes and statements, counted so that they cannot creep back up: each
    # child is asked to prepare once and told the decision once (Guangdong asks and tells Shenzhen)
    assert counted.steps == {"central": {"guangdong": 2, "sichuan": 2}, "guangdong": {"shenzhen": 2},
                             "shenzhen": {}, "sichuan": {}}, (counted.steps, counted.log)
    # Statements: a node's prepare is begin, its locks, its checks (with whether it had prepared
    # this change already: a prepare sent again), the change and its reservation recorded (at a
    # node without children, with its pools' figures read by the same statement), commit; its commit is the row, begin, decide,
    # its pools closed, commit; a node with children also reads whom to tell and records each
    # child's acknowledgement (begin, update unflushed, commit). Central: the key's change, its
    # intent (begin, locks, checks, record, commit) beside the children's prepares, the figures of
    # the pools it holds whole, the decision with its own part in one statement (a transaction
    # of its own), and the children's acknowledgements.
    # (Sichuan's prepare was one more when its figures were a statement of their own.)
    expected = {"central": 14, "guangdong": 14, "sichuan": 10, "shenzhen": 10}
    counts = counted.counts()
    assert all(expected[n] <= counts[n] <= expected[n] + 1 for n in expected), (
        counts, {n: counted.folded(n) for n in expected if counts[n] != expected[n]})
    r = got["data"]["raisePoolingLevel"]
    assert r["state"] == "COMMITTED" and r["replayed"] is False
    assert r["transferred"] == want["transferred"]
    assert r["pool"]["openingBalance"] == want["pool"]["openingBalance"]
    assert r["pool"]["balance"] == want["pool"]["balance"]
    assert len(r["pool"]["predecessors"]) == 31
    for n, pid in (("guangdong", "440000-PENSION-202401"), ("sichuan", "510000-PENSION-202401"),
                   ("central", "110000-PENSION-202401")):
        row = await fed.nodes[n].runtime.pool.fetchrow("select closed_after, successor_id from pool where id = $1", pid)
        assert (row["closed_after"], row["successor_id"]) == (date(2025, 3, 1), "000000-PENSION-202504")
    ch = await fed.ask("central", '{ changes(first: 1) { kind state decidedAt participants { node state region { code } } } }')
    c = ch["data"]["changes"][0]
    assert c["kind"] == "raisePoolingLevel" and c["state"] == "COMMITTED" and c["decidedAt"]
    assert {p["node"]: p["state"] for p in c["participants"]} == {"central": "COMMITTED", "guangdong": "COMMITTED",
                                                                  "sichuan": "COMMITTED"}
    # the same key and input: the first result; other input: CONFLICT
    again = (await fed.ask("central", RAISE, _raise_in()))["data"]["raisePoolingLevel"]
    assert again["replayed"] is True and again["transferred"] == r["transferred"]
    assert {p["id"] for p in again["closed"]} == {p["id"] for p in r["closed"]}
    other = await fed.ask("central", RAISE, _raise_in(effectiveFrom="2025-05"))
    assert other["errors"][0]["extensions"]["code"] == "CONFLICT"


async def test_a_decision_whose_answer_was_lost_is_told_committed(fed: Fed, monkeypatch: pytest.MonkeyPatch) -> None:
    """The decision's statement commits on the server but its answer never reaches the
    coordinator (the connection drops, the deadline cancels the wait). The raise is COMMITTED:
    its participants are told commit, never abort, and the key replays it."""
    real = changestore.decide_raise

    async def committed_then_lost(*a: Any, **k: Any) -> bool:
        await real(*a, **k)
        raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")

    inp = _raise_in(scheme="UNEMPLOYMENT", effectiveFrom="2025-05", idempotencyKey="lost-answer-1")
    monkeypatch.setattr(changestore, "decide_raise", committed_then_lost)
    got = await fed.ask("central", RAISE, inp)
    monkeypatch.undo()
    assert got["errors"][0]["extensions"]["code"] == "DATABASE_UNAVAILABLE", got  # the caller cannot know: it retries
    await fed.settle()
    for n in NODES:
        rt = fed.nodes[n].runtime
        states = {r["state"] for r in await rt.pool.fetch("select state from change where idempotency_key = $1",
                                                          "lost-answer-1")}
        assert states == {"COMMITTED"}, (n, states)
        assert await rt.pool.fetchval("select count(*) from change_reservation") == 0, n
    for n, pid in (("guangdong", "440000-UNEMPLOYMENT-202401"), ("sichuan", "510000-UNEMPLOYMENT-202401")):
        row = await fed.nodes[n].runtime.pool.fetchrow("select closed_after, successor_id from pool where id = $1", pid)
        assert (row["closed_after"], row["successor_id"]) == (date(2025, 4, 1), "000000-UNEMPLOYMENT-202505"), n
    again = await fed.ask("central", RAISE, inp)
    assert "errors" not in again, again
    assert again["data"]["raisePoolingLevel"]["replayed"] is True
    assert again["data"]["raisePoolingLevel"]["state"] == "COMMITTED"


async def test_a_childs_question_waiting_on_the_intent_being_recorded_is_told_pending(
        fed: Fed, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race the presumed abort is for, the other way round: a child asks about the change
    while the coordinator's intent is written but not committed. Its question waits on the
    intent's row, is told PENDING once it commits (not ABORTED: no presumption is written over a
    live intent), and the raise commits on every node."""
    central = fed.nodes["central"].runtime.changes
    gd = fed.nodes["guangdong"].runtime.changes
    change_id = "a11c" * 8
    recorded, go_on = asyncio.Event(), asyncio.Event()
    real = changestore.record_part

    async def held(con: Any, cid: str, kind: str, role: str, *a: Any, **k: Any) -> Any:
        out = await real(con, cid, kind, role, *a, **k)
        if cid == change_id and role == "coordinator":  # written, its transaction still open
            recorded.set()
            await go_on.wait()
        return out

    monkeypatch.setattr(changestore, "record_part", held)
    monkeypatch.setattr(central, "new_id", lambda: change_id)
    inp = _raise_in(scheme="WORK_INJURY", effectiveFrom="2025-05", idempotencyKey="race-intent-1")
    raising = asyncio.create_task(fed.ask("central", RAISE, inp))
    try:
        await asyncio.wait_for(recorded.wait(), 20)
        asking = asyncio.create_task(gd.send(gd.parent, {"op": "status", "change": change_id}))
        await asyncio.sleep(0.3)
        assert not asking.done(), "the question did not wait for the intent being recorded"
    finally:
        go_on.set()
    asked = await asking
    assert asked["state"] == "PENDING", asked
    got = await raising
    monkeypatch.undo()
    assert "errors" not in got, got
    assert got["data"]["raisePoolingLevel"]["state"] == "COMMITTED"
    for n in NODES:
        states = {r["state"] for r in await fed.nodes[n].runtime.pool.fetch(
            "select state from change where idempotency_key = $1", "race-intent-1")}
        assert states == {"COMMITTED"}, (n, states)
    assert await fed.nodes["central"].runtime.pool.fetchval(
        "select count(*) from change where id = $1 and kind = 'presumed-aborted'", change_id) == 0


async def test_late_record_on_a_child_moves_the_successor_on_another_node(fed: Fed, tmp_path: Path) -> None:
    q = """{ n: pool(id: "000000-PENSION-202504") { openingBalance balance(asOf: "2025-06") }
             g: pool(id: "440000-PENSION-202401") { balance(asOf: "2025-06") } }"""
    before = (await fed.ask("central", q))["data"]
    gd = fed.nodes["guangdong"].runtime
    person = await gd.pool.fetchval("select id_number from person where region_code like '4401%' order by 1 limit 1")
    late = tmp_path / "late.csv"
    with late.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id_number", "scheme", "month", "region_code", "employer_credit_code", "base", "employer_amount",
                    "individual_amount", "individual_account_amount"])
        w.writerow([person, "PENSION", "2024-12", "440106", "", "5000.00", "800.00", "400.00", "400.00"])
    await import_file(gd.pool, gd.node, "contributions", late, progress=False)
    # As the CLI and HTTP imports do before they report done: every ancestor learns the new version.
    assert await gd.links.announce() is None
    after = (await fed.ask("central", q))["data"]
    pooled = Decimal("800.00")  # employer part: the individual part goes to the individual account
    assert _d(after["g"]["balance"]) - _d(before["g"]["balance"]) == pooled
    assert _d(after["n"]["openingBalance"]) - _d(before["n"]["openingBalance"]) == pooled
    assert _d(after["n"]["balance"]) - _d(before["n"]["balance"]) == pooled


async def test_change_steps_need_the_parents_signature(fed: Fed, tmp_path: Path) -> None:
    url = fed.nodes["sichuan"].url.rsplit("/", 1)[0] + "/internal/changes"
    body = json.dumps({"op": "commit", "change": "x"}).encode()
    from tierfed.tiers.identity import NodeIdentity

    generate_key_pair(tmp_path / "rogue.key", tmp_path / "rogue.pub")
    rogue = NodeIdentity("central", str(tmp_path / "rogue.key"), None, {})
    # guangdong's own key is a real node key, but guangdong is not sichuan's parent
    sibling = NodeIdentity("guangdong", fed.cfgs["guangdong"].private_key_file, None, {})
    async with httpx.AsyncClient() as c:
        for headers in ({}, {"Authorization": "Bearer " + NATIONAL_OP},
                        {"Authorization": "Node " + rogue.sign(body, "sichuan")},
                        {"Authorization": "Node " + sibling.sign(body, "sichuan")}):
            r = await c.post(url, content=body, headers=headers)
            assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN", r.text
        ok = await c.post(url, content=body, headers={
            "Authorization": "Node " + NodeIdentity("central", fed.cfgs["central"].private_key_file, None, {}).sign(
                body, "sichuan")})
        assert ok.status_code == 200 and ok.json()["state"] == "UNKNOWN"
        # one step sent to several children is signed once for all of them: accepted by each it names
        central = NodeIdentity("central", fed.cfgs["central"].private_key_file, None, {})
        both = await c.post(url, content=body, headers={"Authorization": "Node " + central.sign(body, ["guangdong",
                                                                                                       "sichuan"])})
        assert both.status_code == 200, both.text
        others = await c.post(url, content=body, headers={"Authorization": "Node " + central.sign(body, ["guangdong"])})
        assert others.status_code == 403, others.text
        # a signature over another body is refused
        other = json.dumps({"op": "abort", "change": "x"}).encode()
        r = await c.post(url, content=other, headers={"Authorization": "Node " + central.sign(body, "sichuan")})
        assert r.status_code == 403


async def test_changes_needs_operator_or_auditor(fed: Fed) -> None:
    viewer = token("000000", ("VIEWER",))
    got = await fed.ask("central", "{ changes { id } }", tok=viewer)
    assert got["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_predecessors_of_a_pool_held_by_a_child_are_read_at_the_parent(fed: Fed) -> None:
    """MEDICAL raised to the nation over Guangdong's province pool (itself raised over Shenzhen's):
    at central, the national pool's predecessor held by Guangdong lists its own predecessors, with
    the figures Guangdong gives for them."""
    got = await fed.ask("central", RAISE, {"in": {"scheme": "MEDICAL", "region": "000000", "effectiveFrom": "2025-06",
                                                  "idempotencyKey": "nation-medical"}})
    assert "errors" not in got, got
    await fed.settle()
    q = """{ pool(id: "000000-MEDICAL-202506") { predecessors { id predecessors { id openedFrom closedAfter
               balance(asOf: "2025-06") region { code } } } } }"""
    top = await fed.ask("central", q)
    assert "errors" not in top, top
    gd_pool = next(p for p in top["data"]["pool"]["predecessors"] if p["id"] == "440000-MEDICAL-202504")
    direct = await fed.ask("guangdong", """{ pool(id: "440000-MEDICAL-202504") { predecessors { id openedFrom
               closedAfter balance(asOf: "2025-06") region { code } } } }""")
    assert "errors" not in direct, direct
    assert gd_pool["predecessors"] == direct["data"]["pool"]["predecessors"]
    assert "440300-MEDICAL-202401" in {p["id"] for p in gd_pool["predecessors"]}  # held by Shenzhen, below
    # a province pool held by central itself still lists its own
    assert len(gd_pool["predecessors"]) > 1


async def test_a_transfer_and_an_import_of_its_persons_records_never_both_go_through(fed: Fed, tmp_path: Path) -> None:
    """The transfer checks the person's last record at the origin and the import checks the
    person's transfers: each in its own transaction, they had both gone through, leaving the
    origin with months the transfer handed to the destination. Now a transfer is refused while
    an import runs at the origin, and an import is refused for a person a transfer holds."""
    person = await _gd_person(fed)
    gd = fed.nodes["guangdong"].runtime
    origin = await gd.pool.fetchval("select min(region_code) from contribution where id_number = $1", person)

    def records(month: str) -> Path:
        f = tmp_path / f"rec-{month}.csv"
        f.write_text("id_number,scheme,month,region_code,employer_credit_code,base,employer_amount,individual_amount,"
                     f"individual_account_amount\n{person},PENSION,{month},{origin},,5000.00,800.00,400.00,400.00\n")
        return f

    def moving(eff: str, key: str) -> dict[str, Any]:
        return {"in": {"idNumber": person, "to": TO, "effectiveFrom": eff, "idempotencyKey": key}}

    # 1. An import of the person's July at the origin, held after its checks: a transfer from July waits for none.
    async with import_held(gd.pool, gd.node, "contributions", records("2025-07")) as importing:
        got = await fed.ask("central", TRANSFER, moving("2025-07", "t-import-1"), SC_OP)
    rep = await importing
    err = (got.get("errors") or [{"extensions": {}, "message": str(got)}])[0]
    assert err["extensions"].get("code") == "CONFLICT" and "import" in err["message"], got
    assert rep.inserted == 1
    assert await gd.pool.fetchval("select count(*) from insurance_transfer where id_number = $1", person) == 0

    # 2. A transfer from August, held at the destination's checks (its reservation table locked there)
    # once the origin has reserved the person: an import of the person's September at the origin is refused.
    sc = fed.nodes["sichuan"].runtime
    async with sc.pool.acquire() as lock, lock.transaction():
        await lock.execute("lock table change_reservation in access exclusive mode")
        transfer = asyncio.ensure_future(fed.ask("central", TRANSFER, moving("2025-08", "t-import-2"), SC_OP))
        for _ in range(500):
            if await gd.pool.fetchval("select count(*) from change_reservation where id_number = $1", person):
                break
            assert not transfer.done(), transfer.result()
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the origin never reserved the person")
        with pytest.raises(ImportFailed) as refused:
            await import_file(gd.pool, gd.node, "contributions", records("2025-09"), progress=False)
    reason = refused.value.errors[0]
    assert (reason.line, reason.column) == (2, "id_number") and "held by change" in reason.reason, reason
    assert person not in reason.reason
    got = await transfer
    assert "errors" not in got, got
    assert got["data"]["transferInsurance"]["transfer"]["state"] == "COMMITTED"
    assert await gd.pool.fetchval("select count(*) from contribution where id_number = $1 and month >= '2025-08-01'",
                                  person) == 0

    # 3. Another person's transfer from July held the same way, an import of their July started
    # meanwhile (a month stored already: nothing written before its last checks) and held after
    # its checks (no transfer committed yet); the transfer then commits. The
    # import, which read the persons held when it began, still refuses the row (it had read them
    # after its checks, found none, and written a month the transfer handed over).
    person = await _gd_person(fed)
    origin = await gd.pool.fetchval("select min(region_code) from contribution where id_number = $1", person)
    from tierfed.imports import records as import_records

    checked, go = asyncio.Event(), asyncio.Event()
    real = import_records.held_by_changes

    async def after_checks(*args: Any) -> Any:
        checked.set()
        await go.wait()
        return await real(*args)

    import_records.held_by_changes = after_checks  # type: ignore[assignment]
    try:
        async with sc.pool.acquire() as lock:
            tr = lock.transaction()
            await tr.start()
            await lock.execute("lock table change_reservation in access exclusive mode")
            transfer = asyncio.ensure_future(fed.ask("central", TRANSFER, moving("2025-07", "t-import-3"), SC_OP))
            for _ in range(500):
                if await gd.pool.fetchval("select count(*) from change_reservation where id_number = $1", person):
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError("the origin never reserved the person")
            importing = asyncio.ensure_future(import_file(gd.pool, gd.node, "contributions", records("2025-07"),
                                                          progress=False))
            await asyncio.wait_for(checked.wait(), 30)
            await tr.rollback()
        got = await transfer
        assert got["data"]["transferInsurance"]["transfer"]["state"] == "COMMITTED", got
        go.set()
        with pytest.raises(ImportFailed) as late:
            await importing
        assert "held by change" in late.value.errors[0].reason, late.value.errors
    finally:
        go.set()
        import_records.held_by_changes = real  # type: ignore[assignment]
    assert await gd.pool.fetchval("select count(*) from contribution where id_number = $1 and month >= '2025-07-01'",
                                  person) == 0
