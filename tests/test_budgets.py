"""Fund budgets on one node (real PostgreSQL, in-process GraphQL): every allowed and refused
step of the workflow, with nothing changed by a refusal; bad input; a draft started from
the accounts equal to an independent computation from the raw records; the compiled
budget equal to the drafts summed independently; execution against the accounts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from tierfed.tiers.figures import FUND_CATEGORIES, FUND_EXPENDITURE, FUND_INCOME
from tierfed.tiers.tree import Tree

from tests.conftest import Client, load_dataset, node_client, node_config, token
from tests.test_fund_accounts import FLOWS, Raw, flows_csv, m
from tierfed.importer import import_file

OP = token("440000", ("VIEWER", "OPERATOR"), sub="agency-gd")
REVIEWER = token("440000", ("VIEWER", "BUDGET_REVIEWER"), sub="hrss-gd")
APPROVER = token("440000", ("VIEWER", "BUDGET_APPROVER"), sub="finance-gd")
OP_SC = token("510000", ("VIEWER", "OPERATOR"), sub="agency-sc")
REVIEWER_SZ = token("440300", ("VIEWER", "BUDGET_REVIEWER"), sub="hrss-sz")
APPROVER_SC = token("510000", ("VIEWER", "BUDGET_APPROVER"), sub="finance-sc")
VIEWER = token("000000", ("VIEWER",), sub="viewer")
NATIONAL = token("000000", ("VIEWER", "OPERATOR", "BUDGET_REVIEWER", "BUDGET_APPROVER"), sub="national")

POOL = "440000-PENSION-202401"
BUDGET = """fragment B on Budget { poolId year scheme state frozen returnedReason totalIncome totalExpenditure surplus
  expectedInsured expectedContributors expectedBeneficiaries income { category amount } expenditure { category amount }
  basis { period { from to } growth { category percent } headcountGrowth }
  history { action fromState toState by roles reason changes } }"""
START = BUDGET + """
mutation($in: StartBudgetInput!) { startBudget(input: $in) { ...B } }"""
EDIT = BUDGET + """
mutation($in: EditBudgetInput!) { editBudget(input: $in) { ...B } }"""
STEP = BUDGET + """
mutation($p: ID!, $y: Int!) { %s(poolId: $p, year: $y) { ...B } }"""
RETURN = BUDGET + """
mutation($p: ID!, $y: Int!, $r: String!) { returnBudget(poolId: $p, year: $y, reason: $r) { ...B } }"""
READ = BUDGET + """
query($p: ID!, $y: Int!) { budget(poolId: $p, year: $y) { ...B } }"""
COMPILED = """query($r: ID!, $y: Int!, $a: Boolean! = false) { compiledBudget(region: $r, year: $y, onlyApproved: $a) {
  complete missing { code } states { pools approved waiting notDrafted }
  schemes { scheme totalIncome totalExpenditure surplus expectedInsured income { category amount }
            expenditure { category amount } states { pools approved waiting notDrafted } }
  parts { poolId scheme region { code } state } waiting: parts(states: [DRAFT, SUBMITTED, REVIEWED]) { poolId }
  none: parts(notDrafted: true) { poolId } } }"""
EXECUTION = """query($r: ID!, $s: Scheme!, $m: Month!) { budgetExecution(region: $r, scheme: $s, month: $m) {
  complete period { from to } elapsedShare states { pools approved waiting notDrafted }
  income { category budget actual actualNotBudgeted share } expenditure { category budget actual actualNotBudgeted share }
  totalIncome { budget actual actualNotBudgeted share } totalExpenditure { budget actual actualNotBudgeted share } } }"""
TABLES = ("budget", "budget_line", "budget_step")


@pytest.fixture(scope="module")
async def world(new_db: Any, dataset: Path, tree: Tree, tmp_path_factory: pytest.TempPathFactory
                ) -> AsyncIterator[tuple[Client, Raw, asyncpg.Connection]]:
    url = await new_db()
    await load_dataset(url, node_config(), dataset)
    async with node_client(url) as c:
        rt = c.runtime
        d = tmp_path_factory.mktemp("flows")
        await import_file(rt.pool, rt.node, "fund_flows", flows_csv(d / "flows.csv", FLOWS), progress=False)
        con = await asyncpg.connect(url)
        try:
            yield c, Raw(con, tree, list(FLOWS)), con
        finally:
            await con.close()


async def snapshot(con: asyncpg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {t: [tuple(r) for r in await con.fetch(f"select * from {t} order by 1, 2, 3")] for t in TABLES}


async def ok(c: Client, query: str, variables: dict[str, Any], tok: str) -> dict[str, Any]:
    body = await c.gql(query, variables, tok)
    assert "errors" not in body, body["errors"]
    return next(iter(body["data"].values()))  # type: ignore[no-any-return]


async def refused(c: Client, con: asyncpg.Connection, query: str, variables: dict[str, Any], tok: str,
                  code: str, words: str) -> str:
    """The request fails with ``code`` and a message containing ``words``, and no budget table changed."""
    before = await snapshot(con)
    body = await c.gql(query, variables, tok)
    errs = body.get("errors") or []
    assert len(errs) == 1, body
    assert errs[0]["extensions"]["code"] == code, errs
    assert words in errs[0]["message"], errs[0]["message"]
    assert await snapshot(con) == before
    return str(errs[0]["message"])


def step(name: str, pool: str = POOL, year: int = 2025) -> tuple[str, dict[str, Any]]:
    return STEP % name, {"p": pool, "y": year}


async def test_the_workflow_allows_each_step_only_in_order_by_its_role_over_its_region(world: Any) -> None:
    c, _, con = world
    blank = {"in": {"poolId": POOL, "year": 2025}}
    # Starting: OPERATOR over the pool's region only.
    await refused(c, con, START, blank, VIEWER, "FORBIDDEN", "OPERATOR")
    await refused(c, con, START, blank, REVIEWER, "FORBIDDEN", "OPERATOR")
    await refused(c, con, START, blank, OP_SC, "FORBIDDEN", "outside your token's scope")
    b = await ok(c, START, blank, OP)
    assert (b["state"], b["frozen"], b["totalIncome"], b["basis"]) == ("DRAFT", False, "0.00", None)
    assert [x["category"] for x in b["income"] + b["expenditure"]] == list(FUND_CATEGORIES)
    await refused(c, con, START, blank, OP, "CONFLICT", "already has a budget")
    # Out of order from DRAFT: review, approve, return.
    await refused(c, con, *step("reviewBudget"), REVIEWER, "BAD_USER_INPUT", "moves a SUBMITTED budget")
    await refused(c, con, *step("approveBudget"), APPROVER, "BAD_USER_INPUT", "moves a REVIEWED budget")
    await refused(c, con, RETURN, {"p": POOL, "y": 2025, "r": "no"}, REVIEWER, "BAD_USER_INPUT",
                  "returns a SUBMITTED or REVIEWED budget")
    # Editing the draft, then submitting: OPERATOR over the region.
    b = await ok(c, EDIT, {"in": {"poolId": POOL, "year": 2025, "expectedInsured": 1200,
                                  "lines": [{"category": "CONTRIBUTIONS", "amount": "1000000.50"},
                                            {"category": "BENEFITS", "amount": "800000"}]}}, OP)
    assert (b["totalIncome"], b["totalExpenditure"], b["surplus"], b["expectedInsured"]) == \
        ("1000000.50", "800000.00", "200000.50", 1200)
    await refused(c, con, *step("submitBudget"), REVIEWER, "FORBIDDEN", "OPERATOR")
    await refused(c, con, *step("submitBudget"), OP_SC, "FORBIDDEN", "outside your token's scope")
    assert (await ok(c, *step("submitBudget"), OP))["state"] == "SUBMITTED"
    await refused(c, con, *step("submitBudget"), OP, "BAD_USER_INPUT", "is SUBMITTED")
    await refused(c, con, EDIT, {"in": {"poolId": POOL, "year": 2025, "expectedInsured": 1}}, OP,
                  "BAD_USER_INPUT", "only a DRAFT can be edited")
    await refused(c, con, *step("approveBudget"), APPROVER, "BAD_USER_INPUT", "moves a REVIEWED budget")
    # Reviewing: BUDGET_REVIEWER over the pool's region (Shenzhen's reviewer is below it).
    await refused(c, con, *step("reviewBudget"), OP, "FORBIDDEN", "BUDGET_REVIEWER")
    await refused(c, con, *step("reviewBudget"), REVIEWER_SZ, "FORBIDDEN", "outside your token's scope")
    # Returning a SUBMITTED budget: the reviewer, with a reason.
    await refused(c, con, RETURN, {"p": POOL, "y": 2025, "r": "x"}, APPROVER, "FORBIDDEN", "BUDGET_REVIEWER")
    await refused(c, con, RETURN, {"p": POOL, "y": 2025, "r": "  "}, REVIEWER, "BAD_USER_INPUT", "reason")
    b = await ok(c, RETURN, {"p": POOL, "y": 2025, "r": "benefits look low for 2025"}, REVIEWER)
    assert (b["state"], b["returnedReason"]) == ("DRAFT", "benefits look low for 2025")
    await ok(c, EDIT, {"in": {"poolId": POOL, "year": 2025,
                              "lines": [{"category": "BENEFITS", "amount": "850000.25"}]}}, OP)
    await ok(c, *step("submitBudget"), OP)
    b = await ok(c, *step("reviewBudget"), REVIEWER)
    assert (b["state"], b["returnedReason"]) == ("REVIEWED", None)
    # From REVIEWED: approving or returning is finance's.
    await refused(c, con, *step("reviewBudget"), REVIEWER, "BAD_USER_INPUT", "is REVIEWED")
    await refused(c, con, *step("approveBudget"), REVIEWER, "FORBIDDEN", "BUDGET_APPROVER")
    await refused(c, con, *step("approveBudget"), APPROVER_SC, "FORBIDDEN", "outside your token's scope")
    await refused(c, con, RETURN, {"p": POOL, "y": 2025, "r": "x"}, REVIEWER, "FORBIDDEN", "BUDGET_APPROVER")
    b = await ok(c, RETURN, {"p": POOL, "y": 2025, "r": "the fiscal subsidy is missing"}, APPROVER)
    assert b["state"] == "DRAFT"
    await ok(c, EDIT, {"in": {"poolId": POOL, "year": 2025,
                              "lines": [{"category": "FISCAL_SUBSIDY", "amount": "20000.00"}]}}, OP)
    await ok(c, *step("submitBudget"), OP)
    await ok(c, *step("reviewBudget"), REVIEWER)
    b = await ok(c, *step("approveBudget"), APPROVER)
    assert (b["state"], b["frozen"], b["totalIncome"], b["totalExpenditure"]) == \
        ("APPROVED", True, "1020000.50", "850000.25")
    # Frozen: no step and no edit, whoever asks.
    for q, v, tok in (step("submitBudget") + (NATIONAL,), step("reviewBudget") + (NATIONAL,),
                      step("approveBudget") + (NATIONAL,)):
        await refused(c, con, q, v, tok, "BAD_USER_INPUT", "frozen")
    await refused(c, con, RETURN, {"p": POOL, "y": 2025, "r": "again"}, NATIONAL, "BAD_USER_INPUT", "frozen")
    await refused(c, con, EDIT, {"in": {"poolId": POOL, "year": 2025, "lines": [
        {"category": "BENEFITS", "amount": "1.00"}]}}, NATIONAL, "BAD_USER_INPUT", "APPROVED and frozen")
    # Every step recorded: who, from which state to which, what changed.
    got = await ok(c, READ, {"p": POOL, "y": 2025}, VIEWER)
    assert [(h["action"], h["fromState"], h["toState"], h["by"]) for h in got["history"]] == [
        ("STARTED", None, "DRAFT", "agency-gd"), ("EDITED", "DRAFT", "DRAFT", "agency-gd"),
        ("SUBMITTED", "DRAFT", "SUBMITTED", "agency-gd"), ("RETURNED", "SUBMITTED", "DRAFT", "hrss-gd"),
        ("EDITED", "DRAFT", "DRAFT", "agency-gd"), ("SUBMITTED", "DRAFT", "SUBMITTED", "agency-gd"),
        ("REVIEWED", "SUBMITTED", "REVIEWED", "hrss-gd"), ("RETURNED", "REVIEWED", "DRAFT", "finance-gd"),
        ("EDITED", "DRAFT", "DRAFT", "agency-gd"), ("SUBMITTED", "DRAFT", "SUBMITTED", "agency-gd"),
        ("REVIEWED", "SUBMITTED", "REVIEWED", "hrss-gd"), ("APPROVED", "REVIEWED", "APPROVED", "finance-gd")]
    h = got["history"]
    assert h[1]["changes"] == {"lines": {"CONTRIBUTIONS": ["0.00", "1000000.50"], "BENEFITS": ["0.00", "800000.00"]},
                               "expectedInsured": [0, 1200]}
    assert h[3]["reason"] == "benefits look low for 2025" and h[4]["changes"]["lines"] == {
        "BENEFITS": ["800000.00", "850000.25"]}
    assert h[-1]["roles"] == ["BUDGET_APPROVER", "VIEWER"]


@pytest.mark.parametrize("case, variables, words", [
    ("three decimals", {"lines": [{"category": "BENEFITS", "amount": "10.005"}]}, "3 fraction digits"),
    ("negative", {"lines": [{"category": "BENEFITS", "amount": "-1.00"}]}, "negative"),
    ("too large", {"lines": [{"category": "BENEFITS", "amount": "100000000000000.00"}]}, "too large"),
    ("twice", {"lines": [{"category": "INTEREST", "amount": "1.00"}, {"category": "INTEREST", "amount": "2.00"}]},
     "given twice"),
    ("nothing", {}, "changes nothing"),
    ("headcount", {"expectedInsured": -5}, "expectedInsured"),
])
async def test_bad_edits_say_what_to_fix_and_change_nothing(world: Any, case: str, variables: dict[str, Any],
                                                            words: str) -> None:
    c, _, con = world
    pool = "440300-MEDICAL-202401"
    if await con.fetchval("select count(*) from budget where pool_id = $1", pool) == 0:
        await ok(c, START, {"in": {"poolId": pool, "year": 2025}}, OP)
    await refused(c, con, EDIT, {"in": {"poolId": pool, "year": 2025, **variables}}, OP, "BAD_USER_INPUT", words)


@pytest.mark.parametrize("case, query, variables, words", [
    ("unknown category", EDIT, {"in": {"poolId": "440300-MEDICAL-202401", "year": 2025,
                                       "lines": [{"category": "LOTTERY", "amount": "1.00"}]}}, "LOTTERY"),
    ("amount as a float", EDIT, {"in": {"poolId": "440300-MEDICAL-202401", "year": 2025,
                                        "lines": [{"category": "INTEREST", "amount": 1.5}]}}, "never a float"),
    ("growth with three decimals", START, {"in": {"poolId": "440100-MEDICAL-202401", "year": 2025,
                                                  "basePeriod": {"from": "2025-01", "to": "2025-03"},
                                                  "growth": [{"category": "BENEFITS", "percent": "1.125"}]}},
     "more than two fraction digits"),
    ("growth without a base", START, {"in": {"poolId": "440100-MEDICAL-202401", "year": 2025,
                                             "growth": [{"category": "BENEFITS", "percent": "1"}]}}, "basePeriod"),
    ("base outside the pool", START, {"in": {"poolId": "440100-MEDICAL-202401", "year": 2025,
                                             "basePeriod": {"from": "2023-01", "to": "2023-03"}}}, "not inside"),
    ("a year the pool does not cover", START, {"in": {"poolId": "440100-MEDICAL-202401", "year": 2020}},
     "no month of 2020"),
    ("malformed pool id", START, {"in": {"poolId": "440100-MEDICAL", "year": 2025}}, "malformed"),
    ("unknown pool", START, {"in": {"poolId": "440100-MEDICAL-202301", "year": 2025}}, "does not exist"),
    ("year out of range", START, {"in": {"poolId": "440100-MEDICAL-202401", "year": 1900}}, "out of range"),
    ("no budget yet", STEP % "submitBudget", {"p": "440100-MEDICAL-202401", "y": 2025}, "start one"),
])
async def test_bad_input_is_refused_with_what_to_fix(world: Any, case: str, query: str, variables: dict[str, Any],
                                                     words: str) -> None:
    c, _, con = world
    await refused(c, con, query, variables, OP, "BAD_USER_INPUT", words)


async def test_two_starts_at_once_one_draft_and_one_conflict(world: Any) -> None:
    """Two startBudget for the same pool and year at the same moment: the second waits for the
    first and is a CONFLICT that says what to do (it had been a masked internal error)."""
    c, _, con = world
    v = {"in": {"poolId": "440100-MEDICAL-202401", "year": 2024}}
    # Both past their check before either inserts: the table held against inserts (not against
    # the checks' row locks) until both wait on it.
    tr = con.transaction()
    await tr.start()
    await con.execute("lock table budget in share row exclusive mode")
    both = asyncio.gather(c.gql(START, v, OP), c.gql(START, v, OP))
    for _ in range(200):
        if await con.fetchval("select count(*) from pg_locks l join pg_class t on t.oid = l.relation "
                              "where t.relname = 'budget' and not l.granted") == 2:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the two starts never both waited to insert")
    await tr.rollback()
    bodies = await both
    codes_ = sorted((b.get("errors") or [{"extensions": {"code": "OK"}}])[0]["extensions"]["code"] for b in bodies)
    assert codes_ == ["CONFLICT", "OK"], bodies
    assert "editBudget" in next(b for b in bodies if b.get("errors"))["errors"][0]["message"]
    assert await con.fetchval("select count(*) from budget_step where pool_id = $1 and year = 2024",
                              "440100-MEDICAL-202401") == 1


async def test_two_steps_in_one_request_each_show_their_own_history(world: Any) -> None:
    """Root mutation fields run one after another in one request, which shares its loaders: the
    second field's history ends with its own step (it had ended with the first field's)."""
    c, _, _ = world
    pool, year = "440100-MEDICAL-202401", 2026
    await ok(c, START, {"in": {"poolId": pool, "year": year}}, OP)
    q = BUDGET + """
mutation($p: ID!, $y: Int!) {
  a: editBudget(input: {poolId: $p, year: $y, expectedInsured: 7}) { ...B }
  b: submitBudget(poolId: $p, year: $y) { ...B } }"""
    body = await c.gql(q, {"p": pool, "y": year}, OP)
    assert "errors" not in body, body["errors"]
    assert body["data"]["a"]["history"][-1]["action"] == "EDITED"
    assert (body["data"]["b"]["state"], body["data"]["b"]["history"][-1]["action"]) == ("SUBMITTED", "SUBMITTED")


async def test_refused_steps_run_no_sql(world: Any) -> None:
    c, _, _ = world
    counter = c.runtime.statements
    before = counter.count
    body = await c.gql(*step("approveBudget"), REVIEWER)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    body = await c.gql(*step("submitBudget", "510000-PENSION-202401"), OP)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert counter.count == before


async def test_a_draft_started_from_accounts_is_the_annualised_accounts_grown_as_stated(world: Any) -> None:
    c, raw, con = world
    pool = "110000-MEDICAL-202401"
    growth = {"CONTRIBUTIONS": Decimal("5.5"), "BENEFITS": Decimal("-2.25")}
    b = await ok(c, START, {"in": {"poolId": pool, "year": 2026, "basePeriod": {"from": "2025-01", "to": "2025-04"},
                                   "growth": [{"category": k, "percent": str(v)} for k, v in growth.items()],
                                   "headcountGrowth": "10"}}, NATIONAL)
    cats = await raw.categories("110000", 2, m(1), m(4))
    want = {k: (v * 12 / 4 * (1 + growth.get(k, Decimal(0)) / 100)).quantize(Decimal("0.01"), ROUND_HALF_UP)
            for k, v in cats.items()}
    got = {x["category"]: Decimal(x["amount"]) for x in b["income"] + b["expenditure"]}
    assert got == want and want["CONTRIBUTIONS"] > 0 and want["BENEFITS"] > 0
    sub = [str(r["id_number"]) for r in await con.fetch(
        "select distinct id_number from contribution where scheme = 2 and month = $1 and region_code in "
        "(select descendant from region_closure where ancestor = '110000')", m(4))]
    months = await con.fetchval("select count(*) from contribution where scheme = 2 and month between $1 and $2 and "
                                "region_code in (select descendant from region_closure where ancestor = '110000')",
                                m(1), m(4))
    assert b["expectedInsured"] == int((Decimal(len(sub)) * Decimal("1.1")).quantize(Decimal(1), ROUND_HALF_UP))
    assert b["expectedContributors"] == int((Decimal(months) / 4 * Decimal("1.1")).quantize(Decimal(1), ROUND_HALF_UP))
    assert b["basis"] == {"period": {"from": "2025-01", "to": "2025-04"}, "headcountGrowth": "10.00",
                          "growth": [{"category": "CONTRIBUTIONS", "percent": "5.50"},
                                     {"category": "BENEFITS", "percent": "-2.25"}]}
    assert b["history"][0]["action"] == "STARTED" and b["history"][0]["changes"]["basis"]["from"] == "2025-01"


async def drafts(con: asyncpg.Connection, region: str, year: int, only_approved: bool = False
                 ) -> dict[int, dict[str, Decimal]]:
    """The independent sum: every budget line of pools inside the region, per scheme and category."""
    rows = await con.fetch(
        "select b.scheme, l.category, l.amount, b.state from budget b join budget_line l using (pool_id, year) "
        "where b.year = $1 and b.region_code in (select descendant from region_closure where ancestor = $2)",
        year, region)
    out: dict[int, dict[str, Decimal]] = {s: {k: Decimal("0.00") for k in FUND_CATEGORIES} for s in range(1, 6)}
    for r in rows:
        if r["state"] == "APPROVED" or not only_approved:
            out[r["scheme"]][r["category"]] += r["amount"]
    return out


async def test_compiled_budget_equals_the_drafts_summed_independently(world: Any) -> None:
    c, _, con = world
    for pool, amounts in (("440100-MEDICAL-202401", {"CONTRIBUTIONS": "333.33", "BENEFITS": "111.11"}),
                          ("440300-MEDICAL-202401", {"CONTRIBUTIONS": "0.01", "OTHER_INCOME": "7.00"}),
                          ("510000-PENSION-202401", {"CONTRIBUTIONS": "9999999.99"})):
        if await con.fetchval("select count(*) from budget where pool_id = $1 and year = 2025", pool) == 0:
            await ok(c, START, {"in": {"poolId": pool, "year": 2025}}, NATIONAL)
        await ok(c, EDIT, {"in": {"poolId": pool, "year": 2025, "lines": [
            {"category": k, "amount": v} for k, v in amounts.items()]}}, NATIONAL)
    for region in ("000000", "440000", "440300", "510000", "110000"):
        for only in (False, True):
            got = await ok(c, COMPILED, {"r": region, "y": 2025, "a": only}, VIEWER)
            want = await drafts(con, region, 2025, only)
            assert got["complete"] and got["missing"] == []
            for s in got["schemes"]:
                sid = ("PENSION", "MEDICAL", "WORK_INJURY", "UNEMPLOYMENT", "MATERNITY").index(s["scheme"]) + 1
                got_amounts = {x["category"]: Decimal(x["amount"]) for x in s["income"] + s["expenditure"]}
                assert got_amounts == want[sid], (region, s["scheme"])
                assert Decimal(s["totalIncome"]) == sum((want[sid][k] for k in FUND_INCOME), Decimal(0))
                assert Decimal(s["totalExpenditure"]) == sum((want[sid][k] for k in FUND_EXPENDITURE), Decimal(0))
            # The parts: every pool open in 2025 inside the region, with its budget's state.
            pools = await con.fetch(
                "select p.id, b.state from pool p left join budget b on b.pool_id = p.id and b.year = 2025 "
                "where p.region_code in (select descendant from region_closure where ancestor = $1) and "
                "p.opened_from <= '2025-12-01' and (p.closed_after is null or p.closed_after >= '2025-01-01') "
                "order by p.id", region)
            assert [(p["poolId"], p["state"]) for p in got["parts"]] == [(r["id"], r["state"]) for r in pools]
            states = [r["state"] for r in pools]
            assert got["states"] == {"pools": len(pools), "approved": states.count("APPROVED"),
                                     "waiting": sum(s in ("DRAFT", "SUBMITTED", "REVIEWED") for s in states),
                                     "notDrafted": states.count(None)}
            assert [p["poolId"] for p in got["none"]] == [r["id"] for r in pools if r["state"] is None]
            assert [p["poolId"] for p in got["waiting"]] == [r["id"] for r in pools if r["state"] not in
                                                            (None, "APPROVED")]
    # Outside the scope: refused, as rollups are.
    body = await c.gql(COMPILED, {"r": "000000", "y": 2025}, OP)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_execution_is_the_accounts_to_date_against_the_budget(world: Any) -> None:
    c, raw, con = world
    for region, scheme, month in (("440000", "MEDICAL", 6), ("440000", "PENSION", 3), ("000000", "MEDICAL", 5)):
        sid = ("PENSION", "MEDICAL").index(scheme) + 1
        got = await ok(c, EXECUTION, {"r": region, "s": scheme, "m": f"2025-{month:02d}"}, VIEWER)
        assert got["period"] == {"from": "2025-01", "to": f"2025-{month:02d}"}
        # four decimals as written ("0.5000" for June, not the amounts' "0.50")
        assert got["elapsedShare"] == f"{(Decimal(month) / 12).quantize(Decimal('0.0001'), ROUND_HALF_UP):f}"
        pools = await con.fetch(
            "select p.region_code, p.opened_from, b.pool_id is not null as budgeted from pool p "
            "left join budget b on b.pool_id = p.id and b.year = 2025 where p.scheme = $1 and p.region_code in "
            "(select descendant from region_closure where ancestor = $2)", sid, region)
        actual = {k: Decimal("0.00") for k in FUND_CATEGORIES}
        rest = {k: Decimal("0.00") for k in FUND_CATEGORIES}
        for p in pools:
            for k, v in (await raw.categories(p["region_code"], sid, max(m(1), p["opened_from"]), m(month))).items():
                (actual if p["budgeted"] else rest)[k] += v
        assert actual["CONTRIBUTIONS"] > 0 and actual["BENEFITS"] > 0
        # pools without a budget: apart, never against another pool's budget (most MEDICAL pools have none)
        assert rest["CONTRIBUTIONS"] > 0 or scheme == "PENSION"
        budget = (await drafts(con, region, 2025))[sid]
        assert any(budget.values()) or region != "440000"
        for line in got["income"] + got["expenditure"]:
            k = line["category"]
            assert (Decimal(line["actual"]), Decimal(line["actualNotBudgeted"]), Decimal(line["budget"])) == \
                (actual[k], rest[k], budget[k]), (region, scheme, k)
            want = None if budget[k] == 0 else (actual[k] / budget[k]).quantize(Decimal("0.0001"), ROUND_HALF_UP)
            assert line["share"] == (None if want is None else f"{want:f}"), line
        assert Decimal(got["totalIncome"]["actual"]) == sum((actual[k] for k in FUND_INCOME), Decimal(0))
        assert Decimal(got["totalIncome"]["actualNotBudgeted"]) == sum((rest[k] for k in FUND_INCOME), Decimal(0))
        assert Decimal(got["totalExpenditure"]["budget"]) == sum((budget[k] for k in FUND_EXPENDITURE), Decimal(0))
    body = await c.gql(EXECUTION, {"r": "440000", "s": "MEDICAL", "m": "2025-13"}, VIEWER)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_compiled_budgets_and_execution_take_the_same_few_statements_whatever_the_region(world: Any) -> None:
    """One statement for the parts of every pool inside the region, one for their summaries, one for
    the regions named: the nation's hundreds of pools cost what one province's do."""
    c, _, _ = world
    counter = c.runtime.statements
    counts, seen = {}, {}
    for region in ("000000", "440000", "440300"):
        for what, q, v in (("compiled", COMPILED, {"r": region, "y": 2025}),
                           ("execution", EXECUTION, {"r": region, "s": "MEDICAL", "m": "2025-06"})):
            c.runtime.answers.clear()
            counter.queries = []
            try:
                await ok(c, q, v, VIEWER)
                seen[(what, region)] = [x.split()[:6] for x in counter.queries]
                counts[(what, region)] = len(counter.queries)
            finally:
                counter.queries = None
    assert len({n for (w, _), n in counts.items() if w == "compiled"}) == 1, seen
    assert len({n for (w, _), n in counts.items() if w == "execution"}) == 1, seen
    assert max(counts.values()) <= 5, seen


async def test_a_step_waits_for_a_raise_closing_its_pool_and_is_refused(world: Any) -> None:
    """A raise closing the pool while a step is under way: the step waits for it under the pool's
    row lock and is refused, writing nothing (the pool had been checked before the step's
    transaction, so the step went through and moved a budget that counts nowhere)."""
    c, _, con = world
    pool, year = "440100-MEDICAL-202401", 2029
    await ok(c, START, {"in": {"poolId": pool, "year": year}}, OP)
    before = await snapshot(con)
    tr = con.transaction()
    await tr.start()
    try:
        # What a raise does to the pool it closes, held uncommitted.
        await con.execute("update pool set closed_after = '2028-12-01' where id = $1", pool)
        submitted = asyncio.ensure_future(c.gql(*step("submitBudget", pool, year), OP))
        for _ in range(250):
            assert not submitted.done(), f"the step went through while a raise was closing its pool: {submitted.result()}"
            # A fresh connection's view (the statistics are read once per transaction).
            if await c.runtime.pool.fetchval("select count(*) from pg_stat_activity where wait_event_type = 'Lock' "
                                             "and datname = current_database() and pid <> pg_backend_pid() "
                                             "and query like '%from pool p where p.id%'"):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the step never waited for the pool's row")
        await tr.commit()
    except BaseException:
        await tr.rollback()
        raise
    try:
        body = await submitted
        errs = body.get("errors") or []
        assert len(errs) == 1 and errs[0]["extensions"]["code"] == "BAD_USER_INPUT", body
        assert f"no month of {year}" in errs[0]["message"], errs
        after = await snapshot(con)
        assert after == before
    finally:
        await con.execute("update pool set closed_after = null where id = $1", pool)


async def test_a_budget_of_a_pool_a_raise_closed_takes_no_further_step(world: Any) -> None:
    """A raise that closes a pool before a budgeted year leaves that budget out of the compiled
    figures (the pool no longer covers the year): no step may move it on either, as no start
    would have been allowed (the steps had gone on, to an approval that counted nowhere).
    Last in this module: the raise changes its world."""
    c, _, con = world
    pool, year = "440300-MEDICAL-202401", 2027
    await ok(c, START, {"in": {"poolId": pool, "year": year}}, OP)
    raised = await ok(c, """mutation($in: RaisePoolingLevelInput!) { raisePoolingLevel(input: $in) { pool { id } } }""",
                      {"in": {"scheme": "MEDICAL", "region": "440000", "effectiveFrom": "2026-01",
                              "idempotencyKey": "budgets-gd-medical"}}, OP)
    assert raised["pool"]["id"].startswith("440000-MEDICAL-")
    words = f"no month of {year}: budget the pool that covers the year"
    await refused(c, con, EDIT, {"in": {"poolId": pool, "year": year, "expectedInsured": 3}}, OP, "BAD_USER_INPUT",
                  words)
    await refused(c, con, *step("submitBudget", pool, year), OP, "BAD_USER_INPUT", words)
