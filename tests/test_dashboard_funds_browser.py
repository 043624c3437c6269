"""The dashboard's fund and ranking panels (dashboard/funds.js) in a real headless Chromium,
against a real node: every figure shown equals the node's own GraphQL answer (the pool's
account, its balance month by month, the best and worst ten of the tier below by the
chosen indicator), a region pooled higher up says so, and switching indicator or scheme
reloads the panels. With ``TIERFED_SCREENSHOTS=1`` docs/screenshots/fund-panel.png is rewritten."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import load_dataset, node_config, token
from tests.nodes import RunningNode, start_node
from tests.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS, DOC_SHOTS, PageWatch, plain
from tests.test_fund_accounts import FLOWS, flows_csv
from tierfed.importer import import_file

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

TOK = token("000000", ("VIEWER",))
ACCOUNT = """query($id: ID!) { pool(id: $id) { account(period: {from: "2025-01", to: "2025-06"}) {
  closingBalance totalIncome totalExpenditure monthsOfPayment income { category amount } expenditure { category amount } }
  b1: balance(asOf: "2025-01") b2: balance(asOf: "2025-02") b3: balance(asOf: "2025-03")
  b4: balance(asOf: "2025-04") b5: balance(asOf: "2025-05") b6: balance(asOf: "2025-06") } }"""
RANKING = """query($by: RankBy!, $desc: Boolean!, $scheme: Scheme!) { ranking(region: "440000", tier: CITY,
  period: {from: "2025-01", to: "2025-06"}, scheme: $scheme, by: $by, descending: $desc, first: 10) {
  entries { region { code } value } } }"""


async def api(base: str, query: str, variables: dict[str, Any] | None = None) -> Any:
    async with httpx.AsyncClient(timeout=30) as c:
        body = (await c.post(f"{base}/graphql", json={"query": query, "variables": variables or {}},
                             headers={"Authorization": f"Bearer {TOK}"})).json()
    assert "errors" not in body, body["errors"]
    return body["data"]


@pytest.fixture(scope="module")
async def node(new_db: Any, dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningNode]:
    url = await new_db()
    await load_dataset(url, node_config(), dataset)
    n = await start_node(node_config(), url)
    rt = n.runtime
    await import_file(rt.pool, rt.node, "fund_flows", flows_csv(tmp_path_factory.mktemp("f") / "f.csv", FLOWS),
                      progress=False)
    yield n
    await n.stop()


async def ranked(page: Any, table: str) -> list[tuple[str, str]]:
    rows = page.locator(f"#{table} tbody tr")
    out = []
    for i in range(await rows.count()):
        r = rows.nth(i)
        out.append((str(await r.get_attribute("data-region")), plain(await r.locator("td[data-field=value]").inner_text())))
    return out


def entries(d: Any) -> list[tuple[str, str]]:
    return [(e["region"]["code"], "—" if e["value"] is None else e["value"]) for e in d["ranking"]["entries"]]


async def test_fund_and_ranking_panels_show_the_apis_figures(node: RunningNode, tmp_path: Path) -> None:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip("no chromium: install Debian's chromium to run the browser test")
    pw_api = pytest.importorskip("playwright.async_api", reason="no playwright: pip install -e '.[test]'")
    base = f"http://127.0.0.1:{node.port}"
    async with pw_api.async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            ctx = await b.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
            page = await ctx.new_page()
            page.set_default_timeout(20_000)
            watch = PageWatch(page, base)
            await page.goto(f"{base}/dashboard#token={TOK}&region=440000")
            await page.wait_for_selector("#main[data-state=ready]")
            await page.fill("#period-to", "2025-06")
            await page.locator("#apply").click()
            # the panels of this period (not those of the page's first load, 2025-01 to 2025-12)
            for panel, caption in (("fund", "fund-caption"), ("ranking", "ranking-caption")):
                await page.wait_for_function(
                    f"() => document.querySelector('#{panel}-panel').dataset.state === 'ready' && "
                    f"document.querySelector('#{caption}').textContent.includes('至 2025-06')")

            # The fund panel: the province's pension pool.
            want = (await api(base, ACCOUNT, {"id": "440000-PENSION-202401"}))["pool"]
            a = want["account"]
            assert await page.get_attribute("#fund-note", "data-pool") == "440000-PENSION-202401"
            for f in ("closingBalance", "totalIncome", "totalExpenditure"):
                shown = await page.locator(f"#fund-cards [data-field={f}] .value").inner_text()
                assert Decimal(plain(shown)) == Decimal(a[f]), f
            assert plain(await page.locator("#fund-cards [data-field=monthsOfPayment] .value").inner_text()) == \
                a["monthsOfPayment"]
            for side, flows in (("in", a["income"]), ("out", a["expenditure"])):
                for fl in flows:
                    td = page.locator(f"#fund-flows tr[data-side={side}][data-category={fl['category']}] td")
                    assert Decimal(plain(await td.inner_text())) == Decimal(fl["amount"]), fl["category"]
            balances = await page.get_attribute("#fund-flows", "data-balances")
            assert balances is not None
            assert [(m, Decimal(v)) for m, v in json.loads(balances)] == \
                [(f"2025-0{i}", Decimal(want[f"b{i}"])) for i in range(1, 7)]

            # The ranking panel: cities of Guangdong, best and worst ten by the default indicator.
            assert await page.locator("#ranking-by").input_value() == "DEPENDENCY_RATIO"
            best = await api(base, RANKING, {"by": "DEPENDENCY_RATIO", "desc": True, "scheme": "PENSION"})
            worst = await api(base, RANKING, {"by": "DEPENDENCY_RATIO", "desc": False, "scheme": "PENSION"})
            assert await ranked(page, "ranking-best") == entries(best)
            assert await ranked(page, "ranking-worst") == entries(worst)
            assert len(entries(best)) == 10
            await page.locator("#fund-panel").screenshot(path=str(tmp_path / "fund-panel.png"))
            if os.environ.get("TIERFED_SCREENSHOTS") == "1":
                await page.locator("#fund-panel").screenshot(path=str(DOC_SHOTS / "fund-panel.png"))
                await page.locator("#ranking-panel").screenshot(path=str(DOC_SHOTS / "ranking-panel.png"))

            # More benefits is worse: the worst ten are the largest.
            await page.select_option("#ranking-by", "BENEFITS_PAID")
            await page.wait_for_selector("#ranking-panel[data-state=ready]")
            most = await api(base, RANKING, {"by": "BENEFITS_PAID", "desc": True, "scheme": "PENSION"})
            await page.wait_for_function(
                "code => document.querySelector('#ranking-worst tbody tr')?.dataset.region === code",
                arg=most["ranking"]["entries"][0]["region"]["code"])
            assert await ranked(page, "ranking-worst") == entries(most)

            # Medical is pooled by the cities: the province has no pool of its own.
            await page.select_option("#fund-scheme", "MEDICAL")
            await page.wait_for_function("() => document.querySelector('#fund-note').textContent.includes('下级')")
            await page.wait_for_selector("#fund-panel[data-state=ready]")
            assert await page.locator("#fund-cards .card").count() == 0

            # Shenzhen: its pension is pooled by the province, named as such.
            await page.goto(f"{base}/dashboard#region=440300")
            await page.wait_for_selector("#main[data-state=ready]")
            await page.wait_for_function(
                "() => (document.querySelector('#fund-note').textContent || '').includes('440300-MEDICAL')")
            await page.select_option("#fund-scheme", "PENSION")
            await page.wait_for_function(
                "() => document.querySelector('#fund-note').textContent.includes('由广东省（440000）统筹')")
            watch.check()
        finally:
            await b.close()
