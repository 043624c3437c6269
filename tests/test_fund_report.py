"""The public fund report: the fundReport query (each own pool's account equal to the raw
records and flows, a region pooled higher up naming its pool), the same figures as CSV, bad
requests refused, and the page printed to an A4 PDF by headless Chromium whose text, read
back with pdftotext, carries exactly the API's figures."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from tierfed.tiers.tree import Tree

from tests.conftest import Client, load_dataset, node_client, node_config, token
from tests.nodes import start_node
from tests.test_fund_accounts import FLOWS, Raw, check_account, flows_csv, m
from tierfed.importer import import_file
from tierfed.reports import QUERY, lines

OP = token("000000", ("VIEWER",))
CHROMIUM = os.environ.get("TIERFED_CHROMIUM", "/usr/bin/chromium")
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
async def world(new_db: Any, dataset: Path, tree: Tree, tmp_path_factory: pytest.TempPathFactory
                ) -> AsyncIterator[tuple[Client, Raw, str]]:
    url = await new_db()
    await load_dataset(url, node_config(), dataset)
    d = tmp_path_factory.mktemp("flows")
    async with node_client(url) as c:
        rt = c.runtime
        await import_file(rt.pool, rt.node, "fund_flows", flows_csv(d / "flows.csv", FLOWS), progress=False)
        con = await asyncpg.connect(url)
        try:
            yield c, Raw(con, tree, list(FLOWS)), url
        finally:
            await con.close()


async def report(c: Client, region: str, year: int = 2025, half: int | None = 1, tok: str = OP) -> dict[str, Any]:
    return (await c.data(QUERY, {"region": region, "year": year, "half": half}, tok))["fundReport"]  # type: ignore


async def test_own_pools_are_accounted_and_equal_the_raw_records(world: tuple[Client, Raw, str]) -> None:
    c, raw, _ = world
    r = await report(c, "440000")
    assert r["title"] == "广东省2025年上半年社会保险基金报告"
    assert r["period"] == {"from": "2025-01", "to": "2025-06"} and r["complete"]
    assert [s["scheme"] for s in r["schemes"]] == ["PENSION", "MEDICAL", "WORK_INJURY", "UNEMPLOYMENT", "MATERNITY"]
    pension = r["schemes"][0]
    assert pension["label"] == "基本养老保险" and pension["ownPool"] and pension["note"] == "本地区统筹"
    want = await check_account(c, raw, pension["pool"]["id"], m(1), m(6))
    strip = {k: ([{"category": f["category"], "amount": f["amount"]} for f in v] if k in ("income", "expenditure")
                 else v) for k, v in pension["account"].items()}
    assert strip == {k: want[k] for k in strip}
    assert [f["label"] for f in pension["account"]["income"]][:3] == ["保险费收入（统筹部分）", "财政补贴收入", "利息收入"]
    medical = r["schemes"][1]
    assert (medical["pool"], medical["account"]) == (None, None) and medical["note"].startswith("本地区由下级各统筹区分别统筹")
    interest = {f["category"]: Decimal(f["amount"]) for f in pension["account"]["income"]}
    assert Decimal(pension["returns"]) == interest["INTEREST"] + interest["INVESTMENT_RETURN"] > 0
    # insured and beneficiaries: the rollup's, for the region's whole subtree
    roll = await c.data('{ rollup(region: "440000", period: {from: "2025-01", to: "2025-06"}) '
                        "{ totals { scheme insured beneficiaries } } }", tok=OP)
    assert [(s["insured"], s["beneficiaries"]) for s in r["schemes"]] == \
        [(t["insured"], t["beneficiaries"]) for t in roll["rollup"]["totals"]]
    assert sum(s["insured"] for s in r["schemes"]) > 0


async def test_a_region_pooled_higher_up_names_its_pool(world: tuple[Client, Raw, str]) -> None:
    c, raw, _ = world
    r = await report(c, "440300", half=None)
    assert r["title"] == "深圳市2025年社会保险基金报告" and r["period"]["to"] == "2025-12"
    pension, medical = r["schemes"][:2]
    assert not pension["ownPool"] and pension["account"] is None and pension["returns"] is None
    assert pension["pool"]["region"]["code"] == "440000"
    assert "广东省（440000）统筹" in pension["note"] and pension["pool"]["id"] in pension["note"]
    assert medical["ownPool"] and medical["pool"]["id"] == "440300-MEDICAL-202401"
    await check_account(c, raw, "440300-MEDICAL-202401", m(1), m(12))
    # A token of Shenzhen's scope: the province pool is named, not given (its balance is the province's).
    scoped = await report(c, "440300", half=None, tok=token("440300", ("VIEWER",)))
    assert scoped["schemes"][0]["pool"] is None and "广东省（440000）统筹" in scoped["schemes"][0]["note"]
    assert scoped["schemes"][1]["pool"]["id"] == "440300-MEDICAL-202401"
    assert scoped["schemes"][1]["account"] == medical["account"]

async def test_a_period_not_yet_ended_is_named_as_far_as_it_goes(world: tuple[Client, Raw, str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The half-year asked for in its fourth month: the title says so (it had the whole
    half-year's title over months still to come). The calendar is set, not read, so that the
    test holds in every month of the year."""
    from datetime import date

    from tierfed import codes

    c, _, _ = world
    monkeypatch.setattr(codes, "current_month", lambda: date(2025, 4, 1))
    ongoing = await c.data('{ fundReport(region: "440300", year: 2025, half: 1) { title period { to } } }',
                           tok=token("000000", ("VIEWER",)))
    assert ongoing["fundReport"] == {"title": "深圳市2025年上半年社会保险基金报告（截至4月）", "period": {"to": "2025-04"}}


async def test_csv_carries_the_api_figures(world: tuple[Client, Raw, str]) -> None:
    c, _, _ = world
    r = await report(c, "440000")
    got = await c.http.get("/reports/fund", params={"region": "440000", "year": "2025", "half": "1", "format": "csv"},
                           headers={"Authorization": f"Bearer {OP}"})
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    assert got.text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(got.text.lstrip("\ufeff"))))
    want = [(s["scheme"], item, value.replace(",", "")) for s in r["schemes"] for item, _, value, _ in lines(s)]
    assert [(x["scheme"], x["item"], x["value"]) for x in rows] == want
    by = {(x["scheme"], x["item"]): x for x in rows}
    assert by[("PENSION", "closing_balance")]["value"] == r["schemes"][0]["account"]["closingBalance"]
    assert by[("PENSION", "FISCAL_SUBSIDY")]["item_label"] == "财政补贴收入"


@pytest.mark.parametrize(("params", "status", "says"), [
    ({"region": "440000"}, 400, "year is missing"),
    ({"region": "440000", "year": "2025", "half": "3"}, 400, "half must be 1"),
    ({"region": "440000", "year": "20x5"}, 400, "year must be a whole number"),
    ({"region": "440000", "year": "²"}, 400, "year must be a whole number"),  # a Unicode digit: it had been a 500
    ({"region": "440000", "year": "2025", "format": "pdf"}, 400, "format must be html or csv"),
    ({"region": "44000", "year": "2025"}, 400, "region"),
    ({"region": "440000", "year": "2025", "colour": "red"}, 400, "unknown parameter 'colour'"),
    ({"region": "510000", "year": "2025"}, 403, "outside your token's scope"),
])
async def test_bad_requests_say_what_to_fix(world: tuple[Client, Raw, str], params: dict[str, str], status: int,
                                            says: str) -> None:
    c, _, _ = world
    got = await c.http.get("/reports/fund", params=params,
                           headers={"Authorization": f"Bearer {token('440000', ('VIEWER',))}"})
    assert got.status_code == status, got.text
    assert says in got.json()["errors"][0]["message"]


async def test_without_a_token_nothing_is_shown(world: tuple[Client, Raw, str]) -> None:
    c, _, _ = world
    got = await c.http.get("/reports/fund", params={"region": "440000", "year": "2025"})
    assert got.status_code == 401 and got.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def pdf_lines(text: str) -> list[str]:
    return [re.sub(r"\s+", " ", x).strip() for x in text.splitlines() if x.strip()]


@pytest.mark.browser
@pytest.mark.timeout(180)
async def test_the_page_printed_to_pdf_reads_back_the_api_figures(world: tuple[Client, Raw, str], tmp_path: Path) -> None:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)) or not shutil.which("pdftotext"):
        pytest.skip("no chromium or pdftotext: install Debian's chromium and poppler-utils")
    pw_api = pytest.importorskip("playwright.async_api", reason="no playwright: pip install -e '.[test]'")
    c, _, url = world
    r = await report(c, "440000")
    node = await start_node(node_config(), url)
    try:
        async with pw_api.async_playwright() as pw:
            b = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
            try:
                page = await b.new_page(extra_http_headers={"Authorization": f"Bearer {OP}"})
                resp = await page.goto(f"http://127.0.0.1:{node.port}/reports/fund?region=440000&year=2025&half=1")
                assert resp is not None and resp.status == 200
                pdf = tmp_path / "report.pdf"
                await page.pdf(path=str(pdf), format="A4", print_background=True)
                if os.environ.get("TIERFED_SCREENSHOTS") == "1":
                    await page.set_viewport_size({"width": 900, "height": 1200})
                    await page.screenshot(path=str(REPO / "docs" / "screenshots" / "fund-report.png"), full_page=False)
            finally:
                await b.close()
    finally:
        await node.stop()
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"Page size:.*\(A4\)", info), info
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    got = pdf_lines(text)
    assert r["title"] in got
    # Every figure of every scheme, in the report's order, each on its own line beside its label.
    want = [f"{label} {value}" for s in r["schemes"] for _, label, value, _ in lines(s)]
    it = iter(got)
    missing = [w for w in want if not any(w == line for line in it)]
    assert not missing, (missing[:5], got[:60])
    # and the figures are the API's: the closing balance of the pension pool, as written in the PDF
    closing = next(x for x in got if x.startswith("期末滚存结余"))
    assert Decimal(closing.split()[-1].replace(",", "")) == Decimal(r["schemes"][0]["account"]["closingBalance"])


async def test_a_report_of_a_region_whose_node_is_down_checks_its_year(fresh_db: str) -> None:
    """A child node holding the region does not answer: a year out of range is still bad input
    (the placeholder report had been built for any year, 1066 included, and a year 0 was INTERNAL);
    a good one is the incomplete report naming the region."""
    cfg = node_config(children=[{"region": "440300", "url": "http://127.0.0.1:9/graphql", "name": "shenzhen",
                                 "timeout_s": 1}])
    async with node_client(fresh_db, cfg) as c:
        q = 'query($y: Int!) { fundReport(region: "440300", year: $y) { title complete missing { code } } }'
        for year in (1066, 0):
            body = await c.gql(q, {"y": year}, OP)
            assert body["data"] is None or body["data"]["fundReport"] is None, body
            assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
            assert "1990 to 2100" in body["errors"][0]["message"]
        body = await c.gql(q, {"y": 2025}, OP)
        assert body["data"]["fundReport"]["complete"] is False
        assert body["data"]["fundReport"]["missing"] == [{"code": "440300"}]
