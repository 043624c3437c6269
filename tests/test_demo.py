"""`tierfed demo` end to end, small: four nodes start, answer as one graph, stop on Ctrl-C,
and a second start reuses the data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.nodes import free_port_run

pytestmark = pytest.mark.federation


def start(data: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tierfed.cli", "demo", "--port", str(port), "--persons", "400",
                             "--data-dir", str(data)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def wait_running(p: subprocess.Popen[str], timeout: float = 240) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert p.stdout is not None
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("dashboard, signed in:"):
            return lines
    raise AssertionError("demo did not start:\n" + "\n".join(lines))


def stop(p: subprocess.Popen[str]) -> int:
    p.send_signal(signal.SIGINT)
    try:
        return p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        raise


def test_demo_starts_answers_and_restarts(tmp_path: Path) -> None:
    port = free_port_run(4)  # central and its three province nodes on the next ports
    p = start(tmp_path, port)
    try:
        out = wait_running(p)
        text = "\n".join(out)
        for node, region in (("central", "000000"), ("guangdong", "440000"), ("sichuan", "510000"),
                             ("zhejiang", "330000")):
            assert node in text and region in text
        tok = out[out.index(next(x for x in out if x.strip().startswith("national (VIEWER"))) + 1].strip()
        assert f"/dashboard#token={tok}" in text
        q = '{ rollup(region: "000000", period: {from: "2025-01", to: "2025-12"}) { complete totals { insured } } }'
        r = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": q},
                       headers={"Authorization": f"Bearer {tok}"}, timeout=30).json()
        assert r["data"]["rollup"]["complete"] is True and r["data"]["rollup"]["totals"][0]["insured"] > 0
        gd = httpx.post(f"http://127.0.0.1:{port + 1}/graphql", json={"query": q.replace("000000", "440000")},
                        headers={"Authorization": f"Bearer {tok}"}, timeout=30).json()
        assert gd["data"]["rollup"]["complete"] is True
        # The provinces' 2026 pension budgets, drafted on the nodes holding them, compiled at the centre.
        b = '{ compiledBudget(region: "000000", year: 2026, schemes: [PENSION]) { complete states { pools approved } } }'
        got = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": b},
                         headers={"Authorization": f"Bearer {tok}"}, timeout=30).json()["data"]["compiledBudget"]
        assert got == {"complete": True, "states": {"pools": 31, "approved": 1}}
        page = httpx.get(f"http://127.0.0.1:{port}/dashboard", timeout=10)
        assert page.status_code == 200 and "echarts" in page.text.lower()
    finally:
        code = stop(p)
    assert code in (0, 130, -signal.SIGINT)
    again = start(tmp_path, port)
    try:
        out = wait_running(again, timeout=120)
        assert any("reusing it" in x for x in out)
    finally:
        stop(again)
