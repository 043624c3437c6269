"""Case 11: live answers pushed up the tree (issue 12). Its own small databases, so it runs
without the big data sets too: ``python -m bench.live [--quick]``.

- **Commit to subscriber across three tiers.** Central (000000) <- Guangdong (440000) <-
  Shenzhen (440300), each its own process and database, links up (tiers.links). A subscriber
  at the central node watches the national rollup over Server-Sent Events; Shenzhen imports
  one contribution at a time over HTTP. Timed: from the import's commit (the moment this
  process, LISTENing on Shenzhen's database, is told the version moved) to the moment the
  subscriber reads the new rollup. The import's own response time (reported done: every
  ancestor acknowledged) is given beside it.
- **Many subscribers on one node.** N subscribers (1 to thousands, loopback, one process
  holding them) watch the same rollup of one national node; each update is an import at the
  node. Measured per update: the node's CPU time (its process, /proc), the answers it
  computed for live questions (its metrics), and the time until the first and the last
  subscriber has the new answer.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import time
from pathlib import Path
from typing import Any

import asyncpg

from tierfed import codes

from . import cluster
from .cases import Bench, Row, ms
from .load import percentile
from .servers import Server, start_node
from .topology import NATION, NodeSpec, free_port

PERIOD = {"from": "2025-01", "to": "2025-12"}
WATCH = ("subscription Live($p: PeriodInput!) { rollup(region: \"000000\", period: $p) { complete "
         "totals { scheme contributorMonths contributionTotal } } }")
COUNTY = "440304"
WAIT_S = 60.0


def idn(seq: int) -> str:
    """A valid resident ID number per seq (born in 1980, a thousand per day from 1 January)."""
    first17 = f"4403041980{1 + seq // 28000:02d}{1 + seq // 1000 % 28:02d}{seq % 1000:03d}"
    return first17 + codes.id_check_char(first17)


def _csv(path: Path, header: list[str], rows: list[list[Any]]) -> bytes:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path.read_bytes()


def persons_file(d: Path, n: int) -> bytes:
    return _csv(d / "persons.csv", ["id_number", "name", "region_code"], [[idn(i), "测试", COUNTY] for i in range(n)])


def contribution_file(d: Path, i: int) -> bytes:
    month = f"2025-{1 + i % 12:02d}"
    return _csv(d / f"c{i}.csv", ["id_number", "scheme", "month", "region_code", "employer_credit_code", "base",
                                  "employer_amount", "individual_amount", "individual_account_amount"],
                [[idn(i // 12), "PENSION", month, COUNTY, "", "10000.00", "1600.00", "800.00", "800.00"]])


async def http(port: int, method: str, path: str, body: bytes, token: str,
               ctype: str = "text/csv") -> tuple[int, bytes]:
    """One request on a connection of its own (imports are few: no keep-alive needed)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**24)
    try:
        writer.write((f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                      f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
                     + body)
        raw = await reader.read()
    finally:
        writer.close()
    head, _, rest = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"chunked" in head.lower():
        out, buf = b"", rest
        while buf:
            size_s, _, buf = buf.partition(b"\r\n")
            size = int(size_s, 16)
            if size == 0:
                break
            out, buf = out + buf[:size], buf[size + 2:]
        rest = out
    return status, rest


async def import_at(port: int, kind: str, data: bytes, token: str) -> None:
    status, body = await http(port, "POST", f"/imports/{kind}", data, token)
    if status != 200:
        raise RuntimeError(f"import {kind}: HTTP {status}: {body[:300]!r}")


class Subscriber:
    """One SSE subscription on a raw socket: the events as they come, with when they came."""

    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> bytes:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port, limit=2**22)
        body = json.dumps({"query": WATCH, "variables": {"p": PERIOD}}).encode()
        self.writer.write((f"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {self.token}\r\n"
                           f"Accept: text/event-stream\r\nContent-Type: application/json\r\n"
                           f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"subscription refused: {head[:200]!r}")
        return await self.next()

    async def next(self) -> bytes:
        """The data of the next ``next`` event (chunked transfer: sizes are skipped)."""
        assert self.reader is not None
        while True:
            block = await self.reader.readuntil(b"\n\n")
            for line in block.split(b"\n"):
                if line.startswith(b"data: "):
                    if b"event: next" in block:
                        return line[6:]
            if b"event: complete" in block:
                raise RuntimeError("the subscription ended")

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Commits:
    """LISTEN on a node's database: when each commit that moved its version happened."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.con: asyncpg.Connection | None = None
        self.queue: asyncio.Queue[float] = asyncio.Queue()

    async def start(self) -> None:
        self.con = await asyncpg.connect(self.url)
        await self.con.add_listener("tierfed_version", lambda *_: self.queue.put_nowait(time.perf_counter()))

    def drain(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()

    async def close(self) -> None:
        if self.con is not None:
            await self.con.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def computations(port: int, token: str) -> float:
    status, body = await http(port, "GET", "/metrics", b"", token, "text/plain")
    for line in body.decode().splitlines():
        if line.startswith("tierfed_live_computations_total"):
            return float(line.split()[-1])
    raise RuntimeError(f"no live computations in /metrics (HTTP {status})")


async def _db(name: str) -> str:
    from .dataset import _migrate

    url = await cluster.create(name)
    await _migrate(url)
    return url


async def three_tiers(b: Bench) -> tuple[Server, Server, str, str]:
    ports = {n: free_port() for n in ("central", "guangdong", "shenzhen")}
    urls = {n: await _db(f"bench_live_{n}") for n in ports}

    def spec(name: str, region: str, parent: str | None, child: NodeSpec | None) -> NodeSpec:
        s = NodeSpec(name, region, urls[name], port=ports[name], children=[child] if child else [])
        s.parent_url = f"http://127.0.0.1:{ports[parent]}/graphql" if parent else ""
        return s

    sz = spec("shenzhen", "440300", "guangdong", None)
    gd = spec("guangdong", "440000", "central", sz)
    ce = spec("central", NATION, None, gd)
    servers = []
    for s in (sz, gd, ce):
        servers.append(await start_node(s, 1))
        b.servers.append(servers[-1])
    return servers[2], servers[0], urls["shenzhen"], urls["central"]


async def commit_to_subscriber(b: Bench, work: Path) -> dict[str, Any]:
    central, shenzhen, sz_url, ce_url = await three_tiers(b)
    op = b.token(NATION, ("VIEWER", "OPERATOR"))
    steps = b.n(200, 30)
    await import_at(shenzhen.port, "persons", persons_file(work, steps // 12 + 1), op)
    # The links come up with the first checks (every link_lease_s / 3): wait for the central
    # node's link to Guangdong to be up, through its own metrics of requests to children.
    commits, arrived = Commits(sz_url), Commits(ce_url)  # the commit, and the push's arrival at the top
    await commits.start()
    await arrived.start()
    sub = Subscriber(central.port, b.token())
    try:
        await sub.open()
        latencies, reported, pushed = [], [], []
        for i in range(steps):
            commits.drain()
            arrived.drain()
            t0 = time.perf_counter()
            task = asyncio.create_task(import_at(shenzhen.port, "contributions", contribution_file(work, i), op))
            got = await asyncio.wait_for(sub.next(), WAIT_S)
            t_sub = time.perf_counter()
            await task
            reported.append(time.perf_counter() - t0)
            t_commit = await asyncio.wait_for(commits.queue.get(), WAIT_S)
            if b'"contributorMonths":' + str(i + 1).encode() not in got:
                raise AssertionError(f"step {i}: the subscriber got {got[:300]!r}")
            latencies.append(t_sub - t_commit)
            pushed.append(await asyncio.wait_for(arrived.queue.get(), WAIT_S) - t_commit)
        # The recomputation each update needs, for reference: a national rollup at the central node
        # that no cache holds (each period asked once), through both tiers below.
        cold = []
        for k in range(12):
            q = json.dumps({"query": WATCH.replace("subscription", "query"),
                            "variables": {"p": {"from": f"2024-{1 + k:02d}", "to": "2025-12"}}}).encode()
            t0 = time.perf_counter()
            status, body = await http(central.port, "POST", "/graphql", q, b.token(), "application/json")
            cold.append(time.perf_counter() - t0)
            if status != 200 or b'"errors"' in body:
                raise AssertionError(f"cold rollup: HTTP {status}: {body[:300]!r}")
    finally:
        await sub.close()
        await commits.close()
        await arrived.close()
        b.stop_all()
    return {"steps": steps, "commit_to_subscriber": _stats(latencies), "import_reported": _stats(reported),
            "commit_to_central_version": _stats(pushed),
            "cold_national_rollup": _stats(cold)}


def _stats(xs: list[float]) -> dict[str, float]:
    return {"n": len(xs), "median": percentile(xs, 50), "p99": percentile(xs, 99), "max": max(xs)}


async def many_subscribers(b: Bench, work: Path) -> list[dict[str, Any]]:
    url = await _db("bench_live_fan")
    node = await start_node(NodeSpec("fan", NATION, url), 1)
    b.servers.append(node)
    op = b.token(NATION, ("VIEWER", "OPERATOR"))
    tok = b.token()
    steps = b.n(30, 8)
    counts = [1, 100, 1000, 3000] if not b.quick else [1, 100, 1000]
    await import_at(node.port, "persons", persons_file(work, len(counts) * steps // 12 + 2), op)
    commits = Commits(url)
    await commits.start()
    out, done = [], 0
    try:
        for n in counts:
            subs = [Subscriber(node.port, tok) for _ in range(n)]
            for k in range(0, n, 200):  # connect in batches: the listen backlog is bounded
                await asyncio.gather(*(s.open() for s in subs[k:k + 200]))
            first, last = [], []
            c0, cpu0 = await computations(node.port, op), cpu_seconds(node.pid)
            for _ in range(steps):
                commits.drain()
                task = asyncio.create_task(import_at(node.port, "contributions", contribution_file(work, done), op))
                done += 1
                arrived: list[float] = []

                async def one(s: Subscriber, arrived: list[float] = arrived) -> None:
                    await s.next()
                    arrived.append(time.perf_counter())

                await asyncio.wait_for(asyncio.gather(*(one(s) for s in subs)), WAIT_S)
                await task
                t_commit = await asyncio.wait_for(commits.queue.get(), WAIT_S)
                first.append(min(arrived) - t_commit)
                last.append(max(arrived) - t_commit)
            cpu = (cpu_seconds(node.pid) - cpu0) / steps
            # one scrape of /metrics, taken after the CPU reading
            per_update = (await computations(node.port, op) - c0) / steps
            out.append({"subscribers": n, "cpu_ms_per_update": cpu * 1e3, "computations_per_update": per_update,
                        "first": _stats(first), "last": _stats(last)})
            await asyncio.gather(*(s.close() for s in subs))
    finally:
        await commits.close()
        b.stop_all()
    return out


async def case_live(b: Bench) -> None:
    work = cluster.BENCH_DIR / "run" / "live"
    work.mkdir(parents=True, exist_ok=True)
    tiers = await commit_to_subscriber(b, work)
    fan = await many_subscribers(b, work)
    b.results["live"] = {"three_tiers": tiers, "many_subscribers": fan}
    c, r = tiers["commit_to_subscriber"], tiers["import_reported"]
    b.rows += [
        Row("11 live", f"commit at a county node -> subscriber at the central node ({tiers['steps']} imports)",
            ms(c["median"]), ms(c["p99"]), "", f"p99 < 250 ms: {'met' if c['p99'] < 0.25 else 'MISSED'}"),
        Row("11 live", "  of which: commit -> the central node's version moved (two pushes, two commits)",
            ms(tiers["commit_to_central_version"]["median"]), ms(tiers["commit_to_central_version"]["p99"])),
        Row("11 live", "  the import's response (reported done: every ancestor acknowledged)", ms(r["median"]),
            ms(r["p99"])),
        Row("11 live", "  a cold national rollup at the central node (the recomputation of each update)",
            ms(tiers["cold_national_rollup"]["median"]), ms(tiers["cold_national_rollup"]["p99"])),
    ]
    base = fan[0]["cpu_ms_per_update"]
    for f in fan:
        b.rows.append(Row("11 live", f"{f['subscribers']:,} subscribers, one node: {f['cpu_ms_per_update']:.1f} ms CPU "
                                     f"and {f['computations_per_update']:.2f} answers computed per update; "
                                     "commit -> last subscriber", ms(f["last"]["median"]), ms(f["last"]["p99"]),
                          f"{f['cpu_ms_per_update'] / base:.2f}x CPU of 1 subscriber"))


async def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.live", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer imports and subscribers")
    args = ap.parse_args(argv)
    from .run import table

    cluster.server()
    b = Bench(args.quick, None, None)  # type: ignore[arg-type] - this case needs no data set
    try:
        await case_live(b)
    finally:
        b.stop_all()
    print(table(b.rows))
    print(json.dumps(b.results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(asyncio.run(main()))
