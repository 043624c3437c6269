"""Rankings across nodes (real nodes over HTTP): central, Guangdong, Shenzhen under Guangdong,
Sichuan. Every page put together equals sorting every region's figures computed from the raw
records of all four databases; each child is asked once per page and sends at most a page;
a child that is down leaves its regions out and says so."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import asyncpg
import httpx
import pytest
from tierfed.tiers.tree import Tree

from tests.conftest import load_dataset, node_config
from tests.nodes import RunningNode, free_port, start_node
from tests.test_changes import NODES, configs, load_split, make_keys
from tests.test_ranking import OP, RANK_BY, RANKING, all_pages, check, raw_figures
from tierfed.config import Limits
from tierfed.generator import Options, generate

pytestmark = pytest.mark.federation


@dataclasses.dataclass
class Fed:
    nodes: dict[str, RunningNode]
    cons: list[asyncpg.Connection]

    async def ask(self, node: str, query: str, variables: dict[str, Any]) -> Any:
        body = await self.nodes[node].post(query, variables, OP)
        assert "errors" not in body, body["errors"]
        return body["data"]


@pytest.fixture(scope="module")
async def fed(tmp_path_factory: pytest.TempPathFactory, tree: Tree, new_db: Any) -> AsyncIterator[Fed]:
    keys = make_keys(tmp_path_factory.mktemp("keys"))
    dbs = await load_split(tree, new_db, tmp_path_factory.mktemp("split"),
                           configs(keys, {n: i + 1 for i, n in enumerate(NODES)}))
    ports = {n: free_port() for n in NODES}
    big = Limits(max_aliases=5000, max_root_fields=5000, max_cost=100_000_000, max_body_bytes=10_000_000)
    # The answer cache off: every page is computed, so the children's requests can be counted.
    cfgs = {n: dataclasses.replace(c, limits=big, cache_max_bytes=0) for n, c in configs(keys, ports).items()}
    nodes = {n: await start_node(cfgs[n], dbs[n], ports[n]) for n in ("shenzhen", "guangdong", "sichuan", "central")}
    cons = [await asyncpg.connect(dbs[n]) for n in NODES]
    try:
        yield Fed(nodes, cons)
    finally:
        for con in cons:
            await con.close()
        for n in ("central", "guangdong", "sichuan", "shenzhen"):
            if not nodes[n].task.done():
                await nodes[n].stop()


@pytest.mark.parametrize("by", RANK_BY)
async def test_national_ranking_of_counties_across_nodes_equals_the_raw_records(fed: Fed, tree: Tree, by: str) -> None:
    figures = await raw_figures(fed.cons, tree, "000000", "COUNTY", "PENSION", date(2025, 1, 1), date(2025, 6, 1))
    for descending in (True, False):
        v = {"r": "000000", "tier": "COUNTY", "from": "2025-01", "to": "2025-06", "scheme": "PENSION", "by": by,
             "desc": descending}
        entries, _, count = await all_pages(lambda q, x: fed.ask("central", q, x), v, 300)
        check(entries, count, figures, by, descending, "PENSION")


@pytest.mark.parametrize(("asked", "region", "tier", "scheme", "by"), [
    ("central", "440000", "CITY", "MEDICAL", "DEPENDENCY_RATIO"),  # Guangdong's part, with Shenzhen's city
    ("guangdong", "440000", "COUNTY", "PENSION", "INCOME_EXPENDITURE_RATIO"),
    ("central", "440300", "COUNTY", "MEDICAL", "POOLED"),  # held by a grandchild: passed down whole
    ("central", "000000", "PROVINCE", "UNEMPLOYMENT", "BENEFITS_PAID"),
    ("central", "000000", "CITY", "PENSION", "INSURED"),
    # regions with no child node inside, ranked at nodes that have children: nothing to ask, answered
    # in the first pass (they had come back empty)
    ("central", "110000", "COUNTY", "PENSION", "INSURED"),
    ("central", "440100", "COUNTY", "PENSION", "INSURED"),  # Guangdong's, which has a child of its own
    ("guangdong", "440100", "COUNTY", "MEDICAL", "POOLED"),
])
async def test_other_tiers_across_nodes(fed: Fed, tree: Tree, asked: str, region: str, tier: str, scheme: str,
                                        by: str) -> None:
    figures = await raw_figures(fed.cons, tree, region, tier, scheme, date(2025, 2, 1), date(2025, 5, 1))
    v = {"r": region, "tier": tier, "from": "2025-02", "to": "2025-05", "scheme": scheme, "by": by, "desc": True}
    entries, _, count = await all_pages(lambda q, x: fed.ask(asked, q, x), v, 9)
    check(entries, count, figures, by, True, scheme)


async def test_each_child_is_asked_once_per_page_for_at_most_a_page(fed: Fed) -> None:
    v = {"r": "000000", "tier": "COUNTY", "from": "2025-01", "to": "2025-06", "scheme": "PENSION", "by": "POOLED",
         "desc": True, "first": 10, "after": None}
    for page in range(3):
        # The operation's own calls, as the timing extension reports them node by node.
        async with httpx.AsyncClient(timeout=30) as c:
            body = (await c.post(fed.nodes["central"].url, json={"query": RANKING, "variables": v},
                                 headers={"Authorization": f"Bearer {OP}", "tierfed-timing": "1"})).json()
        t = body["extensions"]["timing"]
        assert sorted(c["child"] for c in t["children"]) == ["guangdong", "sichuan"], page
        (gd,) = [c for c in t["children"] if c["child"] == "guangdong"]
        assert [c["child"] for c in gd["timing"]["children"]] == ["shenzhen"], page
        entries = body["data"]["ranking"]["entries"]
        assert [e["rank"] for e in entries] == list(range(page * 10 + 1, page * 10 + 11))
        v["after"] = entries[-1]["cursor"]
    # What a child sends: its part after the cursor, at most `first` entries, not its every county.
    part = await fed.nodes["guangdong"].post(
        """query($a: [JSON!]!) { _tierCall(kind: "ranking", args: $a) }""",
        {"a": [{"region": "440000", "tier": 3, "from": "2025-01", "to": "2025-06", "scheme": "PENSION",
                "by": "POOLED", "descending": True, "first": 10, "after": None}]}, OP)
    got = part["data"]["_tierCall"][0]
    assert len(got["entries"]) == 10 and got["count"] > 100 and got["before"] == 0


async def test_a_child_down_leaves_its_regions_out_and_says_so(fed: Fed, tree: Tree) -> None:
    """Last in this module: Sichuan's node is stopped."""
    await fed.nodes["sichuan"].stop()
    figures = await raw_figures(fed.cons, tree, "000000", "PROVINCE", "PENSION", date(2025, 1, 1), date(2025, 6, 1))
    del figures["510000"]
    v = {"r": "000000", "tier": "PROVINCE", "from": "2025-01", "to": "2025-06", "scheme": "PENSION", "by": "INSURED",
         "desc": True, "first": 50}
    body = await fed.nodes["central"].post(RANKING, v, OP)
    r = body["data"]["ranking"]
    assert r["complete"] is False and r["missing"] == [{"code": "510000"}]
    assert [e["extensions"]["code"] for e in body["errors"]] == ["TIER_UNAVAILABLE"]
    check(r["entries"], r["count"], figures, "INSURED", True, "PENSION")


@pytest.fixture(scope="module")
async def county_child(tmp_path_factory: pytest.TempPathFactory, tree: Tree, new_db: Any
                       ) -> AsyncIterator[tuple[RunningNode, list[asyncpg.Connection]]]:
    """Guangdong's node with one child node below the tier ranked: a county of Jiangmen (440784)."""
    out = tmp_path_factory.mktemp("county")
    generate(tree, out, Options(persons=2000, first=date(2025, 1, 1), last=date(2025, 6, 1), seed=7),
             split=lambda r: "county" if tree.within(r, "440784") else "province" if tree.within(r, "440000")
             else "elsewhere")
    county_port = free_port()
    cfgs = {"county": node_config("440784", "county"),
            "province": node_config("440000", "province", [
                {"region": "440784", "url": f"http://127.0.0.1:{county_port}/graphql", "name": "county",
                 "timeout_s": 20}])}
    dbs = {}
    for n, cfg in cfgs.items():
        dbs[n] = await new_db()
        await load_dataset(dbs[n], cfg, out / n)
    county = await start_node(cfgs["county"], dbs["county"], county_port)
    province = await start_node(cfgs["province"], dbs["province"])
    cons = [await asyncpg.connect(dbs[n]) for n in ("province", "county")]
    try:
        yield province, cons
    finally:
        for con in cons:
            await con.close()
        await province.stop()
        await county.stop()


async def test_a_city_spanning_a_county_node_is_ranked_with_the_county(
        county_child: tuple[RunningNode, list[asyncpg.Connection]], tree: Tree) -> None:
    province, cons = county_child
    figures = await raw_figures(cons, tree, "440000", "CITY", "PENSION", date(2025, 1, 1), date(2025, 6, 1))
    county_only = await raw_figures(cons[1:], tree, "440700", "COUNTY", "PENSION", date(2025, 1, 1), date(2025, 6, 1))
    assert county_only["440784"].months > 0  # the county node holds some of Jiangmen's records

    async def ask(q: str, v: dict[str, Any]) -> Any:
        body = await province.post(q, v, OP)
        assert "errors" not in body, body["errors"]
        return body["data"]

    for by in ("INSURED", "POOLED", "DEPENDENCY_RATIO"):
        v = {"r": "440000", "tier": "CITY", "from": "2025-01", "to": "2025-06", "scheme": "PENSION", "by": by,
             "desc": True}
        entries, _, count = await all_pages(ask, v, 8)
        check(entries, count, figures, by, True, "PENSION")
