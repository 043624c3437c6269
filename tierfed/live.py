"""Live answers: subscriptions as queries recomputed when the versions they read move.

A subscription ``subscription { rollup(...) {...} }`` is run as the query of the same
fields (``Subscription`` mirrors fields of ``Query``), through the same path as a query
over HTTP: limits, validation, scope, roles and the answer cache. Subscribers that ask
the same thing (the normalized operation and variables) with the same scope and roles
share one *watch*: one computation per change, whatever their number. A PII_READER's
watch is its own (each unmasked read is audited for its reader).

When is a watch recomputed? Each time this node's version moves (``tierfed_version``,
migration 0012): a commit here, or a child's version pushed or checked (``tiers.links``),
so a commit at a county node reaches a subscriber at the central node. And after each
round of link checks, for watches whose subtree a down link leaves to per-request
checks. A recomputation first reads the subtree version as the watch's scope sees it;
the answer is run again only when it moved, and sent only when its bytes changed.

Each answer goes out with an id (a hash of the watch and the answer's bytes). A client
that reconnects with the id it last saw gets the answer only if it is another one.
A subscription ends when its caller's token expires (UNAUTHENTICATED, then complete),
or after an answer that can never change (a refusal: FORBIDDEN, BAD_USER_INPUT, ...).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from graphql import DocumentNode, FragmentDefinitionNode, OperationDefinitionNode, OperationType, print_ast

from . import codes as calendar
from .answers import cache_key, cacheable
from .auth import Caller
from .errors import Code, TierfedError
from .execution import Prepared, RequestError, format_error, masked, prepare, run
from .runtime import Runtime
from .selfservice import self_role
from .tiers.versions import subtree_version

log = logging.getLogger("tierfed.live")

# Codes of an answer that no commit can change: the subscription ends after sending it.
FINAL = frozenset({Code.FORBIDDEN.value, Code.UNAUTHENTICATED.value, Code.BAD_USER_INPUT.value,
                   Code.QUERY_TOO_COMPLEX.value})
PARALLEL = 8  # watches recomputed at once
# Seconds between fallback checks of watches whose subtree is checked per request (a child whose
# link is down, or that pushes nothing): their version is read again, the answer rerun if it moved.
FALLBACK_S = 2.0


def query_form(rt: Runtime, text: str, operation_name: str | None,
               variables: dict[str, Any]) -> tuple[str, Prepared]:
    """Check a subscription as such (its fields, arguments, limits), then prepare the query of the
    same fields: the text and the prepared query. RequestError when it cannot run."""
    sub = prepare(rt, text, operation_name, variables)
    op = sub.operation
    if op.operation != OperationType.SUBSCRIPTION:
        raise RequestError([TierfedError(Code.BAD_USER_INPUT,
                                         f"send a subscription here, not a {op.operation.value}: "
                                         "queries and mutations go to POST /graphql")])
    as_query = OperationDefinitionNode(operation=OperationType.QUERY, name=op.name, directives=op.directives,
                                       variable_definitions=op.variable_definitions, selection_set=op.selection_set)
    frags = [d for d in sub.document.definitions if isinstance(d, FragmentDefinitionNode)]
    qtext = print_ast(DocumentNode(definitions=(as_query, *frags)))
    return qtext, prepare(rt, qtext, operation_name, variables)


@dataclass(eq=False)
class Subscriber:
    """One subscription: the latest answer not yet sent (older ones are skipped), and why it ended."""

    caller: Caller
    last_id: str | None = None
    pending: tuple[str, bytes] | None = None
    ended: dict[str, Any] | None = None  # {"errors": [...]} or {} (complete)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    watch: Watch | None = None
    timer: asyncio.TimerHandle | None = None

    def offer(self, answer_id: str, body: bytes) -> None:
        if answer_id == self.last_id or self.ended is not None:
            return
        self.pending = (answer_id, body)
        self.wake.set()

    def end(self, errors: list[dict[str, Any]] | None = None) -> None:
        if self.ended is None:
            self.ended = {"errors": errors} if errors else {}
            self.wake.set()

    async def next(self) -> tuple[str, bytes] | None:
        """The next answer to send, or None once the subscription has ended (and all is sent)."""
        while True:
            if self.pending is not None:
                got, self.pending = self.pending, None
                self.last_id = got[0]
                return got
            if self.ended is not None:
                return None
            self.wake.clear()
            await self.wake.wait()


@dataclass(eq=False)
class Watch:
    key: str
    query: str
    prepared: Prepared
    variables: dict[str, Any]
    operation_name: str | None
    subscribers: set[Subscriber] = field(default_factory=set)
    version: str | None = None
    answer_id: str | None = None
    body: bytes | None = None
    final: bool = False
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # The month the answer was computed in: figures "as of now" move with the calendar, which
    # moves no version (the cache key holds the month the watch began in).
    month: date = field(default_factory=lambda: calendar.current_month())

    @property
    def caller(self) -> Caller:
        """The subscriber whose token lasts longest asks the children: every subscriber has the same scope and roles."""
        return max(self.subscribers, key=lambda s: s.caller.exp or float("inf")).caller


class Live:
    """One worker's live answers."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.watches: dict[str, Watch] = {}
        self.subscribers = 0
        self.computations = 0  # answers computed (or read from the answer cache) for watches
        self.refreshes = 0
        self._dirty = False
        self._loop_task: asyncio.Task[None] | None = None
        self._closed = False
        self._fallback: asyncio.Task[None] | None = None
        rt.on_version.append(self.moved)
        rt.links.on_checked.append(self.checked)

    # ------------------------------------------------------------ subscribing

    async def subscribe(self, caller: Caller, text: str, operation_name: str | None, variables: dict[str, Any],
                        last_id: str | None = None) -> Subscriber:
        """A new subscription; its first answer is offered unless it is ``last_id``. RequestError when
        the operation cannot run, TierfedError when this node serves its maximum of subscriptions."""
        limit = self.rt.cfg.max_subscriptions
        if self.subscribers >= limit:
            raise TierfedError(Code.QUERY_TOO_COMPLEX, f"this node serves at most {limit} live answers at once: "
                               "close one, or ask again later", limit="max_subscriptions")
        if caller.exp is not None and caller.exp <= time.time():
            raise TierfedError(Code.UNAUTHENTICATED, "token has expired: ask for a new one")
        qtext, prepared = query_form(self.rt, text, operation_name, variables)
        key = cache_key(qtext, prepared.document, operation_name, variables, caller)
        if caller.has("PII_READER") or self_role(caller.roles) is not None:
            # Unmasked reads are audited per reader, and a self-service token reads its own
            # subject's records only (its scope and roles are every subject's): never shared.
            key = hashlib.sha256(f"{key}\x1f{caller.sub}".encode()).hexdigest()
        sub = Subscriber(caller, last_id)
        if self._fallback is None and self.rt.node.children:
            # A context of its own: not the subscribing request's (its record of child calls would grow forever).
            self._fallback = asyncio.get_running_loop().create_task(self._fall_back(), name="live-fallback",
                                                                    context=contextvars.Context())
        watch = self.watches.get(key)
        if watch is None:
            watch = self.watches[key] = Watch(key, qtext, prepared, variables, operation_name)
        watch.subscribers.add(sub)
        sub.watch = watch
        self.subscribers += 1
        self._gauges()
        if caller.exp is not None:
            sub.timer = asyncio.get_running_loop().call_later(
                max(0.0, caller.exp - time.time()), self._expired, sub)
        if not watch.ready.is_set():
            try:
                async with watch.lock:
                    if not watch.ready.is_set():
                        await self._refresh(watch, first=True)
                        watch.ready.set()
            except BaseException:  # the client went away meanwhile (cancelled): nothing left behind
                self.unsubscribe(sub)
                raise
        else:
            # A watch computed before: its answer is offered once it is known to be current (a
            # recomputation for a commit already reported done may be running: the lock waits
            # for it, and the version is read again).
            try:
                async with watch.lock:
                    await self._refresh(watch)
            except BaseException:
                self.unsubscribe(sub)
                raise
            if watch.body is not None and watch.answer_id is not None:
                sub.offer(watch.answer_id, watch.body)
            if watch.final:
                sub.end()
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        watch, sub.watch = sub.watch, None
        if sub.timer is not None:
            sub.timer.cancel()
        sub.end()
        if watch is None:
            return
        watch.subscribers.discard(sub)
        self.subscribers -= 1
        if not watch.subscribers and self.watches.get(watch.key) is watch:
            del self.watches[watch.key]
        self._gauges()

    def _gauges(self) -> None:
        self.rt.metrics.live_subscriptions.set(self.subscribers)
        self.rt.metrics.live_watches.set(len(self.watches))

    def _expired(self, sub: Subscriber) -> None:
        sub.end([dict(TierfedError(Code.UNAUTHENTICATED, "token has expired: the subscription ends; subscribe "
                                   "again with a new token").formatted)])

    # ------------------------------------------------------------ recomputing

    def moved(self, *_: Any) -> None:
        """This node's version moved: recompute every watch (once, however many moves arrive meanwhile)."""
        if not self.watches or self._closed:
            return
        self._dirty = True
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.get_running_loop().create_task(self._refresh_all(), name="live-refresh",
                                                                     context=contextvars.Context())

    def checked(self) -> None:
        """After a round of link checks (whatever its outcome): every watch reads its subtree
        version again (one primary-key lookup while the links are up) and is recomputed if it
        moved. A watch whose version asks children per request may have moved; so may one
        computed while every link was up, when a link has since gone down and its child can no
        longer vouch for the answer (it then says ``complete: false``)."""
        if self.watches:
            self.moved()

    async def _fall_back(self) -> None:
        while not self._closed:
            await asyncio.sleep(FALLBACK_S)
            self.checked()

    async def _refresh_all(self) -> None:
        gate = asyncio.Semaphore(PARALLEL)

        async def one(w: Watch) -> None:
            async with gate, w.lock:
                if w.subscribers:
                    await self._refresh(w)

        while self._dirty and not self._closed:
            self._dirty = False
            self.refreshes += 1
            await asyncio.gather(*(one(w) for w in list(self.watches.values())))

    async def _refresh(self, w: Watch, first: bool = False) -> None:
        rt = self.rt
        caller = w.caller
        version = await subtree_version(rt.pool, rt.node, rt.clients, caller.scope, caller.token)
        now = calendar.current_month()
        if version is not None and version == w.version and now == w.month and not first:
            return
        turned, w.month = now != w.month, now
        body, codes = await self._compute(w, caller, version, cached=not turned)
        w.version = version
        answer_id = hashlib.sha256(w.key.encode() + b"\x1f" + body).hexdigest()[:32]
        w.final = bool(codes & FINAL)
        if answer_id != w.answer_id:
            w.answer_id, w.body = answer_id, body
            for s in list(w.subscribers):
                s.offer(answer_id, body)
        if w.final:
            for s in list(w.subscribers):
                s.end()

    async def _compute(self, w: Watch, caller: Caller, version: str | None,
                       cached: bool = True) -> tuple[bytes, set[str]]:
        rt = self.rt
        self.computations += 1
        rt.metrics.live_computations.inc()
        keep = version is not None and rt.answers.enabled and cacheable(w.prepared.operation, caller)
        if keep and cached:
            hit = rt.answers.get(w.key, version)  # type: ignore[arg-type]
            if hit is not None:
                return hit.body, set()
        try:
            result = await asyncio.wait_for(run(rt, caller, w.prepared, w.variables, w.operation_name),
                                            rt.cfg.limits.deadline_s)
            out: dict[str, Any] = {}
            if result.errors:
                out["errors"] = [format_error(e) for e in result.errors]
            out["data"] = result.data
        except TimeoutError:
            out = {"errors": [dict(TierfedError(Code.QUERY_TOO_COMPLEX, "the live answer did not finish within this "
                                           "node's deadline: ask for fewer regions, months or nested levels",
                                           limit="deadline_s").formatted)], "data": None}
        except Exception as e:  # noqa: BLE001 - a lost database or a bug: masked, tried again on the next move
            out = {"errors": [masked(e)], "data": None}
        body = json.dumps(out, ensure_ascii=False, separators=(",", ":")).encode()
        codes = {str((e.get("extensions") or {}).get("code")) for e in out.get("errors", ())}
        if keep and not codes and b'"complete":false' not in body:
            rt.answers.put(w.key, version, body)  # type: ignore[arg-type]
        return body, codes

    async def close(self) -> None:
        self._closed = True
        for w in list(self.watches.values()):
            for s in list(w.subscribers):
                s.end()
        for task in (self._loop_task, self._fallback):
            if task is not None:
                task.cancel()


def payload(body: bytes, answer_id: str) -> bytes:
    """An answer as the ``payload`` of a next message: its bytes, with the id under extensions."""
    head = body[:-1] if body.endswith(b"}") else body
    return head + b',"extensions":{"answerId":"' + answer_id.encode() + b'"}}'


