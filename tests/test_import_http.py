"""Files submitted over HTTP to a real node: who may, where to, how large, a job to
follow, and the history read through GraphQL."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import node_config, token
from tests.nodes import RunningNode, start_node
from tests.test_import import CONTRIB_HEADER, counts, credit, pid, run_import, write

CHILD = [{"region": "440300", "url": "http://127.0.0.1:9/graphql", "name": "shenzhen"}]
EMP = credit()
OP = token("440000", ("OPERATOR",), sub="gd-operator")


@pytest.fixture
async def node(fresh_db: str, tmp_path: Path) -> Any:
    await run_import(fresh_db, "persons", write(tmp_path / "p.csv", "id_number,name,region_code",
                                                *[f"{pid(i)},某人,440106" for i in range(1, 40)]))
    await run_import(fresh_db, "employers", write(tmp_path / "e.csv", "credit_code,name,region_code,industry_risk_class",
                                                  f"{EMP},广州某公司,440106,3"))
    n = await start_node(node_config("440000", children=CHILD, limits={"max_import_bytes": 200_000}), fresh_db)
    yield n
    await n.stop()


def contributions(n: int = 30, month: str = "2025-01") -> bytes:
    rows = [f"{pid(i)},PENSION,{month},440106,{EMP},8000.00,1280.00,640.00,640.00" for i in range(1, n + 1)]
    return ("\n".join([CONTRIB_HEADER, *rows]) + "\n").encode()


async def post(node: RunningNode, kind: str, body: bytes, tok: str | None = OP, name: str = "c.csv",
               **headers: str) -> httpx.Response:
    h = {"Authorization": f"Bearer {tok}"} if tok else {}
    async with httpx.AsyncClient(timeout=60) as c:
        return await c.post(f"http://127.0.0.1:{node.port}/imports/{kind}", params={"name": name}, content=body,
                            headers={**h, **headers})


async def test_an_operator_submits_a_file_and_gets_the_report(node: RunningNode) -> None:
    r = await post(node, "contributions", contributions())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] == "imported" and body["progress"]["phase"] == "done"
    assert body["progress"]["rows_read"] == body["progress"]["rows_checked"] == body["progress"]["rows_written"] == 30
    rep = body["report"]
    assert (rep["kind"], rep["rows"], rep["inserted"], rep["file_name"], rep["warnings"]) == (
        "contributions", 30, 30, "c.csv", [])
    assert r.headers["cache-control"] == "no-store"
    # the same file again, compressed: a different file, the same records: nothing new
    again = await post(node, "contributions", gzip.compress(contributions()), name="c.csv.gz")
    assert again.json()["report"]["inserted"] == 0 and again.json()["report"]["unchanged"] == 30
    # the very same file: recognised
    same = await post(node, "contributions", contributions())
    assert same.json()["state"] == "unchanged" and same.json()["report"]["same_as"] == rep["import_id"]


async def test_who_may_submit_and_where(node: RunningNode, fresh_db: str) -> None:
    before = await counts(fresh_db)
    assert (await post(node, "contributions", contributions(), tok=None)).status_code == 401
    viewer = await post(node, "contributions", contributions(), tok=token("440000", ("VIEWER", "AUDITOR")))
    assert viewer.status_code == 403 and viewer.json()["error"]["code"] == "FORBIDDEN"
    # a token whose scope a child node holds is sent there, with the address
    sz = await post(node, "contributions", contributions(), tok=token("440305", ("OPERATOR",)))
    assert sz.status_code == 421
    assert sz.json()["error"]["nodes"][0]["url"] == "http://127.0.0.1:9/imports/contributions"
    assert "submit the file to http://127.0.0.1:9/imports/contributions" in sz.json()["error"]["message"]
    other = await post(node, "contributions", contributions(), tok=token("510000", ("OPERATOR",)))
    assert other.status_code == 403
    # a county operator may not import records of another county of the same node
    county = await post(node, "contributions", contributions(), tok=token("440103", ("OPERATOR",)))
    assert county.status_code == 422
    assert county.json()["report"]["errors"][0]["reason"] == "region 440106 is outside your token's scope 440103"
    directory = await post(node, "regions", b"code,name,tier,parent_code\n440399,X,county,440300\n")
    assert directory.status_code == 403 and "national token" in directory.json()["error"]["message"]
    assert (await post(node, "salaries", b"x\n")).status_code == 404
    too_big = await post(node, "contributions", b"x" * 200_001)
    assert too_big.status_code == 413 and "max_import_bytes" in too_big.json()["error"]["message"]
    header = await post(node, "contributions", b"id_number,scheme\n")
    assert header.status_code == 422 and "missing column(s)" in header.json()["error"]
    # a gzip file within the upload limit that holds far more once decompressed (the same row
    # 70,000 times: 5 MB from a few kB) is read no further than the limit
    line = f"{pid(1)},PENSION,2025-02,440106,{EMP},8000.00,1280.00,640.00,640.00\n".encode()
    bomb = gzip.compress(CONTRIB_HEADER.encode() + b"\n" + line * 70_000)
    assert len(bomb) < 200_000
    inflated = await post(node, "contributions", bomb, name="bomb.csv.gz")
    assert inflated.status_code == 422 and "once decompressed" in inflated.json()["error"], inflated.text
    assert await counts(fresh_db) == before


async def test_a_job_can_be_followed_while_it_runs(node: RunningNode, fresh_db: str) -> None:
    # Hold the import lock so the job stays running while it is followed.
    import asyncpg

    blocker = await asyncpg.connect(fresh_db)
    tx = blocker.transaction()
    await tx.start()
    await blocker.execute("select pg_advisory_xact_lock(7366042)")
    released = False
    try:
        r = await post(node, "contributions", contributions(), Prefer="respond-async")
        assert r.status_code == 202
        job = r.json()
        assert job["state"] == "running" and r.headers["location"] == f"/imports/jobs/{job['id']}"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.port}", timeout=30) as c:
            seen = (await c.get(r.headers["location"], headers={"Authorization": f"Bearer {OP}"})).json()
            assert seen["state"] == "running" and seen["report"] is None
            # outside the caller's scope a job is as unknown as one that never was
            other = await c.get(r.headers["location"],
                                headers={"Authorization": f"Bearer {token('510000', ('AUDITOR',))}"})
            assert other.status_code == 404
            await tx.rollback()
            released = True
            for _ in range(200):
                seen = (await c.get(r.headers["location"], headers={"Authorization": f"Bearer {OP}"})).json()
                if seen["state"] != "running":
                    break
                await asyncio.sleep(0.05)
        assert seen["state"] == "imported" and seen["report"]["inserted"] == 30
        assert seen["progress"] | {"seconds": 0} == {"phase": "done", "rows_read": 30, "rows_checked": 30,
                                                     "rows_written": 30, "seconds": 0}
    finally:
        if not released:
            await tx.rollback()
        await blocker.close()


HISTORY = """{ imports { id kind fileName sha256 caller scope via rows inserted unchanged badRows outcome
                         version sameAs warnings message } }"""


async def test_the_history_through_graphql(node: RunningNode) -> None:
    await post(node, "contributions", contributions())
    await post(node, "contributions", contributions())  # recognised
    bad = contributions().replace(b"2025-01", b"2025-13")
    await post(node, "contributions", bad, name="bad.csv")
    auditor = token("440000", ("AUDITOR",))
    runs = (await node.post(HISTORY, None, auditor))["data"]["imports"]
    assert [(r["kind"], r["outcome"], r["via"], r["caller"]) for r in runs[:3]] == [
        ("contributions", "rejected", "http", "gd-operator"), ("contributions", "unchanged", "http", "gd-operator"),
        ("contributions", "imported", "http", "gd-operator")]
    rejected, unchanged, imported = runs[:3]
    assert rejected["badRows"] == 30 and rejected["version"] is None and "bad row(s)" in rejected["message"]
    assert unchanged["sameAs"] == imported["id"] and unchanged["version"] is None
    assert imported["version"] == imported["id"] and imported["rows"] == imported["inserted"] == 30
    assert [r["kind"] for r in runs[3:]] == ["employers", "persons"]  # the CLI imports of the fixture
    assert runs[3]["caller"] == "cli" and runs[3]["scope"] == "440000"
    # a viewer may not read it; an auditor of a county sees only what was submitted inside it
    denied = await node.post(HISTORY, None, token("440000", ("VIEWER",)))
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await node.post(HISTORY, None, token("440103", ("AUDITOR",))))["data"]["imports"] == []
    # and a county's own submission is what that county's auditor sees, alone
    county = await post(node, "contributions", contributions(month="2025-02"), token("440106", ("OPERATOR",),
                                                                                       sub="county-op"))
    assert county.status_code == 200, county.text
    seen = (await node.post(HISTORY, None, token("440106", ("AUDITOR",))))["data"]["imports"]
    assert [(r["caller"], r["scope"], r["outcome"]) for r in seen] == [("county-op", "440106", "imported")], seen
    bad_kind = await node.post('{ imports(kind: "salaries") { id } }', None, auditor)
    assert bad_kind["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
