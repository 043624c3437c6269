"""GraphiQL offline: a real node on a loopback port, GraphiQL in headless Chromium with every
request to another host blocked (and recorded). The page loads from the node alone, reads
the schema, and runs a query with the token a user would put in its headers tab."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import node_config, token
from tests.nodes import start_node
from tests.test_dashboard_browser import browser  # noqa: F401 - the shared Chromium fixture

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


@pytest.mark.parametrize("path", ["/graphiql", "/graphql"])
async def test_graphiql_runs_offline(browser: Any, fresh_db: str, path: str) -> None:  # noqa: F811
    node = await start_node(node_config(), fresh_db)
    base = f"http://127.0.0.1:{node.port}"
    tok = token()
    outside: list[str] = []
    errors: list[str] = []
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        async def route(r: Any) -> None:
            url = r.request.url
            if not url.startswith(base + "/"):
                outside.append(url)
                await r.abort()
            elif url.startswith(base + "/graphql") and r.request.method == "POST":
                # What a user does by pasting the token into the headers tab.
                await r.continue_(headers={**r.request.headers, "authorization": f"Bearer {tok}"})
            else:
                await r.continue_()

        await ctx.route("**/*", route)
        page = await ctx.new_page()
        page.set_default_timeout(20_000)
        page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
        page.on("console", lambda m: m.type == "error" and errors.append(f"console: {m.text}"))
        resp = await page.goto(base + path, wait_until="load")
        assert resp is not None and resp.status == 200
        assert "script-src 'self'" in (resp.headers.get("content-security-policy") or "")
        await page.wait_for_selector(".graphiql-container .graphiql-editor")
        # GraphiQL asked for the schema (introspection) and got it: the docs list the root type.
        await page.click("button[aria-label='Show Documentation Explorer']")
        await page.wait_for_selector(".graphiql-doc-explorer >> text=Query")
        async with page.expect_response(lambda r: r.url == base + "/graphql" and r.request.method == "POST") as run:
            await page.click(".graphiql-execute-button")
        answer = await (await run.value).json()
        expected = await _nation(base, tok)
        assert answer == expected
        name = expected["data"]["nation"]["name"]
        await page.wait_for_selector(f".result-window >> text={name}")
        # Nothing of the run outlives the tab: GraphiQL's history holds each run's headers.
        kept = await page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage)")
        assert "Authorization" not in kept and "nation" not in kept, kept[:500]
        assert not outside, f"requests to other hosts: {outside}"
        assert not errors, errors
    finally:
        await ctx.close()
        await node.stop()


async def _nation(base: str, tok: str) -> dict[str, Any]:
    q = "# tierfed: put your token in the Headers tab below as\n" \
        "#   {\"Authorization\": \"Bearer eyJ...\"}\n# then run this query (Ctrl-Enter).\n" \
        "{\n  nation { code name children { code name } }\n}\n"
    async with httpx.AsyncClient() as c:
        r = await c.post(base + "/graphql", json={"query": q}, headers={"Authorization": f"Bearer {tok}"})
        return r.json()  # type: ignore[no-any-return]


async def test_graphiql_assets_are_served_from_the_package_and_can_be_switched_off(fresh_db: str) -> None:
    for enabled in (True, False):
        node = await start_node(node_config(http={"graphiql": enabled}), fresh_db)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.port}") as c:
                page = await c.get("/graphiql")
                js = await c.get("/graphiql/static/graphiql.min.js")
                lic = await c.get("/graphiql/static/LICENSE-graphiql")
                other = await c.get("/graphiql/static/__init__.py")
        finally:
            await node.stop()
        assert other.status_code == 404
        if enabled:
            assert page.status_code == 200 and "/graphiql/static/start.js" in page.text
            assert "http" not in page.text.split("<body>")[0].replace("http-equiv", "")
            assert js.status_code == 200 and len(js.content) > 1_000_000
            assert lic.status_code == 200 and "MIT" in lic.text
        else:
            assert page.status_code == 404 and js.status_code == 404
