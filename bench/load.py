"""A small HTTP/1.1 keep-alive client on asyncio streams, and the measurements built on it.

The load generator runs in the benchmark's own process while the servers run in
theirs; a lean client (pre-built request bytes, no per-request object churn)
keeps the client's share of the 2 cores small and equal for every server it
measures. Loops are bounded in count and time, and only ever reach 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import statistics
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil

LOOPBACK = "127.0.0.1"


class HttpError(Exception):
    pass


class Conn:
    """One keep-alive connection to 127.0.0.1:port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(LOOPBACK, self.port, limit=2**24)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
            self.reader = self.writer = None

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        for attempt in (0, 1):
            if self.writer is None:
                await self._open()
            assert self.reader is not None and self.writer is not None
            try:
                self.writer.write(raw)
                head = await self.reader.readuntil(b"\r\n\r\n")
                break
            except (asyncio.IncompleteReadError, ConnectionError):
                await self.close()
                if attempt:
                    raise
        reader = self.reader
        assert reader is not None
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for ln in lines[1:]:
            if ":" in ln:
                k, v = ln.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            body = b"".join(parts)
        else:
            body = await reader.read()
            await self.close()
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, body


def post(path: str, payload: Any, token: str | None = None, host_port: int = 0) -> bytes:
    """The bytes of one POST with a JSON body."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{host_port}", "Content-Type: application/json",
            "Accept: application/json", f"Content-Length: {len(body)}"]
    if token:
        head.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def gql(query: str, variables: dict[str, Any] | None, token: str | None, path: str = "/graphql") -> bytes:
    return post(path, {"query": query, "variables": variables or {}}, token)


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


def check_graphql(status: int, body: bytes) -> dict[str, Any]:
    if status != 200:
        raise HttpError(f"HTTP {status}: {body[:300]!r}")
    doc = json.loads(body)
    if doc.get("errors"):
        raise HttpError(f"GraphQL errors: {json.dumps(doc['errors'])[:500]}")
    return doc  # type: ignore[no-any-return]


# ---------------------------------------------------------------- statistics


def percentile(xs: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not xs:
        return math.nan
    s = sorted(xs)
    k = (len(s) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


@dataclass
class Stats:
    n: int
    median: float
    p99: float
    mean: float
    min: float
    max: float

    @classmethod
    def of(cls, xs: Sequence[float]) -> Stats:
        return cls(len(xs), statistics.median(xs), percentile(xs, 99), statistics.fmean(xs), min(xs), max(xs))

    def to_json(self) -> dict[str, float]:
        return {"n": self.n, "median_ms": self.median * 1e3, "p99_ms": self.p99 * 1e3, "mean_ms": self.mean * 1e3,
                "min_ms": self.min * 1e3, "max_ms": self.max * 1e3}


async def timed(fn: Callable[[], Awaitable[Any]], n: int, warmup: int = 3, budget_s: float | None = None) -> Stats:
    """Run ``fn`` sequentially ``n`` times (after ``warmup`` untimed runs); stop early past ``budget_s``."""
    for _ in range(warmup):
        await fn()
    xs: list[float] = []
    start = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        await fn()
        xs.append(time.perf_counter() - t0)
        if budget_s is not None and time.perf_counter() - start > budget_s and len(xs) >= 3:
            break
    return Stats.of(xs)


# ---------------------------------------------------------------- memory


class RssSampler:
    """Samples the summed RSS of a process tree (e.g. a uvicorn supervisor and its workers)."""

    def __init__(self, pids: Sequence[int], interval: float = 0.5) -> None:
        self.roots = [psutil.Process(p) for p in pids]
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.t0 = time.monotonic()

    def rss(self) -> int:
        total = 0
        for r in self.roots:
            try:
                procs = [r, *r.children(recursive=True)]
            except psutil.Error:
                continue
            for p in procs:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic() - self.t0, self.rss()))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak(self) -> int:
        return max((s for _, s in self.samples), default=0)

    def drift(self) -> dict[str, float]:
        """RSS over the first and last tenth of the run: flat memory shows as growth near 0."""
        if len(self.samples) < 10:
            return {}
        k = max(len(self.samples) // 10, 1)
        first = statistics.fmean(s for _, s in self.samples[k:2 * k])  # skip the warm-up tenth
        last = statistics.fmean(s for _, s in self.samples[-k:])
        return {"rss_early_mb": first / 2**20, "rss_late_mb": last / 2**20, "growth_pct": (last / first - 1) * 100,
                "peak_mb": self.peak / 2**20}


# ---------------------------------------------------------------- closed-loop load


@dataclass
class Op:
    name: str
    raw: Callable[[random.Random], bytes]


@dataclass
class LoadResult:
    clients: int
    seconds: float
    ops: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    first_errors: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.ops.values()) + sum(self.errors.values())

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def all_latencies(self) -> list[float]:
        return [x for v in self.ops.values() for x in v]

    def to_json(self) -> dict[str, Any]:
        lat = self.all_latencies()
        out: dict[str, Any] = {"clients": self.clients, "seconds": self.seconds, "requests": self.requests,
                               "req_per_s": self.requests / self.seconds, "errors": self.error_count,
                               "first_errors": self.first_errors[:5]}
        if lat:
            out["latency"] = Stats.of(lat).to_json()
        out["per_op"] = {k: Stats.of(v).to_json() for k, v in self.ops.items() if v}
        return out


async def closed_loop(port: int, ops: Sequence[Op], clients: int, seconds: float, max_requests: int = 2_000_000,
                      seed: int = 7, validate: Callable[[int, bytes], Any] = check_graphql) -> LoadResult:
    """``clients`` connections each sending its next request as soon as the last answer arrived,
    cycling through ``ops``, for ``seconds`` (and at most ``max_requests`` in all)."""
    res = LoadResult(clients, seconds, {o.name: [] for o in ops}, {o.name: 0 for o in ops})
    sent = 0
    start = time.perf_counter()
    deadline = start + seconds

    async def client(i: int) -> None:
        nonlocal sent
        rng = random.Random(seed * 1000 + i)
        conn = Conn(port)
        k = i
        try:
            while time.perf_counter() < deadline and sent < max_requests:
                sent += 1
                op = ops[k % len(ops)]
                k += 1
                raw = op.raw(rng)
                t0 = time.perf_counter()
                try:
                    status, body = await conn.send(raw)
                    dt = time.perf_counter() - t0
                    validate(status, body)
                    res.ops[op.name].append(dt)
                except (HttpError, OSError, asyncio.IncompleteReadError, ValueError) as e:
                    res.errors[op.name] += 1
                    if len(res.first_errors) < 20:
                        res.first_errors.append(f"{op.name}: {e}"[:400])
                    await conn.close()
        finally:
            await conn.close()

    await asyncio.gather(*(client(i) for i in range(clients)))
    res.seconds = time.perf_counter() - start
    return res
