"""The dashboard's budget execution panel (dashboard/budget.js) in a real headless Chromium,
against a real node: every row it shows equals the API's budgetExecution, it follows the
region the rest of the page is on, and a malformed month is refused with what to fix.

With ``TIERFED_SCREENSHOTS=1`` the README's ``docs/screenshots/budget.png`` is rewritten."""

from __future__ import annotations

import os
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import load_dataset, node_config, token
from tests.nodes import start_node
from tests.test_dashboard_browser import DOC_SHOTS, browser, open_page, plain, wait_region

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

__all__ = ["browser"]

NATIONAL = token("000000", ("VIEWER", "OPERATOR", "BUDGET_REVIEWER", "BUDGET_APPROVER"), sub="national")
VIEWER = token("000000", ("VIEWER",))
EXECUTION = """query($r: ID!, $s: Scheme!, $m: Month!) { budgetExecution(region: $r, scheme: $s, month: $m) {
  complete states { pools approved waiting notDrafted }
  income { category budget actual actualNotBudgeted share } expenditure { category budget actual actualNotBudgeted share }
  totalIncome { budget actual actualNotBudgeted share } totalExpenditure { budget actual actualNotBudgeted share } } }"""


async def gql(base: str, tok: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.post(f"{base}/graphql", headers={"Authorization": f"Bearer {tok}"},
                         json={"query": query, "variables": variables})
    body = r.json()
    assert "errors" not in body, body
    return body["data"]  # type: ignore[no-any-return]


async def draft(base: str, pool: str, approve: bool) -> None:
    """A 2025 budget started from the first quarter's accounts, 4% growth of contributions."""
    await gql(base, NATIONAL, "mutation($in: StartBudgetInput!) { startBudget(input: $in) { state } }",
              {"in": {"poolId": pool, "year": 2025, "basePeriod": {"from": "2025-01", "to": "2025-03"},
                      "growth": [{"category": "CONTRIBUTIONS", "percent": "4"}]}})
    if approve:
        for step in ("submitBudget", "reviewBudget", "approveBudget"):
            await gql(base, NATIONAL, f"mutation($p: ID!) {{ {step}(poolId: $p, year: 2025) {{ state }} }}",
                      {"p": pool})


def percent(share: str | None) -> str:
    return "—" if share is None else f"{Decimal(share) * 100:.1f}%"


async def check_panel(page: Any, base: str, region: str, scheme: str, month: str) -> dict[str, Any]:
    """The panel's rows equal the API's budgetExecution, figure by figure."""
    api = (await gql(base, VIEWER, EXECUTION, {"r": region, "s": scheme, "m": month}))["budgetExecution"]
    rows = [("TOTAL_INCOME", api["totalIncome"]), *((x["category"], x) for x in api["income"]),
            ("TOTAL_EXPENDITURE", api["totalExpenditure"]), *((x["category"], x) for x in api["expenditure"])]
    assert await page.locator("#budget-table tbody tr[data-category]").count() == len(rows)
    for key, x in rows:
        tr = page.locator(f"#budget-table tr[data-category={key}]")
        assert Decimal(plain(await tr.locator("td[data-field=budget]").text_content())) == Decimal(x["budget"]), key
        for f in ("actual", "actualNotBudgeted"):
            assert Decimal(plain(await tr.locator(f"td[data-field={f}]").text_content())) == Decimal(x[f]), (key, f)
        assert (await tr.locator("td[data-field=share]").text_content() or "").strip() == percent(x["share"]), key
    s = api["states"]
    assert f"已批准 {s['approved']}，审批中 {s['waiting']}，未编制 {s['notDrafted']}" in \
        (await page.text_content("#budget-states") or "")
    return api  # type: ignore[no-any-return]


async def ask(page: Any, scheme: str, month: str) -> None:
    await page.select_option("#budget-scheme", scheme)
    await page.fill("#budget-month", month)
    await page.locator("#budget-form button[type=submit]").click()
    await page.wait_for_function(
        "a => { const p = document.querySelector('#budget-panel');"
        " return p.dataset.state === 'ready' && document.querySelector('#budget-caption').textContent"
        ".includes(a.month) && document.querySelector('#budget-scheme').value === a.scheme; }",
        arg={"month": month, "scheme": scheme})


async def test_budget_execution_panel(browser: Any, new_db: Any, dataset: Path, tmp_path: Path) -> None:
    url = await new_db()
    await load_dataset(url, node_config(), dataset)
    node = await start_node(node_config(), url)
    base = f"http://127.0.0.1:{node.port}"
    for pool, approve in (("440000-PENSION-202401", True), ("440100-MEDICAL-202401", False),
                          ("440300-MEDICAL-202401", True)):
        await draft(base, pool, approve)
    ctx, page, watch = await open_page(browser, base, VIEWER)
    try:
        await wait_region(page, "000000")
        await page.wait_for_selector("#budget-panel[data-state=ready]")
        await ask(page, "PENSION", "2025-06")
        api = await check_panel(page, base, "000000", "PENSION", "2025-06")
        assert Decimal(api["totalIncome"]["budget"]) > 0 and Decimal(api["totalIncome"]["actual"]) > 0
        # The panel follows the region the page moves to.
        await page.evaluate("() => { location.hash = 'region=440000'; }")
        await wait_region(page, "440000")
        await ask(page, "MEDICAL", "2025-04")
        api = await check_panel(page, base, "440000", "MEDICAL", "2025-04")
        assert api["states"]["approved"] == 1 and api["states"]["waiting"] == 1
        assert "广东省" in (await page.text_content("#budget-caption") or "")
        out = tmp_path / "budget.png"
        await page.locator("#budget-panel").screenshot(path=str(out))
        if os.environ.get("TIERFED_SCREENSHOTS") == "1":
            shutil.copyfile(out, DOC_SHOTS / "budget.png")
        # A malformed month: refused on the page, with what to fix.
        await page.fill("#budget-month", "2025-13")
        await page.locator("#budget-form button[type=submit]").click()
        await page.wait_for_selector("#budget-panel[data-state=error]")
        assert "YYYY-MM" in (await page.text_content("#budget-errors li[data-code=BAD_USER_INPUT]") or "")
        watch.check()
    finally:
        await ctx.close()
        await node.stop()
