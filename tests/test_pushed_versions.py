"""Versions pushed up the tree (tiers.links): with its links up a parent answers from memory,
asking no child anything; a commit is reported done once every ancestor knows it, or once
the lease its node granted ran out, so no answer from memory is ever stale.

Three real tiers over HTTP: central (000000), Guangdong (440000), Shenzhen (440300). The
nodes' own periodic checks are stopped (``links.stop()``): each check runs when the test
calls it, so no test depends on when a background round happens to run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import node_config
from tests.nodes import RunningNode, free_port, start_node
from tests.test_fresh_answers import ROLLUP, VIEWER, import_contributions, pension, recorded, start_recording
from tierfed.imports.federation import after_import
from tierfed.imports.report import Report

pytestmark = pytest.mark.federation

NODES = {"central": "000000", "guangdong": "440000", "shenzhen": "440300"}
PARENT = {"guangdong": "central", "shenzhen": "guangdong"}


def config(name: str, ports: dict[str, int], lease: float, parent_port: int | None = None) -> Any:
    def url(port: int) -> str:
        return f"http://127.0.0.1:{port}/graphql"

    children = [{"region": NODES[c], "url": url(ports[c]), "name": c, "timeout_s": 3}
                for c, p in PARENT.items() if p == name]
    extra: dict[str, Any] = {}
    if name in PARENT:
        extra["parent"] = {"url": url(parent_port or ports[PARENT[name]]), "timeout_s": 2}
    return dataclasses.replace(node_config(NODES[name], name, children, **extra), link_lease_s=lease)


async def three_tiers(new_db: Any, lease: float, shenzhen_parent_port: int | None = None) -> dict[str, RunningNode]:
    ports = {n: free_port() for n in NODES}
    nodes: dict[str, RunningNode] = {}
    try:
        for name in ("shenzhen", "guangdong", "central"):
            cfg = config(name, ports, lease, shenzhen_parent_port if name == "shenzhen" else None)
            nodes[name] = await start_node(cfg, await new_db(), ports[name])
            await nodes[name].runtime.links.stop()  # checks run when the test says
    except BaseException:
        for n in nodes.values():
            await n.stop()
        raise
    return nodes


async def links_up(nodes: dict[str, RunningNode]) -> None:
    """Check bottom-up: Guangdong's link to Shenzhen first (a lease covers the whole subtree below);
    a person feed a check found behind its head is read before the next check up."""
    for n, child in (("guangdong", "shenzhen"), ("central", "guangdong")):
        assert await nodes[n].runtime.links.check_children() == {child: True}
        await nodes[n].runtime.index.caught_up()


async def reported_import(node: RunningNode, d: Path, person: int, region: str, months: list[int]) -> list[str]:
    """An import as `tierfed import` reports it: committed, then done once the federation knows (after_import)."""
    await import_contributions(node.runtime, d, person, region, months)
    return await after_import(node.runtime, Report(kind="contributions", rows=0, inserted=0, unchanged=0), d / f"contributions{person}.csv")


def child_requests(nodes: dict[str, RunningNode]) -> dict[str, tuple[int, int]]:
    """(version requests, other requests) each parent sent its children so far."""
    out = {}
    for n in ("central", "guangdong"):
        c = nodes[n].runtime.clients
        out[n] = (sum(c.version_requests.values()), sum(c.requests.values()))
    return out


async def national(node: RunningNode, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as h:
        return await h.post(node.url, json={"query": ROLLUP, "variables": {"r": "000000"}},
                            headers={"Authorization": f"Bearer {VIEWER}", **headers})


async def test_links_up_a_hot_answer_asks_no_child_and_a_commit_is_in_the_very_next_answer(
        new_db: Any, tmp_path: Path) -> None:
    nodes = await three_tiers(new_db, lease=120)
    try:
        await links_up(nodes)
        central, shenzhen = nodes["central"], nodes["shenzhen"]
        months = 0
        for step, (region, ms) in enumerate([("440304", [1, 2]), ("440305", [3]), ("440304", [4, 5, 6])]):
            first = await national(central)
            assert pension(first.json())["contributorMonths"] == months
            before = child_requests(nodes)
            start_recording(*(r.runtime for r in nodes.values()))
            second = await national(central)
            assert second.content == first.content and second.headers["etag"] == first.headers["etag"]
            # Hot, links up: one version read at the central node, nothing asked of any child.
            assert child_requests(nodes) == before
            assert {n: recorded(r.runtime) for n, r in nodes.items()} == \
                {"central": (1, []), "guangdong": (0, []), "shenzhen": (0, [])}
            # A commit at the grandchild, reported done: the very next national answer shows it.
            assert await reported_import(shenzhen, tmp_path / str(step), 10 + step, region, ms) == []
            months += len(ms)
            after = await national(central, **{"If-None-Match": first.headers["etag"]})
            assert after.status_code == 200
            assert pension(after.json())["contributorMonths"] == months
            # Computed afresh with one request to the child (and still no version request).
            assert child_requests(nodes)["central"] == (before["central"][0], before["central"][1] + 1)
        # The push moved every ancestor's version: the links are still up, nothing to check per request.
        rows = await central.runtime.pool.fetch("select child, up_until > clock_timestamp() as up from tier_link")
        assert [(r["child"], r["up"]) for r in rows] == [("guangdong", True)]
    finally:
        for n in nodes.values():
            await n.stop()


async def test_a_push_that_fails_waits_out_the_lease_and_the_next_answer_checks_the_child(
        new_db: Any, tmp_path: Path) -> None:
    """Shenzhen cannot reach its parent (its [parent].url is a closed port), while Guangdong can
    still check it: a commit at Shenzhen is reported only after the lease it granted ran out, and
    the next national answer, no longer answered from memory, shows it."""
    lease = 1.5
    nodes = await three_tiers(new_db, lease=lease, shenzhen_parent_port=free_port())
    try:
        await links_up(nodes)
        central, shenzhen = nodes["central"], nodes["shenzhen"]
        first = await national(central)
        assert pension(first.json())["contributorMonths"] == 0
        assert (await national(central)).content == first.content
        before = child_requests(nodes)
        problems = await reported_import(shenzhen, tmp_path, 30, "440304", [1, 2, 3])
        assert len(problems) == 1 and "was not told of this commit" in problems[0]
        after = await national(central, **{"If-None-Match": first.headers["etag"]})
        assert after.status_code == 200
        assert pension(after.json())["contributorMonths"] == 3
        # The leases ran out: the central node asked Guangdong's version, Guangdong asked Shenzhen's.
        now = child_requests(nodes)
        assert now["central"][0] > before["central"][0] and now["guangdong"][0] > before["guangdong"][0]
        # A check brings the links back; Shenzhen's version is then Guangdong's to answer from.
        await links_up(nodes)
        hot = await national(central)
        assert hot.content == after.content
        again = child_requests(nodes)
        assert (await national(central)).content == after.content and child_requests(nodes) == again
    finally:
        for n in nodes.values():
            await n.stop()


async def test_a_child_that_cannot_be_checked_is_a_failed_child(new_db: Any) -> None:
    nodes = await three_tiers(new_db, lease=120)
    try:
        await links_up(nodes)
        central = nodes["central"]
        cached = await national(central)
        assert cached.status_code == 200
        await nodes.pop("shenzhen").stop()
        # Guangdong's check fails: its link to Shenzhen is down at once, and the lease it grants the
        # central node is then 0: the central node checks per request, and Shenzhen cannot be checked.
        assert await nodes["guangdong"].runtime.links.check_children() == {"shenzhen": False}
        assert await central.runtime.links.check_children() == {"guangdong": False}
        hits = central.runtime.answers.hits
        down = await national(central, **{"If-None-Match": cached.headers["etag"]})
        assert down.status_code == 200 and "etag" not in down.headers
        body = down.json()
        assert body["data"]["rollup"]["complete"] is False
        assert [m["code"] for m in body["data"]["rollup"]["missing"]] == ["440300"]
        assert central.runtime.answers.hits == hits
    finally:
        for n in nodes.values():
            await n.stop()


async def test_links_take_only_node_tokens_from_the_right_side(new_db: Any) -> None:
    nodes = await three_tiers(new_db, lease=120)
    try:
        g = nodes["guangdong"]
        base = g.url.rsplit("/", 1)[0] + "/tierfed/link"
        rt = g.runtime

        def node_tok(scope: str, to: str | None = None) -> str:
            return rt.keys.sign("node:x", scope, ["NODE"], 60, to=to)

        async with httpx.AsyncClient(timeout=10) as h:
            viewer = await h.get(base, headers={"Authorization": f"Bearer {VIEWER}"})
            assert viewer.status_code == 403 and "NODE" in viewer.json()["message"]
            below = await h.get(base, headers={"Authorization": f"Bearer {node_tok('440300')}"})
            assert below.status_code == 403
            above = await h.get(base, headers={"Authorization": f"Bearer {node_tok('000000', 'guangdong')}"})
            assert above.status_code == 200 and set(above.json()) == {"version", "validFor", "persons"}
            # a token from above signed for another node (replayed by a sibling), or for none: refused
            for to in ("sichuan", None):
                other = await h.get(base, headers={"Authorization": f"Bearer {node_tok('000000', to)}"})
                assert other.status_code == 403 and "signed for" in other.json()["message"], other.text
            stranger = await h.post(base, json={"version": 5}, headers={"Authorization": f"Bearer {node_tok('510000')}"})
            assert stranger.status_code == 403 and "not a child" in stranger.json()["message"]
            bad = await h.post(base, json={"version": "x"}, headers={"Authorization": f"Bearer {node_tok('440300')}"})
            assert bad.status_code == 400 and "whole number" in bad.json()["message"]
            v0 = await rt.pool.fetchval("select version from data_version where one")
            ok = await h.post(base, json={"version": 10**9}, headers={"Authorization": f"Bearer {node_tok('440300')}"})
            assert ok.status_code == 200 and ok.json()["ok"] is True
            assert await rt.pool.fetchval("select version from data_version where one") == v0 + 1
            # The same version again changes nothing: no answer is invalidated.
            await h.post(base, json={"version": 10**9}, headers={"Authorization": f"Bearer {node_tok('440300')}"})
            assert await rt.pool.fetchval("select version from data_version where one") == v0 + 1
            # Another one, even lower (a child restored from a backup), moves it.
            await h.post(base, json={"version": 7}, headers={"Authorization": f"Bearer {node_tok('440300')}"})
            assert await rt.pool.fetchval("select version from data_version where one") == v0 + 2
    finally:
        for n in nodes.values():
            await n.stop()
