"""``python -m bench.changes [--persons N]``: changes across nodes (issue 11).

- A national PENSION (then UNEMPLOYMENT) raise, province pools to one national pool,
  on three topologies holding the same records: one national node (the baseline,
  measured in the same run), the demo topology (central + Guangdong, Sichuan,
  Zhejiang) and central + eight province nodes. Time of each applied raise, the
  median of ten dry runs, and the requests the coordinator sends each child.
- Transfers per second from Guangdong to Sichuan, coordinated by the central node of
  the demo topology, with p50 and p99, for a sweep of concurrent clients (``--clients
  2,4,8``: on a CPU-bound machine latency is clients / rate, Little's law, so the sweep
  shows the curve rather than one point of it); the same transfers on the one national
  node as the baseline, with the same sweep.
- Where a coordinated change's time goes (``Changes.timings``): the coordinator's phases
  and, per child, each step's round trip and the child's own handling time (medians).

Province nodes run as ``tierfed serve`` processes; the coordinator (and the single
node) run in this process so that their counters can be read, on uvloop's event loop as
``tierfed serve`` runs every node (``--loop asyncio``: asyncio's own); the raises' caller and
the transfers' clients run in a process of their own (``--driver own-process``, the default;
``in-process`` puts them on the coordinator's event loop, as the bench did before). A
topology's raises start once its PostgreSQL servers are settled (a checkpoint, no autovacuum at
work: the demo's transfers just before leave them busy); each
applied raise starts once the previous one has been told to every participant, and its
figures include the CPU time the whole machine spent meanwhile; ``--trace`` prints every
statement the coordinator's node ran for it. Everything runs on a
private embedded PostgreSQL in a temporary directory: one server holding every node's
database (``--pg shared``, the default: one WAL, every node's flushed commits queue on
it), or one server per node (``--pg per-node``: each node flushes its own WAL, as
deployed nodes do; the single node's server is the central one's).

``--rounds N`` measures each topology N times, each round on fresh copies of the loaded
databases (the applied raise can be made once per database): the figures are the
medians over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvicorn
from tierfed.tiers.identity import generate_key_pair
from tierfed.tiers.store import load_tree
from tierfed.tiers.tree import Tree

from tierfed.app import create_app
from tierfed.auth import Keys
from tierfed.config import AuthConfig, NodeConfig, parse
from tierfed.db import migrate
from tierfed.generator import Options, generate
from tierfed.importer import import_file
from tierfed.runtime import Runtime, open_runtime

from .cluster import with_db
from .topology import free_port

SECRET = "bench-changes-" + "x" * 32
EIGHT = ("440000", "510000", "330000", "320000", "370000", "410000", "420000", "430000")
DEMO = ("440000", "510000", "330000")
KINDS = ("pools", "employers", "persons", "contributions", "benefits")
RAISE = """mutation($in: RaisePoolingLevelInput!) { raisePoolingLevel(input: $in) { state transferred
  closed { id } pool { openingBalance } } }"""
TRANSFER = "mutation($in: TransferInsuranceInput!) { transferInsurance(input: $in) { transfer { state } } }"
LIMITS = {"max_aliases": 5000, "max_root_fields": 5000, "max_cost": 100_000_000}


def node_data(name: str, region: str, port: int, db: str, keys: Path, parent: int | None,
              children: list[tuple[str, str, int]]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "node": {"name": name, "region": region, "listen": f"127.0.0.1:{port}", "database_url": db,
                 "check_children_at_start": False, "private_key_file": str(keys / f"{name}.key")},
        "auth": {"jwt_secret": SECRET}, "limits": LIMITS,
        "children": [{"name": n, "region": r, "url": f"http://127.0.0.1:{p}/graphql", "timeout_s": 30,
                      "public_key_file": str(keys / f"{n}.pub")} for n, r, p in children]}
    if parent is not None:
        data["parent"] = {"name": "central", "url": f"http://127.0.0.1:{parent}/graphql",
                          "public_key_file": str(keys / "central.pub"), "timeout_s": 30}
    return data


def toml(data: dict[str, Any]) -> str:
    def v(x: Any) -> str:
        return json.dumps(x) if not isinstance(x, bool) else str(x).lower()

    out = []
    for table in ("node", "auth", "limits", "parent"):
        if table in data:
            out += [f"[{table}]"] + [f"{k} = {v(x)}" for k, x in data[table].items()] + [""]
    for c in data["children"]:
        out += ["[[children]]"] + [f"{k} = {v(x)}" for k, x in c.items()] + [""]
    return "\n".join(out)


class InProcess:
    def __init__(self, cfg: NodeConfig, rt: Runtime, server: uvicorn.Server, task: asyncio.Task[Any]) -> None:
        self.cfg, self.rt, self.server, self.task = cfg, rt, server, task

    @classmethod
    async def start(cls, cfg: NodeConfig, db: str) -> InProcess:
        rt = await open_runtime(cfg, db, check_children=False)
        server = uvicorn.Server(uvicorn.Config(create_app(cfg, rt), host="127.0.0.1", port=cfg.port,
                                               log_level="warning", access_log=False))
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        task = asyncio.get_running_loop().create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.02)
        return cls(cfg, rt, server, task)

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task
        await self.rt.close()


class Topology:
    """A coordinator in this process over province nodes as processes (none: one national node)."""

    def __init__(self, name: str, provinces: tuple[str, ...]) -> None:
        self.name, self.provinces = name, provinces
        self.procs: list[subprocess.Popen[bytes]] = []
        self.central: InProcess | None = None
        self.dbs: dict[str, str] = {}

    def owner(self, tree: Tree) -> Callable[[str], str]:
        def split(region: str) -> str:
            return next((p for p in self.provinces if tree.within(region, p)), "central")

        return split

    async def start(self, keys: Path, base: Path) -> None:
        ports = {p: free_port() for p in self.provinces}
        central_port = free_port()
        for p in self.provinces:
            cfg = base / f"{self.name}-{p}.toml"
            cfg.write_text(toml(node_data(p, p, ports[p], self.dbs[p], keys, central_port, [])))
            self.procs.append(subprocess.Popen([str(Path(sys.executable).parent / "tierfed"), "serve", "--config",
                                                str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        async with httpx.AsyncClient() as c:
            for p in self.provinces:
                for _ in range(300):
                    try:
                        await c.get(f"http://127.0.0.1:{ports[p]}/healthz")
                        break
                    except httpx.HTTPError:
                        await asyncio.sleep(0.1)
        cfg = parse(node_data("central", "000000", central_port, self.dbs["central"], keys, None,
                              [(p, p, ports[p]) for p in self.provinces]))
        self.central = await InProcess.start(cfg, self.dbs["central"])

    async def stop(self) -> None:
        if self.central:
            await self.central.stop()
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:  # a loaded machine: not left running
                p.kill()
                p.wait(10)


async def post(client: httpx.AsyncClient, port: int, query: str, variables: dict[str, Any], tok: str) -> dict[str, Any]:
    r = await client.post(f"http://127.0.0.1:{port}/graphql", json={"query": query, "variables": variables},
                          headers={"Authorization": f"Bearer {tok}"})
    return r.json()  # type: ignore[no-any-return]


def machine_cpu_ms() -> float:
    """CPU time spent so far by every thread of every process on the machine (ms, from each
    thread's schedstat: nanoseconds). Before and after a raise: what the raise cost the whole
    machine, every node and every PostgreSQL backend together (and whatever else ran)."""
    total = 0
    for path in Path("/proc").glob("[0-9]*/task/*/schedstat"):
        try:
            total += int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):  # a thread that ended meanwhile
            continue
    return total / 1e6


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def phase_medians(timings: list[dict[str, Any]]) -> dict[str, Any]:
    """Median ms of each phase over the changes timed, and per child step (round trip, handled)."""
    out: dict[str, Any] = {}
    keys = sorted({k for t in timings for k, v in t.items() if isinstance(v, (int, float))})
    for k in keys:
        xs = [t[k] for t in timings if isinstance(t.get(k), (int, float))]
        out[k] = round(statistics.median(xs), 1)
    kids = sorted({k for t in timings for k in t.get("children", {})})
    for k in kids:
        rtt = [t["children"][k][0] for t in timings if k in t.get("children", {})]
        own = [t["children"][k][1] for t in timings if k in t.get("children", {}) and t["children"][k][1] is not None]
        out[k] = (round(statistics.median(rtt), 1), round(statistics.median(own), 1) if own else None)
    return out


def timings_of(rt: Runtime) -> list[dict[str, Any]] | None:
    """Start keeping the coordinator's phase timings (None with a tree that has none: an older one)."""
    if not hasattr(rt.changes, "timings"):
        return None
    rt.changes.timings = []
    return rt.changes.timings  # type: ignore[no-any-return]


class Caller:
    """Sends the raises and times each, in this process (``in-process``) or in a process of its
    own (``own-process``): a caller is another program, and on the coordinator's event loop its
    reading of the answer would queue behind what the coordinator starts once it has answered
    (telling the participants the decision), which no real caller waits for."""

    def __init__(self, port: int, tok: str, driver: str) -> None:
        self.port, self.tok, self.driver = port, tok, driver
        self.ex: concurrent.futures.ProcessPoolExecutor | None = None
        self.client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Caller:
        if self.driver == "own-process":
            self.ex = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            await self.post(RAISE, {"in": {}})  # the process started and connected before anything is timed
        else:
            self.client = httpx.AsyncClient(timeout=120)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.ex is not None:
            self.ex.shutdown()
        if self.client is not None:
            await self.client.aclose()

    async def post(self, query: str, variables: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        """(ms, answer) of one request."""
        if self.ex is not None:
            return await asyncio.get_running_loop().run_in_executor(  # type: ignore[no-any-return]
                self.ex, _timed_post_here, self.port, query, variables, self.tok)
        assert self.client is not None
        t0 = time.perf_counter()
        got = await post(self.client, self.port, query, variables, self.tok)
        return (time.perf_counter() - t0) * 1e3, got


_CLIENT: httpx.Client | None = None


def _timed_post_here(port: int, query: str, variables: dict[str, Any], tok: str) -> tuple[float, dict[str, Any]]:
    """One timed request from the caller's own process (its connection kept between requests)."""
    global _CLIENT
    if _CLIENT is None:
        _CLIENT = httpx.Client(timeout=120)
    t0 = time.perf_counter()
    r = _CLIENT.post(f"http://127.0.0.1:{port}/graphql", json={"query": query, "variables": variables},
                     headers={"Authorization": f"Bearer {tok}", "tierfed-timing": "1"})
    return (time.perf_counter() - t0) * 1e3, r.json()


async def quiesce(t: Topology, limit_s: float = 20.0) -> float:
    """Before a topology's raises, the PostgreSQL servers of its nodes settled: a checkpoint on
    each, then no autovacuum at work on any (up to ``limit_s``). The servers are shared by the
    topologies of a run, and the demo's transfers just before leave them writing and vacuuming;
    every topology, the single node's included, starts its raises from the same quiet. Returns
    the seconds it waited."""
    t0 = time.monotonic()
    cons = [await asyncpg.connect(url) for url in t.dbs.values()]
    try:
        for con in cons:
            await con.execute("checkpoint")
        while time.monotonic() - t0 < limit_s:
            busy = [await con.fetchval("select count(*) from pg_stat_activity where backend_type = 'autovacuum worker'")
                    for con in cons]
            if not any(busy):
                break
            await asyncio.sleep(0.2)
    finally:
        for con in cons:
            await con.close()
    return time.monotonic() - t0


async def raises(t: Topology, tok: str, driver: str, trace: bool = False) -> dict[str, Any]:
    assert t.central is not None
    rt, port = t.central.rt, t.central.cfg.port
    out: dict[str, Any] = {"dry_ms": [], "applied_ms": [], "requests_per_child": {}, "driver": driver}
    out["quiesced_s"] = await quiesce(t)
    timings = timings_of(rt)
    async with Caller(port, tok, driver) as c:
        for i in range(10):
            inp = {"scheme": "PENSION", "region": "000000", "effectiveFrom": "2025-04", "idempotencyKey": f"d{i}",
                   "dryRun": True}
            ms, got = await c.post(RAISE, {"in": inp})
            out["dry_ms"].append(ms)
            assert "errors" not in got, got
        if timings is not None:
            out["dry_phases"] = phase_medians(timings)
            timings.clear()
        sent0 = dict(rt.changes.sent)
        gql0 = dict(rt.clients.requests)
        for scheme in ("PENSION", "UNEMPLOYMENT"):
            inp = {"scheme": scheme, "region": "000000", "effectiveFrom": "2025-04", "idempotencyKey": f"a-{scheme}"}
            cpu0 = machine_cpu_ms()
            if trace:  # every statement the coordinator's node runs for the raise, with its time
                rt.changes.statements.timed = []
                rt.statements.timed = []
            ms, got = await c.post(RAISE, {"in": inp})
            out["applied_ms"].append(ms)
            # the node's own time over the request (the caller's round trip less this: the network)
            out.setdefault("applied_node_ms", []).append(got.get("extensions", {}).get("timing", {}).get("ms"))
            if trace:
                sqls = [*rt.changes.statements.timed, *rt.statements.timed]
                rt.changes.statements.timed = rt.statements.timed = None
                print(f"  {t.name} {scheme}: {ms:.1f} ms at the caller, {out['applied_node_ms'][-1]} ms at the "
                      f"coordinator's node, {len(sqls)} statements there:", flush=True)
                for q, e in sqls:
                    print(f"    {e * 1e3:6.2f} ms  {' '.join(q.split())[:90]}", flush=True)
            out.setdefault("applied_cpu_ms", []).append(machine_cpu_ms() - cpu0)
            assert "errors" not in got and got["data"]["raisePoolingLevel"]["state"] == "COMMITTED", got
            out.setdefault("transferred", {})[scheme] = got["data"]["raisePoolingLevel"]["transferred"]
            out["closed"] = len(got["data"]["raisePoolingLevel"]["closed"])
            # The next raise starts on a settled federation (every participant told and applied),
            # as raises come one at a time, not while the last one's commits are still running.
            await rt.changes.settled()
        if timings is not None:
            out["applied_phases"] = timings[:]
            rt.changes.timings = None
        for p in t.provinces:
            out["requests_per_child"][p] = {
                "change_steps": (rt.changes.sent.get(p, 0) - sent0.get(p, 0)) / 2,
                "graphql": (rt.clients.requests.get(p, 0) - gql0.get(p, 0)) / 2}
    return out


async def _drive(port: int, tok: str, persons: list[str], to: str, clients: int) -> tuple[list[float], int, float]:
    """Send the transfers, ``clients`` at once: their latencies (ms), how many failed, the wall time (s)."""
    lat: list[float] = []
    failed = 0
    queue = list(persons)

    async def worker(c: httpx.AsyncClient) -> None:
        nonlocal failed
        while queue:
            idn = queue.pop()
            t0 = time.perf_counter()
            got = await post(c, port, TRANSFER, {"in": {"idNumber": idn, "to": to, "effectiveFrom": "2025-07",
                                                          "idempotencyKey": f"t-{idn}"}}, tok)
            lat.append((time.perf_counter() - t0) * 1e3)
            if "errors" in got:
                failed += 1

    async with httpx.AsyncClient(timeout=60) as c:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(c) for _ in range(clients)))
        return lat, failed, time.perf_counter() - t0


def _drive_here(port: int, tok: str, persons: list[str], to: str, clients: int) -> tuple[list[float], int, float]:
    """``_drive`` in a process of its own (``--driver own-process``)."""
    return asyncio.run(_drive(port, tok, persons, to, clients))


async def transfers(port: int, tok: str, persons: list[str], to: str, clients: int = 8,
                    rt: Runtime | None = None, driver: str = "own-process") -> dict[str, Any]:
    """One row of the sweep. The coordinator runs in this process (its counters and timings are
    read here); with ``driver`` "own-process" the clients run in another process, so that their
    HTTP work does not queue on the coordinator's event loop; "in-process" is how the bench
    measured before (both on one loop: the federation's coordinator, awaiting more per transfer,
    paid for it more than the single node)."""
    timings = timings_of(rt) if rt is not None else None
    if driver == "own-process":
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as ex:
            lat, failed, wall = await asyncio.get_running_loop().run_in_executor(
                ex, _drive_here, port, tok, persons, to, clients)
    else:
        lat, failed, wall = await _drive(port, tok, persons, to, clients)
    out: dict[str, Any] = {"clients": clients, "driver": driver, "transfers": len(lat), "failed": failed,
                           "per_s": len(lat) / wall, "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99)}
    if timings is not None and rt is not None:
        out["phases"] = phase_medians(timings)
        rt.changes.timings = None
    return out


async def main(persons: int, pg: str = "shared", rounds: int = 1, only: tuple[str, ...] = (),
               clients: tuple[int, ...] = (2, 4, 8), per_row: int = 400, driver: str = "own-process",
               trace: bool = False) -> None:
    import pgserver

    base = Path(tempfile.mkdtemp(prefix="tierfed-bench-changes-"))
    names = ("central", *EIGHT)
    if pg == "per-node":
        servers = {n: pgserver.get_server(base / f"pg-{n}", cleanup_mode="delete") for n in names}
    else:
        one = pgserver.get_server(base / "pg", cleanup_mode="delete")
        servers = {n: one for n in names}
    admins = {n: servers[n].get_uri("postgres") for n in names}

    async def create(node: str, name: str, template: str | None = None) -> str:
        con = await asyncpg.connect(admins[node])
        await con.execute(f'create database "{name}"' + (f' template "{template}"' if template else ""))
        await con.close()
        return with_db(admins[node], name)

    tree: Tree | None = None
    for n in names:
        if n != "central" and servers[n] is servers["central"]:
            continue
        tmpl = await create(n, "tmpl")
        con = await asyncpg.connect(tmpl)
        await migrate(con)
        tree = tree or Tree(await load_tree(con))
        await con.close()
    assert tree is not None
    keys = base / "keys"
    keys.mkdir()
    for n in ("central", *EIGHT):
        generate_key_pair(keys / f"{n}.key", keys / f"{n}.pub")
    tops = [Topology("single", ()), Topology("demo", DEMO), Topology("eight", EIGHT)]
    # the single node is always measured: it is every other figure's baseline
    tops = [t for t in tops if not only or t.name in only or t.name == "single"]
    t0 = time.monotonic()
    for t in tops:
        data = base / f"data-{t.name}"
        generate(tree, data, Options(persons=persons, first=date(2025, 1, 1), last=date(2025, 6, 1), seed=11),
                 split=t.owner(tree))
        for n in ("central", *t.provinces):
            t.dbs[n] = await create(n, f"{t.name}_{n}", "tmpl")
            cfg = parse(node_data(n, "000000" if n == "central" else n, 1, t.dbs[n], keys, None,
                                  [(p, p, 2 + i) for i, p in enumerate(t.provinces)] if n == "central" else []))
            rt = await open_runtime(cfg, t.dbs[n], check_children=False)
            for kind in KINDS:
                f = data / n / f"{kind}.csv"
                if f.exists():
                    await import_file(rt.pool, rt.node, kind, f, progress=False)
            await rt.close()
    print(f"data: {persons} persons x 6 months, loaded into 3 topologies in {time.monotonic() - t0:.0f} s "
          f"(PostgreSQL: {pg}, {rounds} round(s))", flush=True)
    tok = Keys(AuthConfig(jwt_secret=SECRET)).sign("bench", "000000", ["VIEWER", "OPERATOR"], 3600)
    results: dict[str, Any] = {"persons": persons, "nproc": os.cpu_count(), "pg": pg, "rounds": rounds}
    loaded = {t.name: dict(t.dbs) for t in tops}
    for i in range(rounds):
        for t in tops:
            if rounds > 1:  # fresh copies of the loaded databases: the raise is made once per database
                t.dbs = {n: await create(n, f"{t.name}_{n}_r{i}", f"{t.name}_{n}") for n in loaded[t.name]}
            await t.start(keys, base)
            got = await raises(t, tok, driver, trace)
            if t.name in ("single", "demo"):
                con = await asyncpg.connect(t.dbs["440000" if t.provinces else "central"])
                ids = [r[0] for r in await con.fetch(
                    "select id_number from person where region_code like '44%' order by id_number limit $1",
                    per_row * len(clients))]
                await con.close()
                assert t.central is not None
                n = len(ids) // len(clients)
                got["sweep"] = [await transfers(t.central.cfg.port, tok, ids[j * n:(j + 1) * n], "510104", k,
                                                t.central.rt, driver)
                                for j, k in enumerate(clients)]
                got["transfers"] = got["sweep"][-1]
            await t.stop()
            t.procs = []
            r = results.setdefault(t.name, {"applied_ms": [], "dry_ms": [], "pension_ms": [], "rounds": []})
            r["rounds"].append(got)
            r["applied_ms"] += got["applied_ms"]
            r.setdefault("applied_cpu_ms", []).extend(got.get("applied_cpu_ms", []))
            r["pension_ms"].append(got["applied_ms"][0])
            r["dry_ms"] += got["dry_ms"]
            r["transferred"], r["closed"] = got["transferred"], got["closed"]
            r["requests_per_child"] = got["requests_per_child"]
            if "transfers" in got:
                r.setdefault("transfer_rounds", []).append(got["transfers"])
            print(f"round {i + 1}, {t.name}: applied {[round(x) for x in got['applied_ms']]} ms "
                  f"(CPU of the whole machine {[round(x) for x in got.get('applied_cpu_ms', [])]} ms)"
                  + "".join(f"; {x['clients']} clients: {x['per_s']:.0f}/s p99 {x['p99_ms']:.0f} ms"
                            for x in got.get("sweep", [])), flush=True)
    for t in tops:
        r = results[t.name]
        if "transfer_rounds" in r:
            xs = r["transfer_rounds"]
            r["transfers"] = {k: statistics.median(x[k] for x in xs) for k in ("per_s", "p50_ms", "p99_ms")}
            r["transfers"].update(transfers=sum(x["transfers"] for x in xs), failed=sum(x["failed"] for x in xs))
            r["sweep"] = []
            for k in clients:
                ys = [x for g in r["rounds"] for x in g["sweep"] if x["clients"] == k]
                row = {q: statistics.median(y[q] for y in ys) for q in ("per_s", "p50_ms", "p99_ms")}
                row.update(clients=k, transfers=sum(y["transfers"] for y in ys), failed=sum(y["failed"] for y in ys))
                phases = [y["phases"] for y in ys if "phases" in y]
                if phases:
                    row["phases"] = {q: statistics.median(p[q] for p in phases if isinstance(p.get(q), (int, float)))
                                     for q in phases[0] if isinstance(phases[0][q], (int, float))}
                    row["phases"].update({q: [statistics.median(p[q][0] for p in phases if q in p),
                                              statistics.median(p[q][1] for p in phases if q in p and p[q][1] is not None)]
                                          for q in phases[0] if isinstance(phases[0][q], (list, tuple))
                                          and phases[0][q][1] is not None})
                r["sweep"].append(row)
    single = statistics.median(results["single"]["applied_ms"])
    single_pension = statistics.median(results["single"]["pension_ms"])
    for t in tops:
        r = results[t.name]
        r["pension_median_ms"] = statistics.median(r["pension_ms"])
        r["pension_ratio_to_single"] = r["pension_median_ms"] / single_pension
        r["applied_median_ms"] = statistics.median(r["applied_ms"])
        r["dry_median_ms"] = statistics.median(r["dry_ms"])
        r["applied_cpu_median_ms"] = statistics.median(r["applied_cpu_ms"])
        r["ratio_to_single"] = r["applied_median_ms"] / single
        print(f"raise, {t.name:6} ({len(t.provinces)} province nodes): applied {r['applied_median_ms']:.0f} ms "
              f"({r['ratio_to_single']:.2f}x one node; PENSION alone {r['pension_median_ms']:.0f} ms, "
              f"{r['pension_ratio_to_single']:.2f}x; CPU of the whole machine {r['applied_cpu_median_ms']:.0f} ms), "
              f"dry run {r['dry_median_ms']:.0f} ms, "
              f"closed {r['closed']} pools, requests per child {r['requests_per_child']}")
        applied = [p for g in r["rounds"] for p in g.get("applied_phases", []) if p.get("kind") == "raise"]
        if applied:
            print(f"  raise phases at the coordinator, ms (PENSION and UNEMPLOYMENT, all rounds): "
                  f"{json.dumps(applied)}")
            print(f"  dry run phases (medians): {json.dumps(r['rounds'][-1].get('dry_phases'))}")
        for x in r.get("sweep", []):
            print(f"transfers on {t.name}, {x['clients']} clients (median of rounds): {x['per_s']:.0f}/s, "
                  f"p50 {x['p50_ms']:.0f} ms, p99 {x['p99_ms']:.0f} ms, {x['transfers']} sent, {x['failed']} failed"
                  + (f"; phases (medians, ms) {json.dumps(x['phases'])}" if "phases" in x else ""))
    same = {g["transferred"]["PENSION"] for t in tops for g in results[t.name]["rounds"]}
    print(f"the same transferred amount on every topology: {same}")
    assert len(same) == 1, "the raise moved different amounts on different topologies"
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    path = out / f"changes-{time.strftime('%Y%m%dT%H%M%S')}-{pg}.json"
    path.write_text(json.dumps(results, indent=1))
    print(f"written {path}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--persons", type=int, default=20_000)
    ap.add_argument("--pg", choices=("shared", "per-node"), default="shared",
                    help="one PostgreSQL server for every node's database, or one server per node")
    ap.add_argument("--rounds", type=int, default=1, help="measure each topology this many times on fresh copies")
    ap.add_argument("--only", action="append", choices=("demo", "eight"), default=[],
                    help="measure only this topology (and the single node, the baseline); repeatable")
    ap.add_argument("--clients", default="2,4,8", help="transfers: the concurrent clients of each row of the sweep")
    ap.add_argument("--per-row", type=int, default=400, help="transfers sent in each row of the sweep")
    ap.add_argument("--driver", choices=("own-process", "in-process"), default="own-process",
                    help="raises and transfers: the clients in a process of their own (default), or on the coordinator's "
                         "event loop in this process (how the bench measured before)")
    ap.add_argument("--trace", action="store_true",
                    help="print every SQL statement the coordinator's node runs for each applied raise, timed")
    ap.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop",
                    help="the event loop of the nodes run in this process (the coordinator, the single node): "
                         "uvloop's, as `tierfed serve` runs every node (default), or asyncio's own")
    args = ap.parse_args()
    run = main(args.persons, args.pg, args.rounds, tuple(args.only), tuple(int(x) for x in args.clients.split(",")),
               args.per_row, args.driver, args.trace)
    if args.loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run)
    else:
        asyncio.run(run)
