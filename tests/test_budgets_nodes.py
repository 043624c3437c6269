"""Fund budgets across nodes (real nodes over HTTP): central, Guangdong, Shenzhen under
Guangdong, Sichuan. Drafts live on the node holding each pool; a compiled budget asked
anywhere above equals the drafts of every database summed independently, with one
request per child; execution against the accounts across nodes; and with the Sichuan
node down, the rest of the answer stays intact and says what is missing.

The tests of this module run in order on one federation (the last one stops a node)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import asyncpg
import pytest
from tierfed.tiers.figures import FUND_CATEGORIES, FUND_EXPENDITURE, FUND_INCOME, SCHEMES
from tierfed.tiers.tree import Tree

from tests.conftest import token
from tests.nodes import RunningNode, free_port, start_node
from tests.test_budgets import BUDGET, COMPILED, EDIT, EXECUTION, READ, START, STEP
from tests.test_changes import NODES, configs, load_split, make_keys
from tests.test_fund_accounts import Raw, m

pytestmark = pytest.mark.federation

NATIONAL = token("000000", ("VIEWER", "OPERATOR", "BUDGET_REVIEWER", "BUDGET_APPROVER"), sub="national")
SZ_OP = token("440300", ("VIEWER", "OPERATOR"), sub="agency-sz")
SZ_REVIEWER = token("440300", ("VIEWER", "BUDGET_REVIEWER"), sub="hrss-sz")
GD_APPROVER = token("440000", ("VIEWER", "BUDGET_APPROVER"), sub="finance-gd")
VIEWER = token("000000", ("VIEWER",), sub="viewer")

# pool -> (node holding it, lines given by editBudget)
DRAFTS = {
    "440300-MEDICAL-202401": ("shenzhen", {"CONTRIBUTIONS": "123456.78", "BENEFITS": "100000.01"}),
    "440100-MEDICAL-202401": ("guangdong", {"CONTRIBUTIONS": "5000.00", "OTHER_EXPENDITURE": "0.99"}),
    "510000-PENSION-202401": ("sichuan", {"CONTRIBUTIONS": "7777777.77", "FISCAL_SUBSIDY": "1.23"}),
    "510100-MEDICAL-202401": ("sichuan", {"BENEFITS": "42.42"}),
    "110000-PENSION-202401": ("central", {"INTEREST": "3.14", "BENEFITS": "2.72"}),
    "110000-MEDICAL-202401": ("central", {"CONTRIBUTIONS": "10.00"}),
}


@dataclasses.dataclass
class Fed:
    nodes: dict[str, RunningNode]
    cons: dict[str, asyncpg.Connection]
    tree: Tree

    async def ask(self, node: str, query: str, variables: dict[str, Any], tok: str = NATIONAL) -> dict[str, Any]:
        return await self.nodes[node].post(query, variables, tok)

    async def ok(self, node: str, query: str, variables: dict[str, Any], tok: str = NATIONAL) -> dict[str, Any]:
        body = await self.ask(node, query, variables, tok)
        assert "errors" not in body, body["errors"]
        return next(iter(body["data"].values()))  # type: ignore[no-any-return]

    def raw(self, without: tuple[str, ...] = ()) -> Raw:
        cons = [c for n, c in self.cons.items() if n not in without]
        return Raw(cons[0], self.tree, [], tuple(cons[1:]))

    async def drafts(self, region: str, year: int, without: tuple[str, ...] = ()) -> dict[int, dict[str, Decimal]]:
        """Every budget line of every database (but ``without``) of pools inside ``region``, summed here."""
        out = {s: {k: Decimal("0.00") for k in FUND_CATEGORIES} for s in range(1, 6)}
        for n, con in self.cons.items():
            if n in without:
                continue
            for r in await con.fetch("select b.scheme, b.region_code, l.category, l.amount from budget b "
                                     "join budget_line l using (pool_id, year) where b.year = $1", year):
                if self.tree.within(r["region_code"], region):
                    out[r["scheme"]][r["category"]] += r["amount"]
        return out

    async def pools(self, region: str, year: int, without: tuple[str, ...] = ()) -> list[tuple[str, str | None]]:
        """(pool id, its budget's state) of every pool open in the year inside ``region``, on every database."""
        out = []
        for n, con in self.cons.items():
            if n in without:
                continue
            for r in await con.fetch(
                    "select p.id, p.region_code, b.state from pool p left join budget b on b.pool_id = p.id "
                    "and b.year = $1 where p.opened_from <= make_date($1, 12, 1) and "
                    "(p.closed_after is null or p.closed_after >= make_date($1, 1, 1))", year):
                if self.tree.within(r["region_code"], region):
                    out.append((r["id"], r["state"]))
        return sorted(out)


@pytest.fixture(scope="module")
async def fed(tmp_path_factory: pytest.TempPathFactory, tree: Tree, new_db: Any) -> AsyncIterator[Fed]:
    keys = make_keys(tmp_path_factory.mktemp("keys"))
    dbs = await load_split(tree, new_db, tmp_path_factory.mktemp("split"),
                           configs(keys, {n: i + 1 for i, n in enumerate(NODES)}))
    ports = {n: free_port() for n in NODES}
    cfgs = configs(keys, ports)
    nodes = {n: await start_node(cfgs[n], dbs[n], ports[n]) for n in ("shenzhen", "guangdong", "sichuan", "central")}
    cons = {n: await asyncpg.connect(dbs[n]) for n in NODES}
    try:
        yield Fed(nodes, cons, tree)
    finally:
        for con in cons.values():
            await con.close()
        for rn in nodes.values():
            try:
                await rn.stop()
            except Exception:  # noqa: BLE001 - the last test stops one
                pass


async def test_steps_go_to_the_node_holding_the_pool(fed: Fed) -> None:
    before = {n: await c.fetchval("select count(*) from budget_step") for n, c in fed.cons.items()}
    for asked in ("central", "guangdong"):
        body = await fed.ask(asked, START, {"in": {"poolId": "440300-MEDICAL-202401", "year": 2025}})
        err = body["errors"][0]
        assert err["extensions"]["code"] == "BAD_USER_INPUT" and "held by node" in err["message"]
        assert fed.nodes["shenzhen" if asked == "guangdong" else "guangdong"].url in err["message"]
    assert {n: await c.fetchval("select count(*) from budget_step") for n, c in fed.cons.items()} == before
    for pool, (node, lines) in DRAFTS.items():
        await fed.ok(node, START, {"in": {"poolId": pool, "year": 2025}})
        await fed.ok(node, EDIT, {"in": {"poolId": pool, "year": 2025,
                                         "lines": [{"category": k, "amount": v} for k, v in lines.items()]}})
        assert await fed.cons[node].fetchval("select count(*) from budget where pool_id = $1", pool) == 1
    # Shenzhen's budget through the workflow on its node, by roles scoped to Shenzhen and Guangdong.
    p = {"p": "440300-MEDICAL-202401", "y": 2025}
    await fed.ok("shenzhen", STEP % "submitBudget", p, SZ_OP)
    await fed.ok("shenzhen", STEP % "reviewBudget", p, SZ_REVIEWER)
    body = await fed.ask("shenzhen", STEP % "approveBudget", p, SZ_REVIEWER)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await fed.ok("shenzhen", STEP % "approveBudget", p, GD_APPROVER))["state"] == "APPROVED"
    # Read anywhere above: the holder's answer, forwarded.
    here = await fed.ok("shenzhen", READ, p, VIEWER)
    for asked in ("central", "guangdong"):
        assert await fed.ok(asked, READ, p, VIEWER) == here
    assert [h["action"] for h in here["history"]] == ["STARTED", "EDITED", "SUBMITTED", "REVIEWED", "APPROVED"]


async def test_a_province_pool_started_from_accounts_counts_the_child_nodes_records(fed: Fed) -> None:
    """Guangdong holds 440000's PENSION pool, Shenzhen part of its records: the draft's base is their sum."""
    b = await fed.ok("guangdong", START, {"in": {"poolId": "440000-PENSION-202401", "year": 2026,
                                                 "basePeriod": {"from": "2025-01", "to": "2025-06"},
                                                 "growth": [{"category": "CONTRIBUTIONS", "percent": "3"}]}})
    cats = await fed.raw().categories("440000", 1, m(1), m(6))
    got = {x["category"]: Decimal(x["amount"]) for x in b["income"] + b["expenditure"]}
    want = {k: (v * 2 * (Decimal("1.03") if k == "CONTRIBUTIONS" else 1)).quantize(Decimal("0.01"), ROUND_HALF_UP)
            for k, v in cats.items()}
    assert got == want
    local = await fed.cons["guangdong"].fetchval(
        "select sum(employer_amount + individual_amount - individual_account_amount) from contribution "
        "where scheme = 1 and month between $1 and $2", m(1), m(6))
    assert got["CONTRIBUTIONS"] > (local * 2 * Decimal("1.03")).quantize(Decimal("0.01"))


async def check_compiled(fed: Fed, asked: str, region: str, year: int, without: tuple[str, ...] = ()) -> dict[str, Any]:
    body = await fed.ask(asked, COMPILED, {"r": region, "y": year}, VIEWER)
    got = body["data"]["compiledBudget"]
    want = await fed.drafts(region, year, without)
    for s in got["schemes"]:
        sid = SCHEMES.index(s["scheme"]) + 1
        assert {x["category"]: Decimal(x["amount"]) for x in s["income"] + s["expenditure"]} == want[sid], \
            (asked, region, s["scheme"])
        assert Decimal(s["totalIncome"]) == sum((want[sid][k] for k in FUND_INCOME), Decimal(0))
        assert Decimal(s["totalExpenditure"]) == sum((want[sid][k] for k in FUND_EXPENDITURE), Decimal(0))
    pools = await fed.pools(region, year, without)
    assert [(p["poolId"], p["state"]) for p in got["parts"]] == pools
    states = [s for _, s in pools]
    assert got["states"] == {"pools": len(pools), "approved": states.count("APPROVED"),
                             "waiting": sum(s in ("DRAFT", "SUBMITTED", "REVIEWED") for s in states),
                             "notDrafted": states.count(None)}
    return body


@pytest.mark.parametrize("asked, region", [("central", "000000"), ("central", "440000"), ("guangdong", "440000"),
                                           ("central", "440300"), ("central", "510000"), ("sichuan", "510000"),
                                           ("central", "110000")])
async def test_compiled_budget_equals_every_nodes_drafts_summed_independently(fed: Fed, asked: str,
                                                                              region: str) -> None:
    body = await check_compiled(fed, asked, region, 2025)
    assert "errors" not in body and body["data"]["compiledBudget"]["complete"]


async def test_a_national_compiled_budget_sends_one_request_per_child(fed: Fed) -> None:
    before = {n: rn.requests for n, rn in fed.nodes.items()}
    body = await fed.ask("central", COMPILED + " ", {"r": "000000", "y": 2025, "a": True}, VIEWER)
    assert body["data"]["compiledBudget"]["complete"], body
    sent = {n: rn.requests - before[n] for n, rn in fed.nodes.items()}
    assert sent == {"central": 1, "guangdong": 1, "sichuan": 1, "shenzhen": 1}
    approved = body["data"]["compiledBudget"]["schemes"][1]
    assert approved["totalIncome"] == DRAFTS["440300-MEDICAL-202401"][1]["CONTRIBUTIONS"]


@pytest.mark.parametrize("asked, region, scheme, month", [("central", "440000", "MEDICAL", 6),
                                                          ("central", "000000", "PENSION", 4),
                                                          ("guangdong", "440300", "MEDICAL", 2)])
async def test_execution_across_nodes_is_the_accounts_against_the_drafts(fed: Fed, asked: str, region: str,
                                                                         scheme: str, month: int) -> None:
    got = await fed.ok(asked, EXECUTION, {"r": region, "s": scheme, "m": f"2025-{month:02d}"}, VIEWER)
    sid = SCHEMES.index(scheme) + 1
    raw = fed.raw()
    actual = {k: Decimal("0.00") for k in FUND_CATEGORIES}
    rest = {k: Decimal("0.00") for k in FUND_CATEGORIES}
    for con in fed.cons.values():
        for p in await con.fetch("select p.region_code, p.opened_from, b.pool_id is not null as budgeted from pool p "
                                 "left join budget b on b.pool_id = p.id and b.year = 2025 where p.scheme = $1", sid):
            if fed.tree.within(p["region_code"], region):
                for k, v in (await raw.categories(p["region_code"], sid, max(m(1), p["opened_from"]),
                                                  date(2025, month, 1))).items():
                    (actual if p["budgeted"] else rest)[k] += v
    budget = (await fed.drafts(region, 2025))[sid]
    assert actual["CONTRIBUTIONS"] > 0
    for line in got["income"] + got["expenditure"]:
        k = line["category"]
        assert (Decimal(line["actual"]), Decimal(line["actualNotBudgeted"]), Decimal(line["budget"])) == \
            (actual[k], rest[k], budget[k]), (region, k)
    assert got["complete"]


async def test_a_compiled_budget_is_never_stale_after_a_change_on_a_grandchild(fed: Fed) -> None:
    """The central node's answer cache serves a compiled budget only while no node under it changed a
    budget: a draft started and edited on Shenzhen (two levels down) shows at once."""
    q = {"r": "440000", "y": 2025}
    first = await fed.ok("central", COMPILED, q, VIEWER)
    assert await fed.ok("central", COMPILED, q, VIEWER) == first
    pool = "440300-MATERNITY-202401"
    assert (pool, None) in await fed.pools("440000", 2025)
    await fed.ok("shenzhen", START, {"in": {"poolId": pool, "year": 2025}}, SZ_OP)
    await fed.ok("shenzhen", EDIT, {"in": {"poolId": pool, "year": 2025, "lines": [
        {"category": "INTEREST", "amount": "0.01"}]}}, SZ_OP)
    after = (await check_compiled(fed, "central", "440000", 2025))["data"]["compiledBudget"]
    was, now = first["schemes"][4], after["schemes"][4]
    assert now["scheme"] == "MATERNITY"
    assert Decimal(now["totalIncome"]) == Decimal(was["totalIncome"]) + Decimal("0.01")
    assert (now["states"]["waiting"], now["states"]["notDrafted"]) == \
        (was["states"]["waiting"] + 1, was["states"]["notDrafted"] - 1)


async def test_a_step_waits_for_no_raise_across_nodes_that_may_close_its_pool(fed: Fed, tmp_path: Any) -> None:
    """A raise of Guangdong's MEDICAL to the province from 2026 is under way (Guangdong reserved its
    pools, Shenzhen's prepare held): a step on a Guangzhou MEDICAL budget of 2026 is a CONFLICT
    (the pool's row still said open, so the step went through, and the raise then closed the pool
    under a budget that counts nowhere). The raise then lands; this module's later tests read
    2025, which it leaves as it was."""
    import asyncio

    pool, year = "440100-MEDICAL-202401", 2026
    await fed.ok("guangdong", START, {"in": {"poolId": pool, "year": year}})
    raise_q = """mutation($in: RaisePoolingLevelInput!) { raisePoolingLevel(input: $in) { pool { id } } }"""
    sz = fed.cons["shenzhen"]
    async with sz.transaction():
        await sz.execute("lock table change_reservation in access exclusive mode")
        raising = asyncio.ensure_future(fed.ask("guangdong", raise_q, {"in": {
            "scheme": "MEDICAL", "region": "440000", "effectiveFrom": "2026-01", "idempotencyKey": "budget-raise"}}))
        for _ in range(500):
            if await fed.cons["guangdong"].fetchval("select count(*) from change_reservation where scheme = 2"):
                break
            assert not raising.done(), raising.result()
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("Guangdong never reserved its pools for the raise")
        before = await fed.cons["guangdong"].fetchval("select count(*) from budget_step where pool_id = $1", pool)
        body = await fed.ask("guangdong", EDIT, {"in": {"poolId": pool, "year": year, "expectedInsured": 5}})
        assert body.get("errors") and body["errors"][0]["extensions"]["code"] == "CONFLICT", body
        assert "raise" in body["errors"][0]["message"]
        assert await fed.cons["guangdong"].fetchval("select count(*) from budget_step where pool_id = $1",
                                                    pool) == before
        # Nor may a pools import add a pool the raise would overlap (refused by line, nothing written).
        from tierfed.importer import ImportFailed, import_file

        gd = fed.nodes["guangdong"].runtime
        f = tmp_path / "pools.csv"
        f.write_text("scheme,region_code,opened_from,opening_balance\nMEDICAL,440104,2027-01,1.00\n", "utf-8")
        pools = await fed.cons["guangdong"].fetchval("select count(*) from pool")
        try:
            await import_file(gd.pool, gd.node, "pools", f, progress=False)
        except ImportFailed as e:
            assert any("is held by change" in x.reason for x in e.errors), e.errors
        else:
            raise AssertionError("a pool was imported over a subtree a raise in progress holds")
        assert await fed.cons["guangdong"].fetchval("select count(*) from pool") == pools
    got = await raising
    assert "errors" not in got, got
    body = await fed.ask("guangdong", EDIT, {"in": {"poolId": pool, "year": year, "expectedInsured": 5}})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT" and "no month of 2026" in \
        body["errors"][0]["message"], body


async def test_with_a_province_node_down_the_rest_is_compiled_and_the_gap_named(fed: Fed) -> None:
    await fed.nodes["sichuan"].stop()
    body = await check_compiled(fed, "central", "000000", 2025, without=("sichuan",))
    got = body["data"]["compiledBudget"]
    assert (got["complete"], got["missing"]) == (False, [{"code": "510000"}])
    assert [e["extensions"]["code"] for e in body["errors"]] == ["TIER_UNAVAILABLE"]
    assert "sichuan" in body["errors"][0]["message"]
    # Sichuan's own pools are neither counted nor listed; Guangdong's and the centre's are.
    assert not any(p["poolId"].startswith("51") for p in got["parts"])
    assert any(p["poolId"].startswith("44") for p in got["parts"])
    ex = await fed.ask("central", EXECUTION, {"r": "000000", "s": "PENSION", "m": "2025-06"}, VIEWER)
    assert ex["data"]["budgetExecution"]["complete"] is False
    assert [e["extensions"]["code"] for e in ex["errors"]] == ["TIER_UNAVAILABLE"]
    # A region wholly inside the running part is complete still.
    body = await check_compiled(fed, "central", "440000", 2025)
    assert body["data"]["compiledBudget"]["complete"] and "errors" not in body


async def test_a_draft_from_accounts_missing_a_child_nodes_records_is_not_written(fed: Fed) -> None:
    """With Shenzhen down, Guangdong's province pension accounts lack Shenzhen's records: starting a
    draft from them fails with TIER_UNAVAILABLE and writes nothing, rather than a wrong draft."""
    await fed.nodes["shenzhen"].stop()
    before = {n: await c.fetchval("select count(*) from budget_step") for n, c in fed.cons.items()}
    body = await fed.ask("guangdong", START, {"in": {"poolId": "440000-PENSION-202401", "year": 2027,
                                                     "basePeriod": {"from": "2025-01", "to": "2025-06"}}})
    assert [e["extensions"]["code"] for e in body["errors"]][0] == "TIER_UNAVAILABLE", body
    assert "nothing was written" in body["errors"][0]["message"] and body["data"] is None
    assert {n: await c.fetchval("select count(*) from budget_step") for n, c in fed.cons.items()} == before
    assert await fed.cons["guangdong"].fetchval("select count(*) from budget where year = 2027") == 0


__all__ = ["BUDGET"]
