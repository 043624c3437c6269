"""The dashboard's live figures (dashboard/live.js) in a real headless Chromium: the central
node's page updates in place after an import at a grandchild node, and shows when.

Three real tiers over HTTP (central, Guangdong, Shenzhen) with their links up; the import is
reported done the way ``tierfed import`` reports it. Nothing waits for time to pass: the test
waits for the page to show the new figures (bounded by a timeout).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.test_dashboard_browser import (
    PageWatch,
    browser,  # noqa: F401 - the module's Chromium fixture
    check_figures,
    open_page,
    page_row,
    page_totals,
    set_period,
    wait_region,
)
from tests.test_fresh_answers import VIEWER
from tests.test_pushed_versions import links_up, reported_import, three_tiers

pytestmark = [pytest.mark.browser, pytest.mark.federation, pytest.mark.timeout(120)]


async def until(check: Any, what: str, timeout: float = 15.0) -> None:
    """Wait for a condition of the server's state (checked every 20 ms), failing after ``timeout``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not check():
        assert loop.time() < end, f"still not {what} after {timeout:g} s"
        await asyncio.sleep(0.02)


async def test_the_dashboard_updates_in_place_after_an_import_at_a_grandchild(
        browser: Any, new_db: Any, tmp_path: Path) -> None:  # noqa: F811
    nodes = await three_tiers(new_db, lease=120)
    try:
        await links_up(nodes)
        central, shenzhen = nodes["central"], nodes["shenzhen"]
        base = f"http://127.0.0.1:{central.port}"
        ctx, page, watch = await open_page(browser, base, VIEWER)
        try:
            await wait_region(page, "000000")
            await set_period(page, "000000")
            before = await page_totals(page)
            assert before["contributorMonths"] == 0
            # The page watches its operation: one subscription per root field (rollup, region).
            live = central.runtime.live
            await until(lambda: live is not None and live.subscribers == 2, "subscribed")
            await page.wait_for_selector("#live-status[data-state=live]")
            assert await page.get_attribute("#live-status", "data-updated-at") is None
            await page.evaluate("() => { window.__sameDocument = true; }")

            await reported_import(shenzhen, tmp_path, 60, "440304", [1, 2, 3])
            await page.wait_for_function(
                "() => document.querySelector('[data-testid=total-contributorMonths]').textContent.trim() === '3'",
                timeout=15_000)
            # In place: the same document, no reload, and the time of the update is shown.
            assert await page.evaluate("() => window.__sameDocument === true")
            await page.wait_for_selector("#live-status[data-updated-at]")
            stamp = await page.get_attribute("#live-status", "data-updated-at")
            assert stamp is not None and abs((datetime.fromisoformat(stamp.replace("Z", "+00:00"))
                                              - datetime.now().astimezone()).total_seconds()) < 60
            assert "最近更新于" in (await page.text_content("#live-status") or "")
            # Every figure on the page is the API's, the province's row included.
            api = await check_figures(page, base, VIEWER, "000000", rows=0)
            guangdong = next(c for c in api["byChild"] if c["region"]["code"] == "440000")
            assert (await page_row(page, "440000"))["contributorMonths"] == 3
            assert sum(t["contributorMonths"] for t in guangdong["totals"]) == 3
            # Another region: the old streams stop, the new page watches its own.
            await page.evaluate("() => { location.hash = '#region=440000'; }")
            await wait_region(page, "440000")
            await until(lambda: live.subscribers == 2 and all(
                w.variables.get("region") == "440000" for w in live.watches.values()), "watching Guangdong")
            # The token dropped (更换令牌): its live answers stop, and nothing of its reads stays.
            await page.evaluate("() => { document.querySelector('#person-result').textContent = 'P'; }")
            await page.locator("#token-clear").click()
            await until(lambda: live.subscribers == 0, "unsubscribed once the token was dropped")
            assert (await page.text_content("#person-result") or "") == ""
            watch.check()
        finally:
            await ctx.close()
        await until(lambda: central.runtime.live.subscribers == 0, "unsubscribed after the page closed")
    finally:
        for n in nodes.values():
            await n.stop()


async def test_a_live_answer_without_data_keeps_the_figures_and_says_so(browser: Any, fresh_db: str) -> None:  # noqa: F811
    """A live answer whose data is null (the node's database down, a deadline) is an error to
    show, not figures: the page keeps what it shows and says it is not current (the render had
    thrown on the null rollup and the page had gone on saying it was live)."""
    from tests.conftest import node_config
    from tests.nodes import start_node

    node = await start_node(node_config(), fresh_db)
    base = f"http://127.0.0.1:{node.port}"
    down = ('{"errors": [{"message": "数据库暂时不可用，请稍后重试", "extensions": {"code": '
            '"DATABASE_UNAVAILABLE", "retryAfter": 5}}], "data": null}')

    async def stream(route: Any) -> None:
        if "text/event-stream" in (route.request.headers.get("accept") or ""):
            await route.fulfill(status=200, headers={"Content-Type": "text/event-stream"},
                                body=f"event: next\nid: 1\ndata: {down}\n\n")
        else:
            await route.continue_()

    try:
        ctx = await browser.new_context(viewport={"width": 1280, "height": 1000}, locale="zh-CN")
        try:
            await ctx.route("**/graphql", stream)
            page = await ctx.new_page()
            page.set_default_timeout(15_000)
            watch = PageWatch(page, base)
            await page.goto(f"{base}/dashboard#token={VIEWER}")
            await wait_region(page, "000000")
            before = await page_totals(page)
            # (the stream served here then ends, and the page goes on to reconnect, which its text
            # then says: the figures stay marked as not current until a live answer is shown)
            await page.wait_for_selector("#live-status[data-stale]", state="attached")
            assert "数据库暂时不可用" in (await page.get_attribute("#live-status", "data-stale") or "")
            assert await page_totals(page) == before
            watch.check()
        finally:
            await ctx.close()
    finally:
        await node.stop()
