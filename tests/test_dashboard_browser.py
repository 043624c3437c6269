"""The dashboard in a real headless Chromium (Debian's ``chromium``, never a downloaded one).

Against real nodes on loopback: the figures the page shows are checked against the
node's own GraphQL API, the page drills down nation -> province -> city (-> county)
and back up by the breadcrumbs, a person lookup comes back masked without PII_READER,
and on the federation the central node's page drills seamlessly into a province held
by a child node and names that province plainly once the child is gone.

Screenshots always go to the test's tmp directory; with ``TIERFED_SCREENSHOTS=1`` the
README's ``docs/screenshots/{national,province,county}.png`` are rewritten as well.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from tierfed.tiers.node import Node
from tierfed.tiers.tree import Tree

from tests.conftest import load_dataset, node_config, token
from tests.nodes import free_port, start_node
from tierfed.generator import Options, generate

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

CHROMIUM = os.environ.get("TIERFED_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REPO = Path(__file__).resolve().parent.parent
DOC_SHOTS = REPO / "docs" / "screenshots"
WIDTH = 1400
README_SHOTS = ("national", "province", "county")  # docs/screenshots/<name>.png

# The data set of the ``dataset`` fixture covers 2025-01..2025-06; ``insured`` counts the
# period's last month, so the page is switched from its default (the whole year) to this.
PERIOD = {"from": "2025-01", "to": "2025-06"}
SCHEMES = ["PENSION", "MEDICAL", "WORK_INJURY", "UNEMPLOYMENT", "MATERNITY"]
INT_FIELDS = ["insured", "contributorMonths", "beneficiaries"]
DEC_FIELDS = ["contributionEmployer", "contributionIndividual", "contributionTotal",
              "individualAccount", "pooled", "benefitsPaid"]
FIELDS = INT_FIELDS + DEC_FIELDS
TOTALS = "totals { scheme " + " ".join(FIELDS) + " }"
ROLLUP_QUERY = (
    "query($region: ID!, $period: PeriodInput!, $schemes: [Scheme!]) {"
    " rollup(region: $region, period: $period, schemes: $schemes) {"
    "  region { code name tier } complete missing { code name } " + TOTALS +
    "  byChild { region { code name tier } complete " + TOTALS + " } } }"
)
PERSON_QUERY = (
    "query($id: String!, $year: Int!) { person(idNumber: $id) { idNumber name region { code }"
    " statement(year: $year) { schemes { scheme months contributionEmployer contributionIndividual"
    " individualAccount benefitsPaid } } } }"
)
GROUPED_INT = re.compile(r"^\d{1,3}(,\d{3})*$")
GROUPED_DEC = re.compile(r"^\d{1,3}(,\d{3})*\.\d{2}$")


# ---------------------------------------------------------------- helpers


def plain(text: str | None) -> str:
    """A figure as shown on the page, without thousands separators."""
    assert text is not None
    return text.strip().replace(",", "")


def summed(totals: list[dict[str, Any]]) -> dict[str, Any]:
    """The API's per-scheme totals added up the way the page does (headcounts too)."""
    out: dict[str, Any] = {f: sum(int(t[f]) for t in totals) for f in INT_FIELDS}
    out.update({f: sum((Decimal(t[f]) for t in totals), Decimal("0.00")) for f in DEC_FIELDS})
    return out


def as_value(field: str, text: str | None) -> Any:
    s = (text or "").strip()
    pattern = GROUPED_INT if field in INT_FIELDS else GROUPED_DEC
    assert pattern.match(s), f"{field}: badly formatted {s!r}"
    return int(plain(s)) if field in INT_FIELDS else Decimal(plain(s))


async def api_rollup(base: str, tok: str, region: str,
                     errors: tuple[str, ...] = ()) -> dict[str, Any]:
    """The API's rollup of ``region``; only errors with the given codes are allowed."""
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.post(f"{base}/graphql", headers={"Authorization": f"Bearer {tok}"},
                         json={"query": ROLLUP_QUERY, "variables": {
                             "region": region, "period": PERIOD, "schemes": SCHEMES}})
    body = r.json()
    assert r.status_code == 200 and body.get("data"), body
    codes = [(e.get("extensions") or {}).get("code") for e in body.get("errors") or []]
    assert all(c in errors for c in codes), body
    return body["data"]["rollup"]  # type: ignore[no-any-return]


async def page_totals(page: Any) -> dict[str, Any]:
    return {f: as_value(f, await page.text_content(f"[data-testid=total-{f}]")) for f in FIELDS}


async def page_row(page: Any, code: str) -> dict[str, Any]:
    row = page.locator(f"#children-table tr[data-code='{code}']")
    return {f: as_value(f, await row.locator(f"td[data-field={f}]").text_content()) for f in FIELDS}


async def wait_region(page: Any, code: str) -> None:
    """Until the page shows ``code`` and nothing is loading."""
    await page.wait_for_function(
        """code => document.body.dataset.state === 'ready'
             && document.querySelector('#main').dataset.state === 'ready'
             && (document.querySelector('#breadcrumbs li[aria-current]')
                 || {dataset: {}}).dataset.code === code""",
        arg=code, timeout=15_000)


async def set_period(page: Any, code: str) -> None:
    """Set the data set's period as a user would (type, Enter) and wait for the reload."""
    await page.fill("#period-from", PERIOD["from"])
    await page.fill("#period-to", PERIOD["to"])
    await page.press("#period-to", "Enter")  # submits the controls: one reload
    await page.wait_for_function(
        "p => document.querySelector('#totals-caption').textContent.includes(p.from + ' 至 ' + p.to)"
        " && document.body.dataset.state === 'ready'", arg=PERIOD, timeout=15_000)
    await wait_region(page, code)


async def crumbs(page: Any) -> list[str]:
    links = await page.locator("#breadcrumbs a[data-code]").all()
    return [await a.get_attribute("data-code") for a in links]


async def check_figures(page: Any, base: str, tok: str, code: str, rows: int = 2,
                        errors: tuple[str, ...] = ()) -> dict[str, Any]:
    """The cards and a few children rows equal the API's rollup of ``code``; returns that rollup."""
    api = await api_rollup(base, tok, code, errors)
    assert await page_totals(page) == summed(api["totals"]), code
    assert await page.locator("#children-table tr[data-code]").count() == len(api["byChild"])
    for child in api["byChild"][:rows]:
        code_ = child["region"]["code"]
        assert await page_row(page, code_) == summed(child["totals"]), child["region"]
    title = await page.text_content("#region-title")
    assert api["region"]["name"] in title and f"({code})" in title
    return api


async def drill(page: Any, code: str) -> None:
    # Click the row's figures, not its link: the row itself is the drill target.
    row = page.locator(f"#children-table tr[data-code='{code}']")
    await row.locator("td[data-field=contributionTotal]").click()
    await wait_region(page, code)


async def shot(page: Any, tmp: Path, name: str) -> Path:
    """A 1400 px wide full-page PNG in the test's tmp dir (and the README's, when asked)."""
    await page.evaluate("() => document.activeElement && document.activeElement.blur()")
    await page.mouse.move(0, 0)  # no hover highlight or chart tooltip in the picture
    await page.wait_for_timeout(400)  # chart animations (300 ms) settle
    out = tmp / f"{name}.png"
    await page.screenshot(path=str(out), full_page=True, animations="disabled")
    assert out.stat().st_size > 10_000
    if name in README_SHOTS and os.environ.get("TIERFED_SCREENSHOTS") == "1":
        DOC_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, DOC_SHOTS / f"{name}.png")
    return out


class PageWatch:
    """Collects script errors, console errors and any request leaving the node."""

    def __init__(self, page: Any, base: str) -> None:
        self.errors: list[str] = []
        self.foreign: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text}"))
        page.on("request",
                lambda r: r.url.startswith((base + "/", "data:")) or self.foreign.append(r.url))

    def check(self) -> None:
        assert not self.errors, self.errors
        assert not self.foreign, f"requests outside the node: {self.foreign}"


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip("no chromium: install Debian's chromium to run the browser test")
    pw_api = pytest.importorskip("playwright.async_api",
                                 reason="no playwright: pip install -e '.[test]'")
    async with pw_api.async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            await b.close()


async def open_page(browser: Any, base: str, tok: str) -> tuple[Any, Any, PageWatch]:
    ctx = await browser.new_context(viewport={"width": WIDTH, "height": 1000}, locale="zh-CN",
                                    timezone_id="Asia/Shanghai", device_scale_factor=1)
    page = await ctx.new_page()
    page.set_default_timeout(15_000)
    watch = PageWatch(page, base)
    await page.goto(f"{base}/dashboard#token={tok}")
    return ctx, page, watch


def masked(idn: str) -> str:
    return idn[:6] + "*" * 8 + idn[-4:]


def a_contributor(directory: Path, prefix: str = "") -> str:
    """The ID number of someone with contribution records, in a region starting with ``prefix``."""
    with (directory / "contributions.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["region_code"].startswith(prefix):
                return row["id_number"]
    raise AssertionError(f"no contributor under {prefix!r} in {directory}")


async def lookup_person(page: Any, base: str, tok: str, idn: str, tmp: Path) -> dict[str, Any]:
    """Look ``idn`` up on the page (VIEWER token): found, ID masked, the API's statement."""
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.post(f"{base}/graphql", headers={"Authorization": f"Bearer {tok}"},
                         json={"query": PERSON_QUERY, "variables": {"id": idn, "year": 2025}})
    person = r.json()["data"]["person"]
    assert person is not None and person["idNumber"] == masked(idn)
    await page.fill("#person-id", idn)
    await page.fill("#person-year", "2025")
    await page.locator("#person-form button[type=submit]").click()
    await page.wait_for_selector("#person-result[data-state=ready]")
    await page.wait_for_selector("body[data-state=ready]")
    result = page.locator("#person-result")
    assert (await result.locator("dd[data-field=idNumber]").inner_text()).strip() == masked(idn)
    assert (await result.locator("dd[data-field=name]").inner_text()).strip() == person["name"]
    assert idn not in await result.inner_text()
    schemes = person["statement"]["schemes"]
    assert schemes
    assert await page.locator("#person-statement tbody tr[data-scheme]").count() == len(schemes)
    for s in schemes:
        tr = page.locator(f"#person-statement tbody tr[data-scheme={s['scheme']}]")
        assert plain(await tr.locator("td[data-field=months]").text_content()) == str(s["months"])
        for f in ("contributionEmployer", "contributionIndividual", "individualAccount",
                  "benefitsPaid"):
            shown = await tr.locator(f"td[data-field={f}]").text_content()
            assert Decimal(plain(shown)) == Decimal(s[f]), (s["scheme"], f)
    await page.locator("#person-panel").screenshot(path=str(tmp / f"person-{idn[:6]}.png"))
    return person  # type: ignore[no-any-return]


# ---------------------------------------------------------------- single node


async def test_dashboard_single_node(browser: Any, loaded_db: str, dataset: Path,
                                     tmp_path: Path) -> None:
    """One national node: figures equal the API's from the nation down to a county and back."""
    node = await start_node(node_config(), loaded_db)
    base = f"http://127.0.0.1:{node.port}"
    tok = token("000000", ("VIEWER",))
    ctx, page, watch = await open_page(browser, base, tok)
    try:
        await wait_region(page, "000000")
        # The token left the URL for sessionStorage; the page shows who is signed in.
        assert "token" not in page.url
        assert await page.evaluate("() => sessionStorage.getItem('tierfed.token')") == tok
        assert "tester" in (await page.text_content("#token-summary") or "")
        await set_period(page, "000000")

        # Nation: every card and the first children rows equal the API's rollup.
        nation = await check_figures(page, base, tok, "000000", rows=31)
        assert len(nation["byChild"]) == 31
        assert await crumbs(page) == []
        assert await page.locator("#incomplete-banner").is_hidden()
        assert await page.locator("#errors").is_hidden()
        assert await page.locator("#chart-children canvas").count() >= 1
        assert await page.locator("#chart-months canvas").count() >= 1
        await shot(page, tmp_path, "national")

        # Province: the most populous one, by clicking its row.
        prov = max(nation["byChild"], key=lambda c: summed(c["totals"])["contributorMonths"])
        pcode = prov["region"]["code"]
        await drill(page, pcode)
        pr = await check_figures(page, base, tok, pcode)
        assert await page_totals(page) == summed(prov["totals"])  # the parent's row, too
        assert await crumbs(page) == ["000000"]
        assert (await page.locator("#pool-panel .pool").count()) == 5
        await shot(page, tmp_path, "province")

        # City: the province's city with most records.
        cities = [c for c in pr["byChild"] if c["region"]["tier"] == "CITY"]
        city = max(cities, key=lambda c: summed(c["totals"])["contributorMonths"])
        ccode = city["region"]["code"]
        await drill(page, ccode)
        ct = await check_figures(page, base, tok, ccode)
        assert await crumbs(page) == ["000000", pcode]

        # County: the bottom, with nothing below it.
        county = max(ct["byChild"], key=lambda c: summed(c["totals"])["contributorMonths"])
        kcode = county["region"]["code"]
        await drill(page, kcode)
        await check_figures(page, base, tok, kcode)
        assert await crumbs(page) == ["000000", pcode, ccode]
        assert await page.locator("#children-table tr[data-code]").count() == 0
        assert await page.locator("#no-children").is_visible()
        assert "县级" in (await page.text_content("#region-title") or "")
        # A person insured here, looked up with a VIEWER token: masked, with the year's statement.
        await lookup_person(page, base, tok, a_contributor(dataset, kcode), tmp_path)
        await shot(page, tmp_path, "county")

        # Back up by the breadcrumbs, then the browser's back button.
        await page.locator(f"#breadcrumbs a[data-code='{pcode}']").click()
        await wait_region(page, pcode)
        assert await page_totals(page) == summed(prov["totals"])
        await page.locator("#breadcrumbs a[data-code='000000']").click()
        await wait_region(page, "000000")
        assert await page_totals(page) == summed(nation["totals"])
        await page.go_back()
        await wait_region(page, pcode)

        watch.check()
    finally:
        await ctx.close()
        await node.stop()


# ---------------------------------------------------------------- federation


async def test_dashboard_federated(browser: Any, new_db: Any, tree: Tree, tmp_path: Path) -> None:
    """Central node + one province node: drilling into the child's province is seamless;
    with the child stopped the page names the missing province."""
    prov, pname = "440000", "广东省"
    child_port = free_port()
    child_cfg = node_config(prov, "guangdong")
    child_url = f"http://127.0.0.1:{child_port}/graphql"
    central_cfg = node_config("000000", "central", children=[
        {"region": prov, "name": "guangdong", "url": child_url, "timeout_s": 5}])
    router = Node(central_cfg, tree)
    data = tmp_path / "data"
    opts = Options(persons=1500, first=date(2025, 1, 1), last=date(2025, 6, 1), seed=11)

    def holder(region: str) -> str:
        ch = router.child_for(region)
        return ch.name if ch else "central"

    counts = generate(tree, data, opts, split=holder)
    assert counts["guangdong"]["contributions"] > 0 and counts["central"]["contributions"] > 0
    central_db, child_db = await new_db(), await new_db()
    await load_dataset(child_db, child_cfg, data / "guangdong")
    await load_dataset(central_db, central_cfg, data / "central")

    child = await start_node(child_cfg, child_db, port=child_port)
    central = await start_node(central_cfg, central_db)
    child_running = True
    base = f"http://127.0.0.1:{central.port}"
    child_base = f"http://127.0.0.1:{child_port}"
    tok = token("000000", ("VIEWER",))
    ctx, page, watch = await open_page(browser, base, tok)
    try:
        await wait_region(page, "000000")
        await set_period(page, "000000")
        nation = await check_figures(page, base, tok, "000000", rows=31)
        assert nation["complete"] is True
        assert await page.locator("#incomplete-banner").is_hidden()
        # The child's row on the central page equals what the child itself answers.
        child_own = await api_rollup(child_base, tok, prov)
        assert await page_row(page, prov) == summed(child_own["totals"])

        # Into the child-held province and one of its cities, on the central node's page.
        await drill(page, prov)
        pr = await check_figures(page, base, tok, prov)
        assert await page_totals(page) == summed(child_own["totals"])
        assert pr["complete"] is True and await page.locator("#incomplete-banner").is_hidden()
        assert await page.locator("#errors").is_hidden(), await page.locator("#errors").inner_text()
        assert await crumbs(page) == ["000000"]
        assert pname in (await page.text_content("#region-title") or "")
        city = max((c for c in pr["byChild"] if c["region"]["tier"] == "CITY"),
                   key=lambda c: summed(c["totals"])["contributorMonths"])
        await drill(page, city["region"]["code"])
        await check_figures(page, base, tok, city["region"]["code"])
        assert await crumbs(page) == ["000000", prov]
        assert await page.locator("#errors").is_hidden(), await page.locator("#errors").inner_text()
        # The pools of a child-held region are forwarded to the child and shown like local ones.
        assert await page.locator("#pool-panel td[data-field=level][data-level]").count() == 5, \
            await page.locator("#pool-panel").inner_text()
        # A person whose records the province node holds, looked up on the central node.
        await lookup_person(page, base, tok, a_contributor(data / "guangdong"), tmp_path)
        await shot(page, tmp_path, "federated-city")

        # Back to the nation, then the province node goes away.
        await page.locator("#breadcrumbs a[data-code='000000']").click()
        await wait_region(page, "000000")
        await child.stop()
        child_running = False
        await page.locator("#apply").click()
        await page.wait_for_selector("#incomplete-banner:not([hidden])")
        await wait_region(page, "000000")
        banner = page.locator("#incomplete-banner")
        assert await banner.is_visible()
        text = await banner.inner_text()
        assert pname in text and prov in text, text
        assert await banner.locator(f"li[data-code='{prov}']").count() == 1
        # Its row says so, with unknown figures rather than zeros.
        row = page.locator(f"#children-table tr[data-code='{prov}']")
        assert "incomplete" in (await row.get_attribute("class") or "")
        status = await row.locator("td[data-field=complete]").text_content()
        assert (status or "").strip() == "无法访问"
        for f in FIELDS:
            assert (await row.locator(f"td[data-field={f}]").text_content() or "").strip() == "—"
        # Told once, plainly: no technical error box besides the banner.
        assert await page.locator("#errors").is_hidden(), await page.locator("#errors").inner_text()
        # The totals still equal the (now incomplete) API rollup: the rest of the country.
        degraded = await check_figures(page, base, tok, "000000", rows=0,
                                       errors=("TIER_UNAVAILABLE",))
        assert degraded["complete"] is False and [m["code"] for m in degraded["missing"]] == [prov]
        await shot(page, tmp_path, "federated-incomplete")

        # Into the unreachable province itself: named plainly, figures unknown rather than zero.
        await page.locator(f"#children-table tr[data-code='{prov}'] a[data-code]").click()
        await wait_region(page, prov)
        assert await page.locator(f"#incomplete-banner li[data-code='{prov}']").count() == 1
        total = await page.text_content("[data-testid=total-contributionTotal]")
        assert (total or "").strip() == "—"
        # Its cities, read through the same node, are unknown too (they had shown zeros).
        cells = page.locator(", ".join(f"#children-table td[data-field={f}]" for f in FIELDS))
        assert await cells.count() > 0
        assert {(t or "").strip() for t in await cells.all_text_contents()} == {"—"}
        assert await page.locator("#errors").is_hidden(), await page.locator("#errors").inner_text()
        watch.check()
    finally:
        await ctx.close()
        await central.stop()
        if child_running:
            await child.stop()
