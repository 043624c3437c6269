"""Data versions and the answer cache: never a stale figure, never an answer shared
between callers it does not belong to, never an unmasked read from the cache.

Real PostgreSQL everywhere; the three-tier test runs real nodes over HTTP:
central (000000) with Guangdong (440000) as child and Shenzhen (440300) as
Guangdong's child.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from tierfed.tiers.versions import OWN_VERSION, SUBTREE_VERSION, own_version

from tests.conftest import Client, node_client, node_config, token
from tests.nodes import RunningNode, free_port, start_node
from tierfed import codes
from tierfed.importer import import_file

VIEWER = token("000000", ("VIEWER",))
ROLLUP = """query R($r: ID!) { rollup(region: $r, period: {from: "2025-01", to: "2025-06"}) {
  complete missing { code } totals { scheme contributorMonths contributionTotal } } }"""


def idn(seq: int) -> str:
    first17 = f"44030419850312{seq:03d}"
    return first17 + codes.id_check_char(first17)


def _write(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


async def import_contributions(rt: Any, d: Path, person: int, region: str, months: list[int]) -> None:
    """One person of ``region`` with PENSION contributions (base 10000, 1600 + 800) in those months of 2025."""
    d.mkdir(parents=True, exist_ok=True)
    p = idn(person)
    await import_file(rt.pool, rt.node, "persons", _write(d / f"persons{person}.csv", ["id_number", "name", "region_code"],
                                                          [[p, "测试", region]]), progress=False)
    rows = [[p, "PENSION", f"2025-{m:02d}", region, "", "10000.00", "1600.00", "800.00", "800.00"] for m in months]
    await import_file(rt.pool, rt.node, "contributions", _write(
        d / f"contributions{person}.csv", ["id_number", "scheme", "month", "region_code", "employer_credit_code",
                                           "base", "employer_amount", "individual_amount",
                                           "individual_account_amount"], rows), progress=False)


def start_recording(*runtimes: Any) -> None:
    for rt in runtimes:
        rt.statements.queries = []


def recorded(rt: Any) -> tuple[int, list[str]]:
    """Since ``start_recording``: the version reads, and every other statement but those of the
    node's background work (the person index, the recovery of changes), which may run any time."""
    qs, rt.statements.queries = rt.statements.queries, None
    background = ("person_presence", "person_index", "change", "tier_l", "clock_timestamp()")
    reads = (OWN_VERSION, SUBTREE_VERSION)
    return sum(qs.count(r) for r in reads), [q for q in qs if q not in reads and not any(b in q for b in background)]


def pension(body: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in body, body.get("errors")
    return dict(body["data"]["rollup"]["totals"][0])


# ------------------------------------------------------------------ versions


async def test_a_commit_advances_the_version_once_and_a_rollback_or_a_read_never(fresh_db: str) -> None:
    pool = await asyncpg.create_pool(fresh_db, min_size=1, max_size=2)
    try:
        v0 = await own_version(pool)
        await pool.fetch("select * from region limit 5")
        assert await own_version(pool) == v0
        async with pool.acquire() as con, con.transaction():
            # Three statements on two versioned tables: one commit, one step.
            await con.execute("update region set name = name where code = '440000'")
            await con.execute("update region set name = name where code = '440300'")
            await con.execute("delete from pool where false")
        assert await own_version(pool) == v0 + 1
        with pytest.raises(RuntimeError):
            async with pool.acquire() as con, con.transaction():
                await con.execute("update region set name = name where code = '440000'")
                raise RuntimeError("rolled back")
        assert await own_version(pool) == v0 + 1
        # The PII audit carries no version: unmasked reads are never cached.
        await pool.execute("insert into pii_audit (caller, scope, id_number, operation) values ('t', '000000', 'x', 'o')")
        assert await own_version(pool) == v0 + 1
        assert await pool.fetchval("select count(*) from data_version_pending") == 0
    finally:
        await pool.close()


# ------------------------------------------------------------------ the cache on one node


async def test_a_repeated_question_is_served_from_the_cache_with_one_statement(client: Client) -> None:
    rt = client.runtime
    before = rt.statements.count
    first = await client.post(ROLLUP, {"r": "440000"}, tok=VIEWER)
    miss = rt.statements.count - before
    assert first.status_code == 200 and first.headers.get("etag")
    hits = rt.answers.hits
    start_recording(rt)
    second = await client.post(ROLLUP, {"r": "440000"}, tok=VIEWER)
    # A hit reads the version (one primary-key lookup) and no figure.
    assert recorded(rt) == (1, []) and miss > 1
    assert rt.answers.hits == hits + 1
    assert second.content == first.content and second.headers["etag"] == first.headers["etag"]
    assert second.headers["cache-control"] == "no-store"
    # Other variables: another answer.
    other = await client.post(ROLLUP, {"r": "510000"}, tok=VIEWER)
    assert other.headers["etag"] != first.headers["etag"] and other.content != first.content


async def test_an_answer_of_the_current_month_is_not_served_once_the_month_turned(
        client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """Figures "as of now" (a fund report's last month, a pool's balance) move with the calendar,
    with no commit to move the version: the month is part of the cache key."""
    from datetime import date

    from tierfed import codes

    now = codes.current_month()
    q = "query($y: Int!) { fundReport(region: \"440000\", year: $y) { period { to } } }"
    first = await client.post(q, {"y": now.year}, tok=VIEWER)
    assert first.json()["data"]["fundReport"]["period"]["to"] == codes.month_str(now), first.json()
    before = date(now.year - (now.month == 1), (now.month - 2) % 12 + 1, 1)
    monkeypatch.setattr(codes, "current_month", lambda: before)
    second = await client.post(q, {"y": now.year}, tok=VIEWER)
    assert second.content != first.content and second.headers.get("etag") != first.headers.get("etag"), \
        second.json()


async def test_etag_and_if_none_match(empty_client: Client, tmp_path: Path) -> None:
    c = empty_client
    first = await c.post(ROLLUP, {"r": "440000"}, tok=VIEWER)
    tag = first.headers["etag"]
    assert pension(first.json())["contributorMonths"] == 0
    same = await c.post(ROLLUP, {"r": "440000"}, tok=VIEWER, **{"If-None-Match": tag})
    assert same.status_code == 304 and same.content == b"" and same.headers["etag"] == tag
    # Also by GET, and with a list of tags.
    got = await c.http.get("/graphql", params={"query": ROLLUP, "variables": '{"r": "440000"}'},
                           headers={"Authorization": f"Bearer {VIEWER}", "If-None-Match": f'"x", {tag}'})
    assert got.status_code == 304
    # Another caller's tag is not this caller's.
    province = token("440000", ("VIEWER",))
    other = await c.post(ROLLUP, {"r": "440000"}, tok=province, **{"If-None-Match": tag})
    assert other.status_code == 200 and other.headers["etag"] != tag
    # A commit moves the version: the old tag gets the new answer.
    await import_contributions(c.runtime, tmp_path, 1, "440304", [1, 2, 3])
    moved = await c.post(ROLLUP, {"r": "440000"}, tok=VIEWER, **{"If-None-Match": tag})
    assert moved.status_code == 200 and moved.headers["etag"] != tag
    assert pension(moved.json())["contributorMonths"] == 3
    again = await c.post(ROLLUP, {"r": "440000"}, tok=VIEWER, **{"If-None-Match": moved.headers["etag"]})
    assert again.status_code == 304
    # An answer with errors carries no tag.
    refused = await c.post(ROLLUP, {"r": "000000"}, tok=province)
    assert refused.status_code == 200 and "etag" not in refused.headers


async def test_two_scopes_or_role_sets_never_share_an_answer(client: Client) -> None:
    rt = client.runtime
    national, province = VIEWER, token("440000", ("VIEWER",))
    assert pension(await client.gql(ROLLUP, {"r": "000000"}, tok=national))["contributorMonths"] > 0
    assert (await client.post(ROLLUP, {"r": "000000"}, tok=national)).status_code == 200  # now cached
    hits = rt.answers.hits
    body = await client.gql(ROLLUP, {"r": "000000"}, tok=province)
    assert body["data"] is None or body["data"]["rollup"] is None
    assert {e["extensions"]["code"] for e in body["errors"]} == {"FORBIDDEN"}
    # The same scope with other roles: the imports query needs OPERATOR or AUDITOR.
    imports = "{ imports(first: 5) { id } }"
    operator = token("000000", ("VIEWER", "OPERATOR"))
    assert "errors" not in await client.gql(imports, tok=operator)
    assert "errors" not in await client.gql(imports, tok=operator)
    denied = await client.gql(imports, tok=VIEWER)
    assert {e["extensions"]["code"] for e in denied["errors"]} == {"FORBIDDEN"}
    assert rt.answers.hits == hits + 1  # only the operator's second request was a hit
    # The same scope and roles, another subject: one answer (nothing of the subject is in it).
    other_subject = token("000000", ("VIEWER",), sub="someone-else")
    assert (await client.post(ROLLUP, {"r": "000000"}, tok=other_subject)).status_code == 200
    assert rt.answers.hits == hits + 2


async def test_an_unmasked_read_is_never_cached_and_always_audited(client: Client) -> None:
    rt = client.runtime
    person = await rt.pool.fetchval("select id_number from person order by id_number limit 1")
    card = "query Card($id: String!) { person(idNumber: $id) { idNumber name } }"
    reader = token("000000", ("VIEWER", "PII_READER"), sub="unmasking-reader")
    count = "select count(*) from pii_audit where caller = 'unmasking-reader' and id_number = $1"
    entries, hits = len(rt.answers), rt.answers.hits
    for n in (1, 2, 3):
        before = rt.statements.count
        r = await client.post(card, {"id": person}, tok=reader)
        assert r.json()["data"]["person"]["idNumber"] == person
        assert "etag" not in r.headers
        assert rt.statements.count - before > 1  # computed, not served
        assert await rt.pool.fetchval(count, person) == n
    assert len(rt.answers) == entries and rt.answers.hits == hits
    # A masked read of the same person is cached (and shows no ID number).
    masked = [await client.post(card, {"id": person}, tok=VIEWER) for _ in range(2)]
    assert masked[0].json()["data"]["person"]["idNumber"] != person
    assert masked[1].content == masked[0].content and rt.answers.hits == hits + 1


async def test_the_cache_holds_at_most_its_bytes(loaded_db: str) -> None:
    async with node_client(loaded_db, cache={"max_bytes": 1000}) as c:
        rt = c.runtime
        regions = ("440000", "510000", "110000", "310000", "320000", "330000")
        for region in regions:
            r = await c.post(ROLLUP, {"r": region}, tok=VIEWER)
            assert r.status_code == 200 and 200 < len(r.content) < 1000
            assert rt.answers.bytes <= 1000
        assert 0 < len(rt.answers) < 5
        hits = rt.answers.hits
        await c.post(ROLLUP, {"r": regions[-1]}, tok=VIEWER)  # the newest is kept
        assert rt.answers.hits == hits + 1
        await c.post(ROLLUP, {"r": regions[0]}, tok=VIEWER)  # the oldest was let go
        assert rt.answers.hits == hits + 1
    async with node_client(loaded_db, cache={"max_bytes": 0}) as c:
        r = await c.post(ROLLUP, {"r": "440000"}, tok=VIEWER)
        assert "etag" not in r.headers and len(c.runtime.answers) == 0


# ------------------------------------------------------------------ three tiers over HTTP

NODES = {"central": "000000", "guangdong": "440000", "shenzhen": "440300"}
PARENT = {"guangdong": "central", "shenzhen": "guangdong"}


def _config(name: str, ports: dict[str, int], lease: float = 0) -> Any:
    """A node of the three tiers; ``lease`` 0: no links (parents check their children per request)."""
    def url(n: str) -> str:
        return f"http://127.0.0.1:{ports[n]}/graphql"

    children = [{"region": NODES[c], "url": url(c), "name": c, "timeout_s": 3} for c, p in PARENT.items() if p == name]
    extra: dict[str, Any] = {"parent": {"url": url(PARENT[name]), "timeout_s": 3}} if name in PARENT else {}
    cfg = node_config(NODES[name], name, children, **extra)
    return dataclasses.replace(cfg, link_lease_s=lease)


async def test_a_commit_at_a_grandchild_is_in_the_very_next_national_answer_links_down(new_db: Any,
                                                                                          tmp_path: Path) -> None:
    """Without links (lease 0) every parent checks its children per request; the pushed case is in
    tests/test_pushed_versions.py."""
    ports = {n: free_port() for n in NODES}
    nodes: dict[str, RunningNode] = {}
    try:
        for name in ("shenzhen", "guangdong", "central"):
            nodes[name] = await start_node(_config(name, ports), await new_db(), ports[name])
        central, shenzhen = nodes["central"], nodes["shenzhen"]

        async def national(**headers: str) -> httpx.Response:
            async with httpx.AsyncClient(timeout=30) as h:
                return await h.post(central.url, json={"query": ROLLUP, "variables": {"r": "000000"}},
                                    headers={"Authorization": f"Bearer {VIEWER}", **headers})

        months = 0
        for step, (region, ms) in enumerate([("440304", [1, 2]), ("440305", [3]), ("440304", [4, 5, 6])]):
            first = await national()
            assert pension(first.json())["contributorMonths"] == months
            hits = central.runtime.answers.hits
            start_recording(*(r.runtime for r in nodes.values()))
            second = await national()
            assert second.content == first.content and central.runtime.answers.hits == hits + 1
            # A hit at the central node: every node read its version once, and no figure.
            assert {n: recorded(r.runtime) for n, r in nodes.items()} == \
                {"central": (1, []), "guangdong": (1, []), "shenzhen": (1, [])}
            # A commit at the grandchild, reported done: the very next national answer shows it.
            await import_contributions(shenzhen.runtime, tmp_path / str(step), 10 + step, region, ms)
            months += len(ms)
            after = await national(**{"If-None-Match": first.headers["etag"]})
            assert after.status_code == 200, after.status_code
            assert pension(after.json())["contributorMonths"] == months
            assert after.headers["etag"] != first.headers["etag"]

        # A child that cannot be checked is a failed child: reported, never served from the cache.
        cached = await national()
        assert cached.status_code == 200 and central.runtime.answers.hits > 0
        await shenzhen.stop()
        del nodes["shenzhen"]
        hits = central.runtime.answers.hits
        down = await national(**{"If-None-Match": cached.headers["etag"]})
        assert down.status_code == 200 and "etag" not in down.headers
        body = down.json()
        assert body["data"]["rollup"]["complete"] is False
        assert [m["code"] for m in body["data"]["rollup"]["missing"]] == ["440300"]
        assert central.runtime.answers.hits == hits
        # Asked directly, the child whose own child is down reports it as unavailable.
        async with httpx.AsyncClient(timeout=30) as h:
            r = await h.post(nodes["guangdong"].url, json={"query": ROLLUP, "variables": {"r": "440000"}},
                             headers={"Authorization": f"Bearer {VIEWER}"})
        assert r.json()["data"]["rollup"]["complete"] is False and "etag" not in r.headers
        assert "TIER_UNAVAILABLE" in {e["extensions"]["code"] for e in r.json()["errors"]}
    finally:
        for n in nodes.values():
            await n.stop()


async def test_a_person_the_parents_index_learns_of_is_never_answered_from_an_older_answer(
        new_db: Any, tmp_path: Path) -> None:
    """A parent asks only the children its person index names. A lookup answered while the index
    did not name the child yet (found nobody) must not be served from the cache once the index
    has learned of the person: the index moves the parent's version (migration 0018). Before,
    the parent kept answering null from its cache after the child's import was reported done."""
    pg, ps = free_port(), free_port()

    def url(p: int) -> str:
        return f"http://127.0.0.1:{p}/graphql"

    gd_cfg = dataclasses.replace(node_config("440000", "guangdong", [
        {"region": "440300", "url": url(ps), "name": "shenzhen", "timeout_s": 3}]), link_lease_s=120)
    sz_cfg = dataclasses.replace(node_config("440300", "shenzhen", [], parent={"url": url(pg), "timeout_s": 3}),
                                 link_lease_s=120)
    sz = await start_node(sz_cfg, await new_db(), ps)
    gd = await start_node(gd_cfg, await new_db(), pg)
    q = "query P($id: String!) { person(idNumber: $id) { name region { code } } }"
    tok = token("440000", ("VIEWER",))
    person = idn(901)
    try:
        for n in (sz, gd):  # no background pushes or syncs: each step below is the one that counts
            await n.runtime.links.stop()
            await n.runtime.index.stop()
        await gd.runtime.index.sync_all()
        assert await gd.runtime.links.check_children() == {"shenzhen": True}
        assert (await gd.post(q, {"id": person}, tok))["data"]["person"] is None
        # The child's persons import commits and pushes its version, with its person feed's head:
        # the index, behind that head, no longer stands for the child, which the lookup asks (it
        # had found nobody, and kept that answer at the parent's new version).
        f = _write(tmp_path / "p.csv", ["id_number", "name", "region_code"], [[person, "测试", "440304"]])
        await import_file(sz.runtime.pool, sz.runtime.node, "persons", f, progress=False)
        assert await sz.runtime.links.announce() is None
        assert not gd.runtime.index.is_current("shenzhen")
        got = await gd.post(q, {"id": person}, tok)
        assert got["data"]["person"] == {"name": "测试", "region": {"code": "440304"}}, got
        # The import's last step: the parent reads the child's feed. Done: the index stands for the
        # child again, and the next lookup still finds the person.
        assert await sz.runtime.index.tell_parent() is None
        assert gd.runtime.index.is_current("shenzhen")
        got = await gd.post(q, {"id": person}, tok)
        assert got["data"]["person"] == {"name": "测试", "region": {"code": "440304"}}, got
    finally:
        for n in (gd, sz):
            await n.stop()
