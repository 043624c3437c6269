"""Prometheus metrics of one node, served at ``/metrics``.

One ``Metrics`` per runtime, each with its own registry (several in-process nodes in
a test do not mix). With several workers (``tierfed serve --workers N``) the CLI sets
``PROMETHEUS_MULTIPROC_DIR`` before anything imports prometheus_client: every worker
writes its values to files there and a scrape of any worker adds them all up.

Labels are bounded: an operation is labelled by its name only when that name is
registered (the dashboard's operations, the node's persisted operations, the
federation's own forward request); any other name counts as ``unregistered``.
Outcomes are ``ok``, a contract error code, or ``partial:`` and a code.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
from graphql import OperationDefinitionNode, parse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as mp
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from . import observe
from .auth import bearer
from .errors import TierfedError
from .tiers import background

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger("tierfed.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DASHBOARD_OPERATIONS = ("Dashboard", "RegionDirectory", "PoolHistory", "Person")
FORWARD_OPERATION = "TierfedForward"
UNREGISTERED = "unregistered"
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def operation_names(documents: list[str]) -> set[str]:
    names = set()
    for doc in documents:
        try:
            parsed = parse(doc)
        except Exception:  # noqa: BLE001 - a bad stored document is refused when it is run
            continue
        names |= {d.name.value for d in parsed.definitions if isinstance(d, OperationDefinitionNode) and d.name}
    return names


class Metrics:
    def __init__(self, registered: set[str]) -> None:
        self.registered = frozenset(registered | set(DASHBOARD_OPERATIONS) | {FORWARD_OPERATION})
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("tierfed_requests", "GraphQL requests by operation and outcome",
                                ["operation", "outcome"], registry=r)
        self.duration = Histogram("tierfed_request_duration_seconds", "Time to answer a GraphQL request",
                                  ["operation"], buckets=DURATION_BUCKETS, registry=r)
        self.child_requests = Counter("tierfed_child_requests", "Requests to child nodes by child and outcome",
                                      ["child", "outcome"], registry=r)
        self.child_duration = Histogram("tierfed_child_request_duration_seconds", "Time a child node took to answer",
                                        ["child"], buckets=DURATION_BUCKETS, registry=r)
        self.sql_statements = Counter("tierfed_sql_statements", "SQL statements run for requests", registry=r)
        self.sql_seconds = Counter("tierfed_sql_seconds", "Time spent in SQL statements for requests", registry=r)
        self.cache = Counter("tierfed_cache_lookups", "Parse, validation and answer cache lookups",
                             ["cache", "result"], registry=r)
        self.pool = Gauge("tierfed_db_pool_connections", "Database pool connections by state",
                          ["state"], registry=r, multiprocess_mode="livesum")
        self.import_rows = Counter("tierfed_import_rows", "Rows of files imported over HTTP, by kind and outcome",
                                   ["kind", "outcome"], registry=r)
        self.import_duration = Histogram("tierfed_import_duration_seconds", "Time an import over HTTP took",
                                         ["kind"], buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600), registry=r)
        # Read from the database at each scrape, by whichever worker serves it: the latest reading of
        # any live worker is the value ("max" kept a worker's old reading once the queue drained).
        self.changes_waiting = Gauge("tierfed_changes_waiting", "Changes across nodes waiting for a node",
                                     ["node"], registry=r, multiprocess_mode="livemostrecent")
        self.changes_waiting_age = Gauge("tierfed_changes_waiting_oldest_seconds",
                                         "Age of the oldest change waiting for a node", ["node"], registry=r,
                                         multiprocess_mode="livemostrecent")
        self.live_subscriptions = Gauge("tierfed_live_subscriptions", "Subscriptions served (live answers)",
                                        registry=r, multiprocess_mode="livesum")
        self.live_watches = Gauge("tierfed_live_watches", "Distinct live questions (each computed once per change)",
                                  registry=r, multiprocess_mode="livesum")
        self.live_computations = Counter("tierfed_live_computations", "Answers computed for live questions",
                                         registry=r)
        self._waiting_nodes: set[str] = set()

    def label(self, name: str | None) -> str:
        return name if name in self.registered else UNREGISTERED

    def request_done(self, req: observe.RequestInfo) -> None:
        self.requests.labels(req.metric_operation, req.outcome).inc()
        self.duration.labels(req.metric_operation).observe(req.elapsed())
        if req.sql_statements:
            self.sql_statements.inc(req.sql_statements)
            self.sql_seconds.inc(req.sql_seconds)
        for c in req.children:
            self.child_requests.labels(c.child, c.outcome).inc()
            self.child_duration.labels(c.child).observe(c.seconds)
        for cache, result in req.cache:
            self.cache.labels(cache, result).inc()

    def import_done(self, kind: str, outcome: str, rows: int, seconds: float) -> None:
        self.import_rows.labels(kind, outcome).inc(rows)
        self.import_duration.labels(kind).observe(seconds)

    def changes_state(self, waiting: list[tuple[str, int, float]], nodes: set[str]) -> None:
        """Changes waiting per node; labels are the node's configured parent and children only."""
        seen = set()
        for node, n, oldest in waiting:
            label = node if node in nodes else "other"
            seen.add(label)
            self.changes_waiting.labels(label).set(n)
            self.changes_waiting_age.labels(label).set(oldest)
        # Every configured node, and any label this worker set before, reads 0 when nothing waits:
        # this reading is the latest, whichever worker made the one before.
        for gone in (self._waiting_nodes | nodes) - seen:
            self.changes_waiting.labels(gone).set(0)
            self.changes_waiting_age.labels(gone).set(0)
        self._waiting_nodes |= seen

    def pool_state(self, pool: asyncpg.Pool) -> None:
        size, idle = pool.get_size(), pool.get_idle_size()
        self.pool.labels("in_use").set(size - idle)
        self.pool.labels("idle").set(idle)

    def exposition(self) -> bytes:
        if multiprocess():
            registry = CollectorRegistry()
            LiveWorkersCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


def sweep_dead(path: str) -> None:
    """Forget the gauges of workers that are gone (one that crashed and was restarted): their last
    values would stay in every sum and maximum. Their counts (counters, histograms) stay."""
    pids: set[int] = set()
    for f in Path(path).glob("gauge_*.db"):
        tail = f.stem.rsplit("_", 1)[-1]
        if tail.isascii() and tail.isdigit():
            pids.add(int(tail))
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            mp.mark_process_dead(pid, path)  # its live gauges
            for f in Path(path).glob(f"gauge_*_{pid}.db"):  # and the others ("max": the changes waiting)
                f.unlink(missing_ok=True)
        except PermissionError:
            pass  # alive, under another user


class LiveWorkersCollector(mp.MultiProcessCollector):
    """Every worker's metrics, the gauges of workers that are gone left out."""

    def collect(self) -> Any:
        sweep_dead(self._path)
        return super().collect()


async def metrics_endpoint(request: Request) -> Response:
    """``/metrics`` on the node's own address: a token with the configured role is needed."""
    rt: Runtime = request.app.state.runtime
    try:
        caller = await rt.keys.verify_async(bearer(request.headers.get("authorization")), rt.tree)
    except TierfedError as e:
        return PlainTextResponse(e.message + "\n", 401, headers={"WWW-Authenticate": "Bearer"})
    if not caller.has(rt.cfg.metrics.role):
        return PlainTextResponse(f"/metrics needs a token with the {rt.cfg.metrics.role} role\n", 403)
    rt.metrics.pool_state(rt.pool)
    await scrape_state(rt)
    return Response(rt.metrics.exposition(), media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})



SCRAPE_READ_S = 2.0  # a scrape waits at most this long for the database


async def scrape_state(rt: Runtime) -> None:
    """What /metrics reads from the database at each scrape: changes waiting for a node."""
    from .tiers.changestore import waiting_by_node

    nodes = {c.name for c in rt.cfg.children} | ({rt.cfg.parent.name} if rt.cfg.parent else set())
    try:
        waiting = await asyncio.wait_for(waiting_by_node(rt.pool), SCRAPE_READ_S)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as e:
        # The database down: every other metric (the outage's own counts among them) is still
        # served; the changes' gauges keep what they last read.
        log.info("metrics: the changes waiting could not be read (%s); served without them", type(e).__name__)
        return
    rt.metrics.changes_state(waiting, nodes)


def refresh_metrics(rt: Runtime, every_s: float) -> asyncio.Task[None]:
    """``scrape_state`` in the background (a kept loop: ``tiers.background``), for a node whose
    metrics are served elsewhere."""
    return background.every("metrics-refresh", every_s, lambda: scrape_state(rt), first_at_once=True)
