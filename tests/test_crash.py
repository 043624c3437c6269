"""Crash safety of changes across nodes: nodes as real processes (``tierfed serve``),
stopped dead at every named step (``TIERFED_CRASH_AT``) or by ``kill -9``, then
restarted. After recovery every node agrees on every change and the pools of the
whole federation add up to the fen: the origin pools' opening balances plus every
record's pooled contributions less benefits, with transfers in and out cancelling.

Topology: central (000000) with Guangdong (440000, itself the parent of Shenzhen,
440300) and Sichuan (510000) as child nodes: three tiers of processes.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from tierfed.tiers.tree import Tree

from tests import federation_money
from tests.conftest import SECRET, load_dataset, token
from tests.nodes import free_port
from tests.test_changes import NODES, PARENT, REGIONS, make_keys, owner_of
from tierfed.config import parse
from tierfed.generator import Options, generate

pytestmark = [pytest.mark.federation, pytest.mark.slow]

OP = token("000000", ("VIEWER", "OPERATOR", "AUDITOR", "PII_READER"), sub="op-crash")
RAISE = """mutation($in: RaisePoolingLevelInput!) { raisePoolingLevel(input: $in) { state transferred } }"""
TRANSFER = """mutation($in: TransferInsuranceInput!) { transferInsurance(input: $in) { transfer { id state } } }"""


def toml(n: str, ports: dict[str, int], keys: Path, db: str) -> str:
    lines = [
        "[node]", f'name = "{n}"', f'region = "{REGIONS[n]}"', f'listen = "127.0.0.1:{ports[n]}"',
        f'database_url = "{db}"', "check_children_at_start = false", f'private_key_file = "{keys / (n + ".key")}"',
        "recovery_interval_s = 0.3", "", "[auth]", f'jwt_secret = "{SECRET}"', "",
        # the conservation check reads every open pool in one operation
        "[limits]", "max_aliases = 5000", "max_root_fields = 5000", "max_cost = 100000000", "max_body_bytes = 10000000", "",
    ]
    if n in PARENT:
        p = PARENT[n]
        lines += ["[parent]", f'name = "{p}"', f'url = "http://127.0.0.1:{ports[p]}/graphql"',
                  f'public_key_file = "{keys / (p + ".pub")}"', "timeout_s = 10", ""]
    for k, p in PARENT.items():
        if p == n:
            lines += ["[[children]]", f'name = "{k}"', f'region = "{REGIONS[k]}"',
                      f'url = "http://127.0.0.1:{ports[k]}/graphql"', "timeout_s = 10",
                      f'public_key_file = "{keys / (k + ".pub")}"', ""]
    return "\n".join(lines)


@dataclass
class Proc:
    name: str
    config: Path
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    def start(self, crash_at: str | None = None, workers: int = 1) -> None:
        env = {k: v for k, v in os.environ.items() if k != "TIERFED_CRASH_AT"}
        if crash_at:
            env["TIERFED_CRASH_AT"] = crash_at
        # in a process group of its own: kill -9 reaches every worker, not only uvicorn's supervisor
        self.proc = subprocess.Popen([str(Path(sys.executable).parent / "tierfed"), "serve", "--config", str(self.config),
                                      "--workers", str(workers)],
                                     env=env, stdout=subprocess.DEVNULL, stderr=self.log.open("ab"), start_new_session=True)

    async def ready(self) -> None:
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient() as c:
            while time.monotonic() < deadline:
                assert self.proc is not None and self.proc.poll() is None, f"{self.name} exited: {self.log.read_text()[-2000:]}"
                try:
                    if (await c.get(self.url.rsplit("/", 1)[0] + "/healthz", timeout=1)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name} did not start")

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    async def died(self, within: float = 20) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                return True
            await asyncio.sleep(0.05)
        return False


@dataclass
class Cluster:
    procs: dict[str, Proc]
    dbs: dict[str, str]
    cons: dict[str, asyncpg.Connection] = field(default_factory=dict)

    async def post(self, node: str, query: str, variables: dict[str, Any]) -> dict[str, Any] | None:
        """The answer, or None when the node died before answering."""
        try:
            async with httpx.AsyncClient(timeout=30) as c:
                r = await c.post(self.procs[node].url, json={"query": query, "variables": variables},
                                 headers={"Authorization": f"Bearer {OP}"})
                return r.json()  # type: ignore[no-any-return]
        except httpx.HTTPError:
            return None

    async def restart(self, node: str, crash_at: str | None = None) -> None:
        self.procs[node].kill9()
        self.procs[node].start(crash_at)
        await self.procs[node].ready()

    async def settled(self, timeout: float = 30) -> None:
        """Wait until no node has a change waiting or a reservation held."""
        deadline = time.monotonic() + timeout
        while True:
            busy = {}
            for n, con in self.cons.items():
                busy[n] = (await con.fetchval("select count(*) from change where state = 'PENDING'"),
                           await con.fetchval("select count(*) from change_participant where state = 'PENDING'"),
                           await con.fetchval("select count(*) from change_reservation"))
            if all(v == (0, 0, 0) for v in busy.values()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"changes did not settle: {busy}")
            await asyncio.sleep(0.2)

    async def agree(self, change_id: str, expect: str) -> None:
        """Every node that knows the change has it in the same state as the coordinator; a committed
        change is known to every node its coordinator (and each participant after it) asked."""
        states = {n: await con.fetchval("select state from change where id = $1", change_id) for n, con in self.cons.items()}
        assert states["central"] == expect, states
        assert {s for s in states.values() if s is not None} == {expect}, states
        if expect == "COMMITTED":
            asked, todo = {"central"}, ["central"]
            while todo:
                for r in await self.cons[todo.pop()].fetch(
                        "select node from change_participant where change_id = $1", change_id):
                    if r["node"] in self.cons and r["node"] not in asked:
                        asked.add(r["node"])
                        todo.append(r["node"])
            assert all(states[n] == "COMMITTED" for n in asked), (asked, states)

    async def conserved(self) -> None:
        await federation_money.check(lambda q: self.post("central", q, {}), self.cons, REGIONS)

    async def persons_of(self, node: str, prefix: str, n: int) -> list[str]:
        return [r["id_number"] for r in await self.cons[node].fetch(
            "select p.id_number from person p where p.region_code like $1 || '%' and not exists "
            "(select 1 from insurance_transfer t where t.id_number = p.id_number) order by 1 limit $2", prefix, n)]


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory, tree: Tree, new_db: Any) -> AsyncIterator[Cluster]:
    base = tmp_path_factory.mktemp("crash")
    keys = make_keys(base)
    out = base / "data"
    generate(tree, out, Options(persons=600, first=date(2025, 1, 1), last=date(2025, 3, 1), seed=5),
             split=lambda region: owner_of(tree, region))
    dbs, procs = {}, {}
    for n in NODES:
        dbs[n] = await new_db()
        await load_dataset(dbs[n], parse(tomllib.loads(toml(n, {k: i + 1 for i, k in enumerate(NODES)}, keys, dbs[n]))), out / n)
    ports = {n: free_port() for n in NODES}  # chosen once the data are loaded
    for n in NODES:
        cfg_path = base / f"{n}.toml"
        cfg_path.write_text(toml(n, ports, keys, dbs[n]))
        procs[n] = Proc(n, cfg_path, ports[n], base / f"{n}.log")
    cl = Cluster(procs, dbs)
    for n in ("shenzhen", "guangdong", "sichuan", "central"):
        procs[n].start()
    for p in procs.values():
        await p.ready()
    for n in NODES:
        cl.cons[n] = await asyncpg.connect(dbs[n])
    yield cl
    for p in procs.values():
        p.kill9()
    for con in cl.cons.values():
        await con.close()


def raise_in(scheme: str, key: str, eff: str = "2025-02") -> dict[str, Any]:
    return {"in": {"scheme": scheme, "region": "000000", "effectiveFrom": eff, "idempotencyKey": key}}


def transfer_in(person: str, to: str, key: str, eff: str = "2025-04") -> dict[str, Any]:
    return {"in": {"idNumber": person, "to": to, "effectiveFrom": eff, "idempotencyKey": key}}


async def change_of(cl: Cluster, key: str) -> str:
    """The change the coordinator recorded under ``key``: there must be exactly one (a crash point
    before the intent was written would otherwise pass for an earlier change)."""
    ids = [r["id"] for r in await cl.cons["central"].fetch(
        "select id from change where idempotency_key = $1 and role = 'coordinator' and kind <> 'presumed-aborted'",
        key)]
    assert len(ids) == 1, (key, ids)
    return str(ids[0])


# (crash point, the node it stops, what the change is, the state it must end in)
POINTS = [
    ("coordinator-after-intent", "central", "raise", "ABORTED"),
    ("coordinator-after-reservation-1", "central", "raise", "ABORTED"),
    ("coordinator-after-reservation-2", "central", "transfer", "ABORTED"),
    ("participant-before-reserve", "sichuan", "raise", "ABORTED"),
    ("participant-after-reserve", "sichuan", "transfer", "ABORTED"),
    ("participant-after-reserve", "shenzhen", "raise", "ABORTED"),
    ("coordinator-after-decision", "central", "raise", "COMMITTED"),
    ("coordinator-mid-commit", "central", "transfer", "COMMITTED"),
    ("participant-before-apply", "guangdong", "raise", "COMMITTED"),
    # the destination prepares without what moves: it learns it from the commit step, or when it
    # asks after a crash (the coordinator's, here before telling anyone; or its own before applying)
    ("coordinator-after-decision", "central", "transfer", "COMMITTED"),
    ("participant-before-apply", "sichuan", "transfer", "COMMITTED"),
]


async def test_every_crash_point(cluster: Cluster) -> None:
    cl = cluster
    await cl.conserved()
    committed_schemes = iter(["MEDICAL", "WORK_INJURY", "MATERNITY"])
    for i, (point, node, kind, end) in enumerate(POINTS):
        await cl.restart(node, crash_at=point)
        if kind == "raise":
            scheme = "PENSION" if end == "ABORTED" else next(committed_schemes)
            answer = await cl.post("central", RAISE, raise_in(scheme, f"crash-{i}"))
        else:
            person = (await cl.persons_of("guangdong", "4401", 1))[0]
            answer = await cl.post("central", TRANSFER, transfer_in(person, "510104", f"crash-{i}"))
        assert await cl.procs[node].died(), f"{point}: {node} did not stop ({answer})"
        if node != "central" and end == "ABORTED":
            # a participant died before the decision: refused, naming it
            assert answer is not None and answer["errors"][0]["extensions"]["code"] == "TIER_UNAVAILABLE", answer
        if point == "participant-before-apply":
            # decided: the caller is told so; the change waits for the node that is down
            assert answer is not None and "errors" not in answer, answer
            waiting = await cl.post("central", "{ changes(state: COMMITTED, first: 1) { participants { node state } } }", {})
            assert waiting is not None
            parts = {p["node"]: p["state"] for p in waiting["data"]["changes"][0]["participants"]}
            assert parts[node] == "PENDING", parts
        change_id = await change_of(cl, f"crash-{i}")
        await cl.restart(node)
        await cl.settled()
        await cl.agree(change_id, end)
        if kind == "transfer" and end == "COMMITTED":
            # both sides booked what the origin computed, the destination from the decision
            out, in_ = [await cl.cons[n].fetchrow("select name, schemes::text from insurance_transfer where id = $1 "
                                                  "and direction = $2", change_id, d)
                        for n, d in (("guangdong", "out"), ("sichuan", "in"))]
            assert out is not None and in_ is not None and tuple(out) == tuple(in_), (out, in_)
            assert await cl.cons["sichuan"].fetchval("select name from person where id_number = $1", person) == out[0]
        await cl.conserved()


async def test_chaos_kill_nine_during_a_stream_of_changes(cluster: Cluster) -> None:
    """Random nodes killed at random moments while raises and transfers run; then every node agrees."""
    cl = cluster
    rng = random.Random(2025)
    persons = await cl.persons_of("guangdong", "44", 40)
    back = await cl.persons_of("sichuan", "51", 40)
    stop = time.monotonic() + 25
    sent = 0

    async def stream() -> None:
        nonlocal sent
        i = 0
        while time.monotonic() < stop:
            i += 1
            if i % 5 == 0:
                await cl.post("central", RAISE, raise_in(rng.choice(["PENSION", "UNEMPLOYMENT"]), f"chaos-r{i}",
                                                          eff=rng.choice(["2025-02", "2025-03"])))
            elif persons and i % 2:
                await cl.post("central", TRANSFER, transfer_in(persons.pop(), "510104", f"chaos-t{i}"))
            elif back:
                await cl.post("central", TRANSFER, transfer_in(back.pop(), "440106", f"chaos-t{i}"))
            sent += 1

    async def killer() -> None:
        while time.monotonic() < stop - 3:
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            victim = rng.choice(NODES)
            cl.procs[victim].kill9()
            await asyncio.sleep(rng.uniform(0.1, 1.0))
            cl.procs[victim].start()
            await cl.procs[victim].ready()

    await asyncio.gather(stream(), killer())
    assert sent > 10
    await cl.settled(60)
    for change_id, state in await cl.cons["central"].fetch("select id, state from change where role = 'coordinator'"):
        await cl.agree(change_id, state)
    await cl.conserved()
    applied = await cl.cons["central"].fetchval(
        "select count(*) from change where state = 'COMMITTED' and idempotency_key like 'chaos-%'")
    assert applied > 0  # some changes went through despite the kills


async def test_recovery_in_another_worker_leaves_a_change_in_progress_alone(cluster: Cluster) -> None:
    """Central served by two worker processes, each running recovery: while one worker waits for a
    participant (Sichuan, frozen with SIGSTOP), the other's recovery passes must not presume the
    change abandoned; once Sichuan answers, the change commits everywhere."""
    cl = cluster
    cl.procs["central"].kill9()
    cl.procs["central"].start(workers=2)
    await cl.procs["central"].ready()
    # a person not moved yet (the chaos run before moves many)
    person = (await cl.persons_of("guangdong", "44", 1) + await cl.persons_of("shenzhen", "4403", 1))[0]
    sichuan = cl.procs["sichuan"].proc
    assert sichuan is not None
    os.kill(sichuan.pid, signal.SIGSTOP)
    try:
        answer = asyncio.create_task(cl.post("central", TRANSFER, transfer_in(person, "510104", "workers-1")))
        con = cl.cons["central"]
        deadline = time.monotonic() + 20
        while not await con.fetchval("select exists (select 1 from change where idempotency_key = 'workers-1')"):
            assert time.monotonic() < deadline, "the transfer was not started"
            await asyncio.sleep(0.05)
        # both workers run recovery every 0.3 s: ten intervals while the coordinating worker waits
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            state = await con.fetchval("select state from change where idempotency_key = 'workers-1'")
            assert state == "PENDING", f"another worker's recovery moved a change in progress to {state}"
            await asyncio.sleep(0.1)
    finally:
        os.kill(sichuan.pid, signal.SIGCONT)
    got = await answer
    assert got is not None and "errors" not in got, got
    assert got["data"]["transferInsurance"]["transfer"]["state"] == "COMMITTED"
    await cl.settled()
    await cl.agree(await change_of(cl, "workers-1"), "COMMITTED")
    await cl.conserved()
    await cl.restart("central")  # one worker again, as the other tests of this module expect
