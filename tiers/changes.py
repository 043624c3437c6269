"""Changes that span nodes: reservations, one durable decision, apply on the decision.

The node a mutation is sent to coordinates. In order (docs/CHANGES.md has the
states, messages and what each crash point leaves):

1. *Intent*: in one transaction the coordinator checks its own part, reserves
   it and records the change (PENDING) with the children taking part.
2. *Prepare*: each child checks and reserves its part (and asks its own
   children the same, recursively), recording it as PENDING. A child that says
   no, or does not answer, makes the coordinator abort everywhere.
3. *Decision*: one conditional update of the coordinator's change row, in the
   same transaction as the coordinator's own part: the point of no return.
4. *Commit*: each child applies its part when told, or, if it was down, when
   it asks its parent on its own (recovery); it never decides alone.

Recovery runs on start and every ``[node] recovery_interval_s``, in one worker
process of the node at a time: a change this node coordinates that is undecided
and whose coordinating process is gone (or is this one, no longer at work on it)
is presumed aborted; decided changes are re-sent to children not yet told; a part
waiting for a decision asks the parent. Steps between nodes travel over
``POST /internal/changes`` (tiers/stepclient.py), signed by the sending node's key
(tiers/identity.py); decisions are told to each child in batches.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any

import asyncpg
import httpx

from tierfed import codes
from tierfed.db import StatementCounter
from tierfed.errors import Code, TierfedError, bad_input, conflict

from . import background, settlement, transfers
from . import changestore as cs
from . import transferstore as ts
from .faults import crash_point
from .figures import SCHEMES
from .identity import NodeIdentity
from .intent import ASYNC_COMMIT, intent, step
from .pooling import (
    SCHEME_DEPARTMENT,
    RaiseInput,
    RaiseOutcome,
    plan_replaced,
    pool_id,
    pool_lock_keys,
)
from .poolstore import CLOSE, POOLS_BY_ID, VERTICAL
from .stepclient import StepClient, StepError
from .store import PoolRec, _pool

log = logging.getLogger("tierfed.changes")

RAISE = "raisePoolingLevel"
# What each new connection of the pool for change steps prepares (tierfed.runtime).
WARM_STATEMENTS = (*cs.WARM, CLOSE, ts.CHECK_SIDE, ts.PRIOR_AND_LOCATE)
OWNER_SETTING = "tierfed.owner"  # set on the change steps' connections: see Changes.owner

TRANSFER = transfers.TRANSFER
TELL_BATCH = 200  # decisions told to one child in one step at most

# (opening balance, balance) of each pool at a month, computed by the caller's
# resolvers so that pools spanning nodes add their children's flows exactly.
Balances = Callable[[list[PoolRec], date], Awaitable[dict[str, tuple[Decimal, Decimal]]]]


@dataclass(frozen=True)
class Peer:
    """A node this node sends change steps to: a child, or its parent."""

    name: str
    region: str
    url: str  # the node's /internal/changes
    timeout_s: float


class Unreachable(Exception):
    pass


class Phases:
    """Where a coordinated change's time goes (benchmarks): milliseconds per phase, and per child
    the round trip of each step and the time the child took to handle it (its answer's ``ms``).
    Kept only when ``Changes.timings`` is a list."""

    def __init__(self, sink: list[dict[str, Any]] | None, kind: str) -> None:
        self.sink = sink
        self.t0 = self.t = time.perf_counter()
        self.out: dict[str, Any] = {"kind": kind}

    def mark(self, phase: str) -> None:
        if self.sink is None:
            return
        now = time.perf_counter()
        self.out[phase] = round((now - self.t) * 1e3, 2)
        self.t = now

    def child(self, name: str, op: str, t0: float, answer: dict[str, Any]) -> None:
        if self.sink is None:
            return
        self.out.setdefault("children", {})[f"{name}:{op}"] = (
            round((time.perf_counter() - t0) * 1e3, 2), answer.get("ms"))

    def done(self) -> None:
        if self.sink is not None:
            self.out["total"] = round((time.perf_counter() - self.t0) * 1e3, 2)
            self.sink.append(self.out)


def internal_url(graphql_url: str) -> str:
    return graphql_url.rsplit("/", 1)[0] + "/internal/changes"


def _refusal(e: TierfedError) -> dict[str, Any]:
    return {"ok": False, "code": e.code.value, "message": e.message}


class Changes:
    """This node's side of every change across nodes, and the recovery task."""

    def __init__(self, rt: Any, pool: asyncpg.Pool, owner: str | None = None) -> None:
        self.rt = rt
        self.pool = pool  # a pool of its own: change steps are not statements of an operation
        # This process's name on the changes it coordinates (the pool's connections set
        # OWNER_SETTING to it, and migration 0013's column default reads it), held as a
        # session advisory lock while the process lives: see recover_once.
        self.owner = owner or uuid.uuid4().hex
        self._owner_con: Any = None
        self._first_pass = True
        cfg = rt.cfg
        self.identity = NodeIdentity(
            cfg.name, cfg.private_key_file,
            (cfg.parent.name, cfg.parent.public_key_file) if cfg.parent and cfg.parent.public_key_file else None,
            {c.name: c.public_key_file for c in cfg.children})
        self.parent = (Peer(cfg.parent.name, "", internal_url(cfg.parent.url), cfg.parent.timeout_s)
                       if cfg.parent else None)
        self.client = httpx.AsyncClient(limits=httpx.Limits(max_connections=50, max_keepalive_connections=20))
        self.steps = StepClient()  # http:// peers: one write per step, no httpx machinery
        self.in_flight: set[str] = set()
        self.interval = cfg.recovery_interval_s
        self._task: asyncio.Task[None] | None = None
        self._telling: set[asyncio.Task[Any]] = set()
        # Decisions waiting to be told to each child, sent together (one step per child
        # for however many changes were decided meanwhile): change id -> how many of its
        # children have acknowledged it (for the crash point after the first).
        self._to_tell: dict[str, list[str]] = {}
        self._told_count: dict[str, int] = {}
        self._moves: dict[str, dict[str, Any]] = {}  # what each queued transfer moves (its commit carries it)
        self._told: dict[str, asyncio.Future[None]] = {}  # done once every child of the change was told
        self.sent: dict[str, int] = {}
        self.sent_log: list[tuple[str, str]] | None = None  # set to a list to keep (node, step) of each step sent
        self.statements = StatementCounter()  # the SQL statements of change steps (tests count them)
        self.timings: list[dict[str, Any]] | None = None  # set to a list to keep each change's Phases (bench)

    def new_id(self) -> str:
        """The id of a change this node starts coordinating."""
        return uuid.uuid4().hex

    # ------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Hold this process's owner lock (before it coordinates anything)."""
        await self._hold_owner_lock()

    async def _hold_owner_lock(self) -> None:
        if self._owner_con is not None and not self._owner_con.is_closed():
            return
        if self._owner_con is not None:
            try:
                await self.pool.release(self._owner_con)
            except Exception:  # noqa: BLE001 - a dead connection: dropped
                pass
            self._owner_con = None
        con = await self.pool.acquire()
        try:
            await con.execute(cs.HOLD_OWNER, self.owner)
        except BaseException:
            await self.pool.release(con)
            raise
        self._owner_con = con

    def start(self) -> None:
        """Recovery on start and every ``interval`` seconds, a failed pass logged and tried again."""
        self._task = background.every("change-recovery", self.interval, self.recover_once, first_at_once=True)

    async def close(self) -> None:
        for t in list(self._telling):
            t.cancel()
        await background.stop(self._task)
        await self.client.aclose()
        await self.steps.aclose()
        if self._owner_con is not None:
            try:
                await self.pool.release(self._owner_con)
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        await self.pool.close()

    @property
    def node(self) -> Any:
        return self.rt.node

    def child_peers(self, region: str | None = None) -> list[Peer]:
        kids = self.node.children if region is None else self.node.children_within(region)
        return [Peer(c.name, c.region, internal_url(c.url), c.timeout_s) for c in kids]

    def child_peer(self, name: str) -> Peer | None:
        return next((p for p in self.child_peers() if p.name == name), None)

    # ------------------------------------------------------------ messages

    def signed(self, msg: dict[str, Any], peers: list[Peer]) -> tuple[bytes, str] | None:
        """The same step for several peers, encoded and signed once for all of them (``send``'s
        ``signed``); None when this node cannot sign (each send then says so)."""
        body = json.dumps(msg).encode()
        try:
            return body, self.identity.sign(body, [p.name for p in peers])
        except PermissionError:
            return None

    async def send(self, peer: Peer, msg: dict[str, Any], signed: tuple[bytes, str] | None = None) -> dict[str, Any]:
        """One signed step to ``peer``; Unreachable when it does not answer (or answers garbage).
        ``signed``: ``msg`` already encoded and signed for ``peer`` among others (``signed``)."""
        self.sent[peer.name] = self.sent.get(peer.name, 0) + 1
        if self.sent_log is not None:
            self.sent_log.append((peer.name, str(msg.get("op"))))
        if signed is not None:
            body, sig = signed
        else:
            body = json.dumps(msg).encode()
            try:
                sig = self.identity.sign(body, peer.name)
            except PermissionError as e:
                raise Unreachable(str(e)) from None
        headers = {"Authorization": f"Node {sig}", "Content-Type": "application/json"}
        if self.steps.handles(peer.url):
            try:
                status, raw = await self.steps.post(peer.url, body, headers, peer.timeout_s)
                out = json.loads(raw)
            except TimeoutError:
                raise Unreachable(f"did not answer within {peer.timeout_s:g} s") from None
            except StepError as e:
                raise Unreachable(f"could not be reached ({e})") from None
            except ValueError:
                raise Unreachable(f"answered garbage (HTTP {status})") from None
            if not isinstance(out, dict):
                raise Unreachable("answered garbage")
            if status == 403:
                raise Unreachable(f"refused this node's signature: {out.get('message')}")
            return out
        try:
            try:
                r = await self.client.post(peer.url, content=body, timeout=peer.timeout_s, headers=headers)
            except (httpx.ReadError, httpx.RemoteProtocolError):
                # A kept-alive connection the peer closed as we reused it: every step is
                # idempotent, so send it once more on a new connection.
                r = await self.client.post(peer.url, content=body, timeout=peer.timeout_s, headers=headers)
            out = r.json()
        except httpx.TimeoutException:
            raise Unreachable(f"did not answer within {peer.timeout_s:g} s") from None
        except (httpx.HTTPError, OSError) as e:
            raise Unreachable(f"could not be reached ({type(e).__name__})") from None
        except ValueError:
            raise Unreachable(f"answered garbage (HTTP {r.status_code})") from None
        if not isinstance(out, dict):
            raise Unreachable("answered garbage")
        if r.status_code == 403:
            raise Unreachable(f"refused this node's signature: {out.get('message')}")
        return out

    async def handle(self, msg: dict[str, Any], sender: str) -> dict[str, Any]:
        """A step from the parent (prepare, commit, abort) or a child's question (status)."""
        op = msg.get("op")
        change_id = str(msg.get("change", ""))
        try:
            if op == "prepare":
                return await self._prepare(msg, sender)
            if op in ("commit", "abort") and isinstance(msg.get("changes"), list):
                moves = msg.get("moves") if isinstance(msg.get("moves"), dict) else {}
                return await self._finish_many([str(c) for c in msg["changes"]],
                                               "COMMITTED" if op == "commit" else "ABORTED", moves)
            if op == "commit":
                return await self._finish(change_id, "COMMITTED", _moves_of(msg.get("moves")))
            if op == "abort":
                return await self._finish(change_id, "ABORTED")
            if op == "locate":
                return await transfers.locate_here_or_below(self, str(msg.get("idNumber", "")))
            if op == "status":
                # a change unknown here is presumed aborted, and recorded so (changestore.PRESUME_ABORTED)
                row = await cs.presume_aborted(self.pool, change_id) if change_id else None
                answer: dict[str, Any] = {"ok": True, "state": row.state if row else "UNKNOWN"}
                if row is not None and row.state == "COMMITTED" and row.kind == TRANSFER:
                    answer["moves"] = decided_moves(row)
                return answer
        except TierfedError as e:
            return _refusal(e)
        return {"ok": False, "code": Code.BAD_USER_INPUT.value, "message": f"unknown step {op!r}"}

    # ------------------------------------------------------------ participant

    async def _prepare(self, msg: dict[str, Any], parent: str) -> dict[str, Any]:
        change_id = str(msg["change"])
        dry = bool(msg.get("dryRun"))
        if msg.get("kind") not in (RAISE, TRANSFER, settlement.SETTLE):
            raise bad_input(f"unknown kind of change {msg.get('kind')!r}")
        if not dry:
            # the same step again (a retry): the same answer (a raise's part finds it with its checks)
            prior = await cs.by_id(self.pool, change_id) if msg["kind"] != RAISE else None
            if prior is not None:
                return _prior_answer(change_id, prior.state, prior.plan)
            crash_point("participant-before-reserve")
        if msg["kind"] == TRANSFER:
            return await transfers.prepare(self, msg, parent, dry)
        if msg["kind"] == settlement.SETTLE:
            return await settlement.prepare(self, msg, parent, dry)
        return await self._prepare_raise(msg, parent, dry)

    async def _prepare_raise(self, msg: dict[str, Any], parent: str, dry: bool) -> dict[str, Any]:
        change_id = str(msg["change"])
        inp = msg["input"]
        scheme, raised, eff = int(inp["scheme"]), str(inp["region"]), codes.month(inp["effectiveFrom"])
        tree, root = self.node.tree, self.node.region
        if raised not in tree or not tree.within(root, raised) or root == raised:
            raise bad_input(f"this node's region {root} is not strictly inside the raised region {raised}")
        kids = self.child_peers()
        key = None if dry else str(msg["key"])
        async with step(self.pool, dry) as con:
            # locks, checks and the record in three statements (changestore.RAISE_LOCKS): the same
            # as the raise on one node's, and claim_key's
            if not await cs.raise_locks(con, *pool_lock_keys(tree, scheme, root), key, False):
                raise _overlapping(scheme, root)
            part = await cs.raise_checks(con, scheme, root, key, change_id, None)
            if part.prior is not None:
                return _prior_answer(change_id, *part.prior)
            _refuse_held(part, scheme, root)
            if part.key_used is not None:
                raise conflict(f"idempotency key {key!r} was already used by another change ({part.key_used}) "
                               "on this node")
            replaced, problems = plan_replaced(tree, part.rows, root, tree.by_code[raised].tier, eff)
            if problems:
                raise bad_input(f"node '{self.node.name}': " + "; ".join(problems), problems=problems)
            mine = [_pool_json(p, self.node.name) for p in replaced]
            # A node without children holds every record its pools cover: it gives their figures
            # at the month before, saving the coordinator a question per pool; read by the
            # statement that records its part (its plan then keeps the pools without them: a
            # prepare sent again is answered without figures, which the coordinator then asks).
            before = codes.add_months(eff, -1)
            leaf = (replaced, scheme, before) if not kids else None
            figures: dict[str, tuple[Decimal, Decimal]] = {}
            if key is not None:
                plan = {"scheme": scheme, "raised": raised, "before": codes.month_str(before),
                        "successor": inp["successor"], "vertical": bool(inp.get("vertical")),
                        "replaced": [p.id for p in replaced], "pools": mine}
                figures = await cs.record_part(con, change_id, RAISE, "participant", parent, key, inp, plan,
                                               str(msg.get("caller", "")), [(k.name, k.region) for k in kids],
                                               pools=(scheme, root), figures_of=leaf)
            elif leaf is not None:
                figures = await cs.pool_figures_one(con, *leaf)
            if leaf is not None:
                mine = [{**j, "liveOpening": str(figures[p.id][0]), "balance": str(figures[p.id][1])}
                        for p, j in zip(replaced, mine)]
        if not dry:
            self.in_flight.add(change_id)
        try:
            pools, failure = await self._prepare_children(kids, {**msg, "caller": msg.get("caller", "")})
            if failure is not None:
                if not dry:
                    await self._release(change_id, kids)
                return failure
        finally:
            self.in_flight.discard(change_id)
        if not dry:
            all_pools = mine + pools
            if pools:  # kept to answer a repeated prepare; its children's reservations are durable on their nodes
                async with self.pool.acquire() as con, con.transaction():
                    await con.execute(ASYNC_COMMIT)
                    await con.execute(cs.MERGE_PLAN, change_id,
                                      json.dumps({"pools": all_pools}))
            crash_point("participant-after-reserve")
            return {"ok": True, "pools": all_pools}
        return {"ok": True, "pools": mine + pools}

    async def _prepare_children(self, kids: list[Peer], msg: dict[str, Any]) -> tuple[list[dict[str, Any]],
                                                                                         dict[str, Any] | None]:
        """Ask every child to prepare; the pools they reserve, or the first refusal (naming the node)."""
        answers = await asyncio.gather(*(self._ask(k, msg) for k in kids))
        pools: list[dict[str, Any]] = []
        for k, a in zip(kids, answers):
            if not a.get("ok"):
                return [], {**a, "node": a.get("node") or k.name}
            pools.extend(a.get("pools", []))
        return pools, None

    async def _ask(self, peer: Peer, msg: dict[str, Any], signed: tuple[bytes, str] | None = None) -> dict[str, Any]:
        try:
            return await self.send(peer, msg, signed)
        except Unreachable as e:
            return {"ok": False, "code": Code.TIER_UNAVAILABLE.value, "node": peer.name,
                    "message": f"node '{peer.name}' ({peer.region}) {e}"}

    async def _finish(self, change_id: str, state: str, moves: dict[str, Any] | None = None,
                      announce: bool = True) -> dict[str, Any]:
        """Apply (COMMITTED) or release (ABORTED) this node's part, once, then tell its children.

        ``moves``: what a transfer moves, carried by the decision (a destination prepares without
        it); kept as this part's result, so that its own children are told it in turn. ``announce``
        false: the caller pushes this node's version up itself (once for several parts)."""
        row = await cs.by_id(self.pool, change_id)
        if row is None:
            # Never prepared here (an abort that overtook its prepare): nothing to undo.
            return {"ok": state == "ABORTED", "state": "UNKNOWN"}
        if row.state != "PENDING":
            return {"ok": row.state == state, "state": row.state}
        if state == "COMMITTED" and row.kind == TRANSFER:
            moves = transfers.moves(row.plan) or moves
            if moves is None:
                # A commit without what moves (sent by a node that does not carry it): not applied;
                # this node asks its parent (status), whose answer carries it.
                log.error("change %s: told commit without what the transfer moves; asking the parent", change_id)
                return {"ok": False, "state": row.state}
        if state == "COMMITTED":
            crash_point("participant-before-apply")
        async with self.pool.acquire() as con, con.transaction():
            # Not flushed before the answer: lost in a crash, the part is PENDING again and
            # recovery asks the parent and applies it again (the decision is durable there).
            if await cs.decide(con, change_id, state, moves if state == "COMMITTED" else None, flushed=False) \
                    and state == "COMMITTED":
                await self._apply(con, replace(row, plan={**row.plan, **(moves or {})}))
        await self._tell(change_id, state, moves=moves, kind=row.kind)
        if state == "COMMITTED" and announce:
            # Applied here: answered once every ancestor knows this node's new version (tiers.links).
            await self.rt.links.announce()
        return {"ok": True, "state": state}

    async def _finish_many(self, change_ids: list[str], state: str,
                           moves: dict[str, Any] | None = None) -> dict[str, Any]:
        """Several decisions in one step (the coordinator tells them together): each applied or
        released as ``_finish`` does, in turn; the state each change has here afterwards."""
        states: dict[str, str | None] = {}
        try:
            for change_id in change_ids:
                try:
                    states[change_id] = (await self._finish(change_id, state, _moves_of((moves or {}).get(change_id)),
                                                            announce=False))["state"]
                except TierfedError as e:
                    log.error("change %s: %s not applied here: %s", change_id, state, e.message)
                    states[change_id] = None
        finally:
            if state == "COMMITTED" and states:
                # Applied here: answered once every ancestor knows this node's new version
                # (tiers.links), pushed once for the whole batch rather than once per change.
                await self.rt.links.announce()
        return {"ok": True, "states": states}

    async def _apply(self, con: asyncpg.Connection, row: cs.ChangeRow) -> None:
        plan = row.plan
        if row.kind == TRANSFER:
            await transfers.apply(con, row.id, plan, self.node.region)
        elif row.kind == settlement.SETTLE:
            await settlement.apply(con, plan, self.node.region)
        elif row.kind == RAISE:
            await con.execute(CLOSE, plan["replaced"], codes.month(plan["before"]), plan["successor"])
            if plan.get("vertical"):
                await con.execute(VERTICAL, plan["raised"], SCHEME_DEPARTMENT[int(plan["scheme"])])

    async def _release(self, change_id: str, kids: list[Peer]) -> None:
        async with self.pool.acquire() as con, con.transaction():
            await cs.decide(con, change_id, "ABORTED")
        await self._tell(change_id, "ABORTED")

    async def tell_decided(self, change_id: str, nodes: list[str] | None = None,
                           moves: dict[str, Any] | None = None) -> None:
        """Tell the children taking part (``nodes``, or as recorded) that ``change_id`` is
        COMMITTED, and wait until each has answered or could not be reached: the mutation answers
        only then, when every node below has applied the change and every ancestor knows its new
        version (a participant answers its commit once its version is pushed up the tree), so
        that the caller's next request, on any node, sees it. Decisions made meanwhile are
        batched into one step per child; recovery tells a child that could not be reached."""
        try:
            if nodes is None:
                nodes = [p.node for p in await cs.participants(self.pool, [change_id]) if p.state == "PENDING"]
        except Exception:  # noqa: BLE001 - decided all the same: recovery tells them
            log.exception("change %s: its participants could not be read to tell them; recovery will", change_id)
            return
        if not nodes:
            return
        told = asyncio.get_running_loop().create_future()
        self._told[change_id] = told
        self._tell_now(change_id, nodes, moves)
        # The telling goes on if the caller gives up waiting (a deadline): shielded.
        await asyncio.shield(told)

    def _tell_now(self, change_id: str, nodes: list[str], moves: dict[str, Any] | None) -> None:
        self._told_count[change_id] = 0
        if moves is not None:
            self._moves[change_id] = moves
        for node in nodes:
            queue = self._to_tell.setdefault(node, [])
            queue.append(change_id)
            if len(queue) == 1:  # no sender running for this child: start one
                task = asyncio.get_running_loop().create_task(self._tell_queued(node))
                self._telling.add(task)
                task.add_done_callback(self._telling.discard)

    def _told_everywhere(self, change_id: str) -> None:
        """``change_id`` is no longer queued for any child: forget it, and wake its waiter."""
        if any(change_id in q for q in self._to_tell.values()):
            return
        self._told_count.pop(change_id, None)
        self._moves.pop(change_id, None)
        told = self._told.pop(change_id, None)
        if told is not None and not told.done():
            told.set_result(None)

    async def _tell_queued(self, node: str) -> None:
        """Send the decisions queued for one child, as many as are queued, one step at a time."""
        queue = self._to_tell[node]
        try:
            while queue:
                batch = queue[:TELL_BATCH]
                peer = self.child_peer(node)
                try:
                    if peer is None:
                        raise Unreachable("is no longer a configured child")
                    step: dict[str, Any] = {"op": "commit", "changes": batch}
                    moves = {c: self._moves[c] for c in batch if c in self._moves}
                    if moves:
                        step["moves"] = moves
                    a = await self.send(peer, step)
                except Unreachable as e:
                    log.warning("changes %s: node '%s' not told commit: %s", ",".join(batch), node, e)
                    a = {}
                got = a.get("states")
                states: dict[str, Any] = got if isinstance(got, dict) else {}
                acked = [c for c in batch if states.get(c) == "COMMITTED"]
                if acked:
                    await cs.participants_state(self.pool, acked, node, "COMMITTED")
                for c in batch:
                    if c not in acked and a:
                        log.error("change %s: node '%s' answered %s to commit", c, node, states.get(c))
                # the batch leaves the queue only now: a decision queued meanwhile joins the next step
                del queue[:len(batch)]
                for c in batch:
                    n = self._told_count.get(c)
                    if n is None:
                        continue
                    if c in acked:
                        self._told_count[c] = n + 1
                        if n == 0:
                            crash_point("coordinator-mid-commit")
                    self._told_everywhere(c)
        finally:
            # Emptied, or left on an error (recovery tells what is left): the next decision starts
            # a sender. What was left here is still told to its other children, with its moves.
            self._to_tell.pop(node, None)
            for c in queue:
                self._told_everywhere(c)

    async def settled(self) -> None:
        """Wait until the children of every decision made here have been told (tests, benchmarks)."""
        while self._telling:
            await asyncio.gather(*list(self._telling), return_exceptions=True)

    async def _tell(self, change_id: str, state: str, crash_after_first: bool = False,
                    moves: dict[str, Any] | None = None, kind: str | None = None) -> list[str]:
        """Send the decision to every child not yet told; the names of those that did not answer.
        A transfer's commit carries what it moves (``moves``, or as recorded here; ``kind`` when
        the caller knows the change's)."""
        if not self.node.children:
            return []  # a node without children asked none to take part
        parts = [p for p in await cs.participants(self.pool, [change_id]) if p.state == "PENDING"]
        op = "commit" if state == "COMMITTED" else "abort"
        extra: dict[str, Any] = {}
        if parts and state == "COMMITTED":
            if moves is None and kind in (None, TRANSFER):
                row = await cs.by_id(self.pool, change_id)
                moves = decided_moves(row) if row is not None and row.kind == TRANSFER else None
            if moves is not None:
                extra["moves"] = moves
        told = 0
        missing: list[str] = []

        async def one(p: cs.ParticipantRow) -> None:
            nonlocal told
            peer = self.child_peer(p.node)
            if peer is None:
                missing.append(p.node)
                return
            try:
                a = await self.send(peer, {"op": op, "change": change_id, **extra})
            except Unreachable as e:
                log.warning("change %s: node '%s' not told %s: %s", change_id, p.node, op, e)
                missing.append(p.node)
                return
            if a.get("ok") or a.get("state") == state or (state == "ABORTED" and a.get("state") == "UNKNOWN"):
                await cs.participant_state(self.pool, change_id, p.node, state)
                told += 1
                if crash_after_first and told == 1:
                    crash_point("coordinator-mid-commit")
            else:
                log.error("change %s: node '%s' answered %s to %s", change_id, p.node, a, op)
                missing.append(p.node)

        await asyncio.gather(*(one(p) for p in parts))
        return missing

    # ------------------------------------------------------------ recovery

    async def recover_once(self) -> None:
        """One pass of recovery (also run on start): see the module docstring.

        A node may run several worker processes, each with this task: a pass runs in one
        of them at a time (a session advisory lock on the owner connection; the others skip
        it), and an undecided change is presumed aborted only when the process that
        coordinates it is gone (its owner lock is free) or is this one and no longer at
        work on it. The first pass after start asks about everything; later passes leave
        alone what is younger than the peers' timeouts (it is being sent as it should)."""
        await self._hold_owner_lock()
        con = self._owner_con
        if not await con.fetchval(cs.TRY_RECOVERY_LOCK):
            return
        try:
            await self._recover(0 if self._first_pass else self._settle_s())
            self._first_pass = False
        finally:
            if not con.is_closed():
                await con.execute(cs.RECOVERY_UNLOCK)

    def _settle_s(self) -> float:
        """How long a step normally takes at most: a peer's timeout."""
        timeouts = [p.timeout_s for p in self.child_peers()] + ([self.parent.timeout_s] if self.parent else [])
        return max(timeouts, default=0.0)

    async def _recover(self, age_s: float) -> None:
        """One round of recovery. Each change is recovered on its own: one that fails (a
        database error applying its decision, say) is logged and tried again next round, and
        never keeps the changes after it from being recovered."""
        for change_id in await cs.stale_undecided(self.pool, 0, self.owner):
            if change_id not in self.in_flight:
                await self._recover_one(change_id, self._abort_abandoned(change_id))
        for change_id, parent in await cs.waiting_parts(self.pool, age_s):
            if change_id in self.in_flight or self.parent is None or parent != self.parent.name:
                continue
            await self._recover_one(change_id, self._ask_and_finish(change_id, parent))
        for change_id, state, _node in await cs.untold(self.pool, age_s):
            await self._recover_one(change_id, self._tell(change_id, state))

    @staticmethod
    async def _recover_one(change_id: str, step: Awaitable[Any]) -> None:
        try:
            await step
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - logged; this change is tried again next round
            log.exception("change %s: recovery failed this round; tried again next round", change_id)

    async def _abort_abandoned(self, change_id: str) -> None:
        async with self.pool.acquire() as con, con.transaction():
            if await cs.decide(con, change_id, "ABORTED"):
                log.warning("change %s was undecided and its coordinating process gone: aborted", change_id)

    async def _ask_and_finish(self, change_id: str, parent: str) -> None:
        assert self.parent is not None
        try:
            a = await self.send(self.parent, {"op": "status", "change": change_id})
        except Unreachable as e:
            log.warning("change %s waits for a decision; parent '%s' %s", change_id, parent, e)
            return
        if a.get("state") in ("COMMITTED", "ABORTED", "UNKNOWN"):
            await self._finish(change_id, "COMMITTED" if a["state"] == "COMMITTED" else "ABORTED",
                               _moves_of(a.get("moves")))

    # ------------------------------------------------------------ coordinator: raises

    async def raise_across(self, inp: RaiseInput, caller: str, balances: Balances) -> RaiseOutcome:
        """raisePoolingLevel over a subtree that spans child nodes, all or nothing."""
        tree = self.node.tree
        scheme, region, eff = inp.scheme, inp.region, inp.effective_from
        before = codes.add_months(eff, -1)
        new_id = pool_id(region, scheme, eff)
        kids = self.child_peers(region)
        prior = await cs.by_key(self.pool, inp.idempotency_key)
        if prior is not None and not inp.dry_run and prior.state != "ABORTED":
            return await self._replay(prior, inp)
        msg_input = {"scheme": scheme, "region": region, "effectiveFrom": codes.month_str(eff),
                     "successor": new_id, "vertical": inp.vertical_management}
        change_id = self.new_id()
        self.in_flight.add(change_id)
        decided = False
        ph = Phases(self.timings, "raise-dry" if inp.dry_run else "raise")
        ph.mark("prior")
        key = None if inp.dry_run else inp.idempotency_key
        msg = {"op": "prepare", "kind": RAISE, "change": change_id, "key": inp.idempotency_key,
               "caller": caller, "input": msg_input, "dryRun": inp.dry_run}
        answers: list[tuple[Peer, dict[str, Any]]] = []

        async def record_intent() -> list[PoolRec]:
            """This node's part: the intent's locks, checks and record in three statements
            (changestore.RAISE_LOCKS), the same checks as the raise on one node's and claim_key's;
            the pools it replaces here."""
            async with intent(self.pool, inp.dry_run, set_async=False) as con:
                if not await cs.raise_locks(con, *pool_lock_keys(tree, scheme, region), key, True):
                    raise _overlapping(scheme, region)
                part = await cs.raise_checks(con, scheme, region, key, None, new_id)
                _refuse_held(part, scheme, region)
                local, problems = plan_replaced(tree, part.rows, region, tree.by_code[region].tier, eff)
                if problems:
                    raise bad_input("raisePoolingLevel refused, nothing changed: " + "; ".join(problems),
                                    problems=problems)
                if part.pool_exists:
                    raise conflict(f"pool {new_id} already exists")
                if key is not None:
                    if part.key_used is not None:
                        raise conflict(f"idempotency key {key!r} was already used by another change "
                                       f"({part.key_used}) on this node")
                    try:
                        await cs.record_part(con, change_id, RAISE, "coordinator", None, key, inp.to_json(),
                                             {"replaced": [p.id for p in local]}, caller,
                                             [(k.name, k.region) for k in kids], pools=(scheme, region))
                    except asyncpg.UniqueViolationError:
                        # a child asked about the change before it was recorded, and was told it is
                        # aborted (changestore.PRESUME_ABORTED): so it is, everywhere
                        raise conflict(f"change {change_id} was given up while it was being recorded; "
                                       "nothing changed anywhere: try again") from None
            ph.mark("intent")
            return local

        # The intent is recorded while the children prepare, not before: no child acts on a
        # prepare alone (it asks this node, which has the intent or presumes the change aborted).
        intent_task = asyncio.ensure_future(record_intent())
        signed = self.signed(msg, kids)  # one prepare, the same for every child: signed once
        try:
            async def prepare(k: Peer) -> None:
                t0 = time.perf_counter()
                a = await self._ask(k, msg, signed)
                ph.child(k.name, "prepare", t0, a)
                answers.append((k, a))
                if a.get("ok") and not inp.dry_run:
                    nth = sum(1 for _, x in answers if x.get("ok"))  # this reservation's rank, as it came
                    try:
                        await intent_task  # the crash points after a reservation come after the intent
                    except BaseException:  # noqa: BLE001 - raised below, once every child has answered
                        return
                    crash_point(f"coordinator-after-reservation-{nth}")

            async def figures_here() -> dict[str, tuple[Decimal, Decimal]]:
                """Local pools over regions this node holds whole: their figures in one statement, as
                a participant without children gives its own, read while the children prepare; the
                others (spanning child nodes) add their children's flows through the caller's
                resolvers."""
                whole = [p for p in await intent_task if self.node.holds_whole(p.region_code)]
                if not whole:
                    return {}
                async with self.pool.acquire() as con:
                    return await cs.pool_figures_one(con, whole, scheme, before)

            got = await asyncio.gather(figures_here(), *(prepare(k) for k in kids), return_exceptions=True)
        except BaseException:  # cancelled (the caller is gone, the deadline passed)
            intent_task.cancel()
            await asyncio.gather(intent_task, return_exceptions=True)
            if not inp.dry_run:
                await self._abort_quietly(change_id, kids)
            self.in_flight.discard(change_id)
            raise
        failed = intent_task.exception() or (got[0] if isinstance(got[0], BaseException) else None)
        if failed is not None:
            # this node refused its part (or its figures failed): what the children reserved is released
            if not inp.dry_run:
                await self._abort_quietly(change_id, kids)
            self.in_flight.discard(change_id)
            raise failed
        local = intent_task.result()
        here: dict[str, tuple[Decimal, Decimal]] = got[0]  # type: ignore[assignment]
        try:
            ph.mark("prepare")
            refused = [(k, a) for k, a in answers if not a.get("ok")]
            if refused:
                raise self._refused(refused)
            remote = [PoolRec(p["id"], int(p["scheme"]), p["region"], date.fromisoformat(p["openedFrom"]), None,
                              Decimal(p["openingBalance"]), None, held_by=self._holder(p["region"]))
                      for _, a in answers for p in a.get("pools", [])]
            reported = {p["id"]: (Decimal(p["liveOpening"]), Decimal(p["balance"]))
                        for _, a in answers for p in a.get("pools", []) if "balance" in p}
            rest = [p for p in [*local, *remote] if p.id not in reported and p.id not in here]
            figures = {**reported, **here, **(await balances(rest, before) if rest else {})}
            ph.mark("figures")
            ph.out["asked_figures_of"] = len(rest)
            transferred = sum((figures[p.id][1] for p in [*local, *remote]), Decimal("0.00"))
            closed_local = [replace(p, closed_after=before, successor_id=new_id) for p in local]
            # Pools held by children, as of the decision: figures fixed, so that the answer
            # stands even when a child is down after the decision.
            closed_remote = [replace(p, closed_after=before, successor_id=new_id, virtual=True,
                                     opening_balance=figures[p.id][0]) for p in remote]
            if inp.dry_run:
                new = PoolRec(new_id, scheme, region, eff, None, transferred, None, virtual=True,
                              predecessor_recs=tuple([*closed_local, *closed_remote]))
                ph.done()
                return RaiseOutcome(new, [*closed_local, *closed_remote], transferred, True, False, None)
            result = {"pool": new_id, "closed": [p.id for p in [*local, *remote]], "transferred": str(transferred)}
            opened = PoolRec(new_id, scheme, region, eff, None, transferred, None)
            remote_json = [{"id": p.id, "node": p.held_by, "region": p.region_code,
                            "openedFrom": p.opened_from.isoformat(), "openingBalance": str(p.opening_balance)}
                           for p in remote]
            async with self.pool.acquire() as con, _transaction(con, inp.vertical_management):
                # the decision and this node's part in one statement (changestore.DECIDE_RAISE): a
                # transaction of its own unless the agencies are also put under the raised region
                if not await cs.decide_raise(con, change_id, result, opened, before, [p.id for p in local],
                                             remote_json, inp.idempotency_key, inp.to_json(),
                                             {**result, "change": change_id}, caller):
                    raise conflict(f"change {change_id} was aborted while it waited; nothing changed anywhere")
                decided = True
                if inp.vertical_management:
                    await con.execute(VERTICAL, region, SCHEME_DEPARTMENT[scheme])
                ph.mark("decide_sql")
            crash_point("coordinator-after-decision")
            ph.mark("decision_commit")
            await self.tell_decided(change_id, [k.name for k in kids])
            ph.done()
            # The answer shows the new pool as decided (its opening balance is the amount moved);
            # read afterwards, its opening balance is recomputed live from its predecessors.
            new = PoolRec(new_id, scheme, region, eff, None, transferred, None, virtual=True,
                          predecessor_recs=tuple([*closed_local, *closed_remote]))
            return RaiseOutcome(new, [*closed_local, *closed_remote], transferred, False, False, "COMMITTED")
        except BaseException:
            if not decided and not inp.dry_run:
                await self._abort_quietly(change_id)
            raise
        finally:
            self.in_flight.discard(change_id)

    def _holder(self, region: str) -> str:
        owner = self.node.child_for(region)
        return owner.name if owner is not None else self.node.name

    def _refused(self, refused: list[tuple[Peer, dict[str, Any]]]) -> TierfedError:
        codes_ = [a.get("code") for _, a in refused]
        code = Code.TIER_UNAVAILABLE if Code.TIER_UNAVAILABLE.value in codes_ else \
            Code(codes_[0]) if codes_[0] in {c.value for c in Code} else Code.BAD_USER_INPUT
        nodes = [a.get("node") or k.name for k, a in refused]
        # each refusal says which node refused (a participant's own words say "this node")
        said = [str(a.get("message")) for _, a in refused]
        text = "; ".join(m if m.startswith(f"node '{n}'") else f"node '{n}': {m}" for n, m in zip(nodes, said))
        return TierfedError(code, f"change refused, nothing changed on any node: {text}", nodes=nodes)

    async def _abort_quietly(self, change_id: str, asked: list[Peer] | None = None) -> None:
        """Decide ``change_id`` ABORTED here and tell its recorded participants; ``asked``: the
        children its prepare was sent to, told directly when no record of it was decided here (a
        raise's intent is written beside its prepares and may be missing). A child not told asks
        this node later; recovery finishes what this does not."""
        try:
            async with self.pool.acquire() as con, con.transaction():
                decided = await cs.decide(con, change_id, "ABORTED")
                row = None if decided else await cs.by_id(con, change_id)
            if row is not None and row.state == "COMMITTED":
                # The decision committed but its answer never came back (the connection dropped,
                # the deadline cancelled the wait): the change stands, its participants commit.
                log.warning("change %s: committed although its decision's answer was lost; telling commit",
                            change_id)
                await self._tell(change_id, "COMMITTED", kind=row.kind)
                return
            await self._tell(change_id, "ABORTED")
            if asked and not decided:  # no record of it here, or one a child's question wrote
                await asyncio.gather(*(self._ask(k, {"op": "abort", "change": change_id}) for k in asked))
        except Exception:  # noqa: BLE001 - recovery and the children's questions finish the abort
            log.exception("change %s: abort not finished; recovery will", change_id)

    async def _replay(self, prior: cs.ChangeRow, inp: RaiseInput) -> RaiseOutcome:
        if prior.kind != RAISE or prior.input != inp.to_json():
            raise conflict(f"idempotency key {inp.idempotency_key!r} was already used with other input")
        if prior.state == "PENDING" or prior.result is None:
            raise conflict(f"change {prior.id} with idempotency key {inp.idempotency_key!r} is in progress")
        result = prior.result
        async with self.pool.acquire() as con:
            recs = {r["id"]: _pool(r) for r in await con.fetch(POOLS_BY_ID, [result["pool"], *result["closed"]])}
        recs.update((p.id, p) for p in (await cs.remote_predecessors_of(self.pool, [result["pool"]]))[result["pool"]])
        return RaiseOutcome(recs[result["pool"]], [recs[i] for i in result["closed"]],
                            Decimal(result["transferred"]), False, True, "COMMITTED")


def _prior_answer(change_id: str, state: str, plan: dict[str, Any]) -> dict[str, Any]:
    """A prepare sent again: the answer its part gave, or CONFLICT when it has been aborted since."""
    if state == "ABORTED":
        raise conflict(f"change {change_id} was aborted here")
    return plan.get("answer") or {"ok": True, "pools": plan.get("pools", [])}


def _transaction(con: asyncpg.Connection, needed: bool) -> AbstractAsyncContextManager[Any]:
    """A transaction around several statements; none around one (it is a transaction of its own,
    and saves the round trips of BEGIN and COMMIT)."""
    return con.transaction() if needed else nullcontext()


def _overlapping(scheme: int, region: str) -> TierfedError:
    return conflict(f"another pooling change of {SCHEMES[scheme - 1]} on a subtree overlapping {region} "
                    "is in progress; try again when it has finished")


def _refuse_held(part: cs.RaisePart, scheme: int, region: str) -> None:
    """tiers.pooling.check_not_reserved, on what changestore.RAISE_CHECKS read."""
    held = part.held
    if held is not None:
        raise conflict(f"change {held['held_id']} ({held['held_kind']}, key {held['held_key']!r}) in progress "
                       f"holds {SCHEMES[scheme - 1]} pools overlapping {region}; try again when it has finished",
                       change=held["held_id"])


def decided_moves(row: cs.ChangeRow) -> dict[str, Any] | None:
    """What a decided transfer moves, as this node knows it: the coordinator's result, the
    origin's plan, or a destination's result (the moves its parent told it with the decision)."""
    return transfers.moves(row.plan) or transfers.moves(row.result)


def _moves_of(x: Any) -> dict[str, Any] | None:
    return transfers.moves(x) if isinstance(x, dict) else None


def _pool_json(p: PoolRec, node: str) -> dict[str, Any]:
    return {"id": p.id, "scheme": p.scheme, "region": p.region_code, "openedFrom": p.opened_from.isoformat(),
            "openingBalance": str(p.opening_balance), "node": node, "schemeName": SCHEMES[p.scheme - 1]}
