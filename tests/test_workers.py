"""``tierfed serve --workers 2`` as a real process: both workers serve, /metrics (on its own
address) adds up every worker's counts, the access log is one JSON line per request, and a
tree change reaches every worker (each listens for it)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import SECRET, token
from tests.nodes import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def two_workers(tmp_path: Path, db: str, port: int, more: str = "",
                env: dict[str, str] | None = None, workers: int = 2,
                node_more: str = "") -> tuple[subprocess.Popen[bytes], Any]:
    """``tierfed serve`` of a national node with two workers on ``port`` (``more``: further config);
    the process and its log file."""
    cfg = tmp_path / "node.toml"
    cfg.write_text(f"""
[node]
name = "national"
region = "000000"
listen = "127.0.0.1:{port}"
database_url = "{db}"
workers = {workers}
check_children_at_start = false
{node_more}

[auth]
jwt_secret = "{SECRET}"
{more}""")
    log = (tmp_path / "out.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "tierfed.cli", "serve", "--config", str(cfg)],
                            env=env or dict(os.environ), stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    return proc, log


async def until_ready(c: httpx.AsyncClient, proc: subprocess.Popen[bytes], port: int, tmp_path: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if (await c.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "out.log").read_text()
        await asyncio.sleep(0.2)


async def test_serve_with_two_workers(fresh_db: str, tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    mp_dir = tmp_path / "metrics"
    mp_dir.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(mp_dir)}
    proc, log = two_workers(tmp_path, fresh_db, port, f'[metrics]\nlisten = "127.0.0.1:{metrics_port}"\n', env)
    tok = token()
    query = '{ region(code: "440300") { name } }'
    try:
        async with httpx.AsyncClient(timeout=10) as c:
            await until_ready(c, proc, port, tmp_path)
            n = 24

            async def one() -> None:
                async with httpx.AsyncClient(timeout=10) as fresh:  # a connection each: spread over workers
                    r = await fresh.post(f"http://127.0.0.1:{port}/graphql", json={"query": query},
                                         headers={"Authorization": f"Bearer {tok}"})
                    assert r.json() == {"data": {"region": {"name": "深圳市"}}}

            await asyncio.gather(*(one() for _ in range(n)))
            assert (await c.get(f"http://127.0.0.1:{port}/metrics")).status_code == 404  # not on the node's address
            text = (await c.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
            total = sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                        if s.name == "tierfed_requests_total" and s.labels.get("outcome") == "ok")
            assert total == n
            # A tree change reaches both workers: rename a region, notify, then every answer has it.
            con = await asyncpg.connect(fresh_db)
            try:
                await con.execute("update region set name = '深圳' where code = '440300'")
                await con.execute("notify tierfed_tree")
            finally:
                await con.close()
            asked = 0
            for _ in range(50):  # until a dozen answers in a row, spread over both workers, have it
                names = set()
                for _ in range(12):
                    async with httpx.AsyncClient(timeout=10) as fresh:
                        r = await fresh.post(f"http://127.0.0.1:{port}/graphql", json={"query": query},
                                             headers={"Authorization": f"Bearer {tok}"})
                        names.add(r.json()["data"]["region"]["name"])
                        asked += 1
                if names == {"深圳"}:
                    break
                await asyncio.sleep(0.2)
            assert names == {"深圳"}
            # A worker's own log lines carry their time, level and logger (a spawned worker had
            # written them bare): an internal error, on whichever worker serves it.
            con = await asyncpg.connect(fresh_db)
            try:
                await con.execute("drop table pool cascade")
            finally:
                await con.close()
            r = await c.post(f"http://127.0.0.1:{port}/graphql", json={"query": '{ region(code: "440000") '
                                                                                 "{ pool(scheme: PENSION) { id } } }"},
                             headers={"Authorization": f"Bearer {tok}"})
            assert r.json()["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
    out = (tmp_path / "out.log").read_text()
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ERROR tierfed\.execution: internal error", out, re.M), \
        out[-2000:]
    pids = {p.stem.rsplit("_", 1)[1] for p in mp_dir.glob("counter_*.db")}
    assert len(pids) >= 3, pids  # the parent's start-up check and two workers
    lines = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
    assert len([ln for ln in lines if ln["outcome"] == "ok"]) == n + asked
    assert tok not in out


@pytest.mark.parametrize(("workers", "subscribed"), [(1, False), (1, True), (2, True)])
async def test_a_live_subscriber_does_not_hold_a_stopping_node(fresh_db: str, tmp_path: Path, workers: int,
                                                               subscribed: bool) -> None:
    """SIGTERM with a subscription open over Server-Sent Events: the node stops within seconds,
    the stream completed (uvicorn waits for open responses before the app's shutdown, which is
    what ended the live answers: a stream held the node until its token expired). With several
    workers, [node].shutdown_grace_s bounds it. And a node that never served one stops cleanly."""
    port = free_port()
    proc, log = two_workers(tmp_path, fresh_db, port, workers=workers, node_more="shutdown_grace_s = 3")
    sub = 'subscription { rollup(region: "440000", period: {from: "2025-01", to: "2025-01"}) { complete } }'
    try:
        async with httpx.AsyncClient(timeout=30) as c:
            await until_ready(c, proc, port, tmp_path)
            if not subscribed:
                proc.send_signal(signal.SIGTERM)
                assert await asyncio.to_thread(proc.wait, 15) in (0, -signal.SIGTERM), \
                    (tmp_path / "out.log").read_text()
                out = (tmp_path / "out.log").read_text()
                assert "Application shutdown complete" in out and "Traceback" not in out, out
                return
            async with c.stream("POST", f"http://127.0.0.1:{port}/graphql", json={"query": sub},
                                headers={"Authorization": f"Bearer {token()}", "Accept": "text/event-stream"}) as s:
                lines = s.aiter_lines()
                while "event: next" not in await anext(lines):
                    pass
                t0 = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                rest = []
                try:
                    rest = [ln async for ln in lines]
                except httpx.RemoteProtocolError:
                    # several workers: uvicorn's graceful timeout (shutdown_grace_s) cuts the stream,
                    # then the app's shutdown runs
                    assert workers > 1
            # uvicorn raises the signal it caught again once it has shut down: -SIGTERM is a clean stop
            assert await asyncio.to_thread(proc.wait, 15) in (0, -signal.SIGTERM), (tmp_path / "out.log").read_text()
            assert "Application shutdown complete" in (tmp_path / "out.log").read_text()
            assert time.monotonic() - t0 < 8, time.monotonic() - t0
            assert workers > 1 or "event: complete" in rest, rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()


async def test_an_import_job_is_followed_on_any_worker(fresh_db: str, tmp_path: Path) -> None:
    """An import submitted over HTTP to a node of two workers is followed by requests that land on
    either: the job is in the node's database, not only in the memory of the worker running it
    (the other worker had answered 404 "no import job")."""
    from tierfed import codes

    port = free_port()
    rows = []
    for i in range(2000):
        first17 = f"440106{1980 + i // 1000}0312{i % 1000:03d}"
        rows.append(f"{first17 + codes.id_check_char(first17)},张{i},440106")
    body = ("id_number,name,region_code\n" + "\n".join(rows) + "\n").encode()
    proc, log = two_workers(tmp_path, fresh_db, port)
    op = token("000000", ("OPERATOR",))
    try:
        async with httpx.AsyncClient(timeout=10) as c:
            await until_ready(c, proc, port, tmp_path)
            r = await c.post(f"http://127.0.0.1:{port}/imports/persons", params={"name": "p.csv"}, content=body,
                             headers={"Authorization": f"Bearer {op}", "Prefer": "respond-async"})
            assert r.status_code == 202, r.text
            job = r.json()["id"]

        async def follow() -> dict:
            async with httpx.AsyncClient(timeout=10) as fresh:  # a connection each: spread over workers
                got = await fresh.get(f"http://127.0.0.1:{port}/imports/jobs/{job}",
                                      headers={"Authorization": f"Bearer {op}"})
                assert got.status_code == 200, got.text
                return got.json()  # type: ignore[no-any-return]

        for _ in range(100):
            seen = await asyncio.gather(*(follow() for _ in range(16)))
            if all(s["state"] != "running" for s in seen):
                break
            await asyncio.sleep(0.1)
        assert {s["state"] for s in seen} == {"imported"}, seen
        assert {s["report"]["inserted"] for s in seen} == {2000}
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
