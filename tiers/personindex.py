"""The person index up the tree: which child node holds each person.

Every node keeps a feed of the ID numbers its subtree holds (``person_presence``,
numbered in commit order; migration 0004). A parent reads each child's feed from
its watermark onwards and records the child as a holder (``person_index``); those
rows enter the parent's own feed in the same transaction, so the index rises
tier by tier.

When does a parent read? When a child tells it that its feed moved (after an
import, through ``_tierPersonsChanged``: the child's import is reported done
once every ancestor has read it), when its link says the feed moved (below), at
start, and every ``index_sync_interval_s`` as a fallback.

A child is "current" only while this node has read its feed at least up to the last
head the child told it (its link's checks and pushes carry the head: ``tiers.links``),
the lease of this node's last check of the child still runs, and its last reading did
not fail. Any other child is asked by person lookups whatever the index says, so a
lagging index costs a request, never a missing month: a tell that failed is made up
for by the next check, which comes before the lease runs out, and the child reports
its commit done only once that lease has run out.

Node-to-node calls here run without a caller: they carry a token the node signs
for itself with the NODE role (scope: its own region), and a child answers its
feed only to a NODE token whose scope covers it; a parent reads a child only when
the token that tells it comes from that child's region.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import date
from typing import Any

import asyncpg
import httpx

from tierfed.auth import Keys
from tierfed.codes import mask_id, month_str
from tierfed.config import NodeConfig
from tierfed.errors import UserError

from . import background, person_store
from .duplicates import Duplicates, months_from_json, warnings
from .node import Child, Node
from .remote import LIVE, ChildClients, RemoteCalls
from .store import Store

log = logging.getLogger("tierfed.personindex")

PAGE = 5000
FEED = "query TierfedPresence($a: [JSON!]!) { c0: _tierCall(kind: \"presence\", args: $a) }"
TELL = "mutation TierfedPersonsChanged { _tierPersonsChanged }"
ELSEWHERE = "query TierfedElsewhere($a: [JSON!]!) { c0: _tierCall(kind: \"elsewhere\", args: $a) }"
# The operations a node sends with its own NODE token: a node with persisted_only runs these
# texts, and only these, for a NODE caller (no frontend registers them).
NODE_OPERATIONS = frozenset({FEED, ELSEWHERE, TELL})
NODE_ROLE = "NODE"


class PersonIndex:
    """One node's side of the person index: reading its children, telling its parent."""

    def __init__(self, cfg: NodeConfig, pool: asyncpg.Pool, node: Node, clients: ChildClients, keys: Keys) -> None:
        self.cfg = cfg
        self.pool = pool
        self.node = node
        self.clients = clients
        self.keys = keys
        self._current: set[str] = set()
        self._read_to: dict[str, int] = {}  # per child: the feed position its last reading ended at
        self._heads: dict[str, int] = {}  # per child: the head of its feed it last told (link)
        self._catching_up: dict[str, asyncio.Task[None]] = {}
        self._read_at: dict[str, float] = {}  # per child: when its last reading ended (the loop's clock)
        self._restore_pending: set[str] = set()  # children whose feed is to be read from its start
        # Whether the lease of this node's last check of a child still runs (``Links.lease_up``).
        self.lease_up: Callable[[str], bool] = lambda child: False
        self._locks: dict[str, asyncio.Lock] = {c.name: asyncio.Lock() for c in node.children}
        self._told: int = -1  # the feed position the parent last confirmed
        self._task: asyncio.Task[None] | None = None

    def is_current(self, child: str) -> bool:
        """Whether the index holds every person the child's subtree holds (module docstring)."""
        return (child in self._current and self.lease_up(child)
                and self._read_to.get(child, -1) >= self._heads.get(child, 0))

    async def caught_up(self) -> None:
        """Wait for the readings that heard heads started (an operator's command, a test)."""
        while self._catching_up:
            await asyncio.gather(*list(self._catching_up.values()), return_exceptions=True)

    def heard(self, child: Child, head: int, checked_at: float | None = None, behind_stored: bool = False) -> None:
        """The child told its feed's head: from a check sent at ``checked_at`` (the event loop's
        clock), or from a push (None); ``behind_stored``: the node's shared watermark of the child
        is below that head (``linkstore.CHECKED``: another process, or a rebuild, may have moved
        it). Behind it, the child is not current until a reading catches up, started here at once
        after a check (a push is followed by the child's tell, which reads; a failed tell is made
        up for by the next check). A check sent after this node's last reading ended that tells a
        head below what it read: the child's database was restored, its feed begun anew: read
        again from its start, the shared watermark first set back so every process sees it."""
        name = child.name
        restored = (checked_at is not None and head < self._read_to.get(name, -1)
                    and checked_at >= self._read_at.get(name, float("inf")))
        if restored:
            self._restore_pending.add(name)
            self._read_to[name] = -1
            self._current.discard(name)
            self._heads[name] = head
        else:
            self._heads[name] = max(head, self._heads.get(name, 0))
        behind = (behind_stored or self._read_to.get(name, -1) < head or name not in self._current
                  or name in self._restore_pending)
        if checked_at is None or not behind or name in self._catching_up:
            return

        async def catch_up() -> None:
            try:
                if name in self._restore_pending:
                    await person_store.sync_at(self.pool, name, 0)
                await self.sync_child(child)
            except Exception as e:  # noqa: BLE001 - the child stays not current: lookups ask it
                log.warning("person index: could not read child node %s: %s (asked on every lookup until read)",
                            name, f"{type(e).__name__}: {e}")
            finally:
                self._catching_up.pop(name, None)

        self._catching_up[name] = asyncio.get_running_loop().create_task(
            catch_up(), name=f"person-index-catch-up-{name}")

    def node_token(self, to: str | None = None) -> str | None:
        """A short-lived token this node signs for itself, or None when it only verifies tokens;
        ``to``: the node it is for (a child takes a token from above only when it names it)."""
        try:
            return self.keys.sign(f"node:{self.cfg.name}", self.cfg.region, [NODE_ROLE], 300, to=to)
        except UserError:
            return None

    # ------------------------------------------------------------ reading children

    async def sync_child(self, child: Child, from_start: bool = False) -> int:
        """Read the child's feed from the watermark (or, ``from_start``, from its start) to its end;
        returns the ID numbers read. Marks the child current on success and not current on failure
        (and raises)."""
        name = child.name
        async with self._locks[name]:
            fresh = from_start or name in self._restore_pending  # a restored child: from its start
            try:
                n, seq = await self._read_feed(child, fresh)
            except Exception:
                self._current.discard(name)
                raise
            if name in self._restore_pending and not fresh:
                return n  # a restore heard while this reading ran: the next reading starts over
            self._restore_pending.discard(name)
            self._read_to[name] = seq
            self._read_at[name] = asyncio.get_running_loop().time()
            self._current.add(name)
            return n

    async def _read_feed(self, child: Child, from_start: bool = False) -> tuple[int, int]:
        tok = self.node_token(child.name)
        if tok is None:
            raise UserError("this node cannot sign node tokens ([auth] has no secret or private key)")
        seq = 0 if from_start else (await person_store.synced(self.pool)).get(child.name, 0)
        total = 0
        while True:
            body = await self.clients.post(child, tok, FEED, {"a": [{"since": seq, "first": PAGE}]})
            if body.get("errors"):
                raise RuntimeError(f"child node '{child.name}' refused its person feed: {body['errors'][0].get('message')}")
            page = body["data"]["c0"][0]
            ids = [str(i) for i in page["ids"]]
            seq = int(page["seq"])
            await person_store.index_add(self.pool, child.name, ids, seq)
            total += len(ids)
            if len(ids) < PAGE:
                if from_start:
                    # the watermark is where this reading ended (a feed begun anew after a restore
                    # of the child's database ends lower than the one recorded)
                    await person_store.sync_at(self.pool, child.name, seq)
                return total, seq

    async def sync_all(self) -> dict[str, str]:
        """Read every child's feed; returns the children that could not be read, with why."""
        problems: dict[str, str] = {}

        async def one(ch: Child) -> None:
            try:
                await self.sync_child(ch)
            except Exception as e:  # noqa: BLE001 - reported and retried
                problems[ch.name] = f"{type(e).__name__}: {e}"

        await asyncio.gather(*(one(c) for c in self.node.children))
        for name, why in problems.items():
            log.warning("person index: could not read child node %s: %s (asked on every lookup until read)",
                        name, why)
        return problems

    async def rebuild(self) -> dict[str, int]:
        """Read every child's feed again from its start, adding what the index misses. Nothing is
        removed first: a lookup meanwhile, here or in a serving process beside this command,
        still finds every holder the index named (emptied first, it had missed their months and
        said complete). An entry of a person a child no longer holds costs a request, never a month."""
        out = {}
        for ch in self.node.children:
            out[ch.name] = await self.sync_child(ch, from_start=True)
        return out

    def child_of_caller(self, scope: str) -> Child | None:
        return next((c for c in self.node.children if c.region == scope), None)

    # ------------------------------------------------------------ telling the parent

    async def tell_parent(self) -> str | None:
        """Tell the parent our feed moved and wait until it (and every ancestor) has read it.
        Returns None when done or when there is no parent, else what went wrong."""
        parent = self.cfg.parent
        if parent is None:
            return None
        head = await person_store.presence_head(self.pool)
        tok = self.node_token()
        if tok is None:
            return "this node cannot sign node tokens: its parent reads its persons at its own interval"
        try:
            async with httpx.AsyncClient(timeout=httpx.Timeout(parent.timeout_s)) as c:
                r = await c.post(parent.url, json={"query": TELL},
                                 headers={"Authorization": f"Bearer {tok}", "Accept": "application/json"})
            body: Any = r.json()
        except (httpx.HTTPError, ValueError, OSError) as e:
            return f"parent node at {parent.url} could not be told ({type(e).__name__}); it reads again within " \
                   f"{self.cfg.index_sync_interval_s:g} s"
        errors = body.get("errors") if isinstance(body, dict) else None
        if errors or not isinstance(body, dict) or not (body.get("data") or {}).get("_tierPersonsChanged"):
            msg = errors[0].get("message") if errors else "no confirmation"
            return f"parent node at {parent.url} did not confirm: {msg}"
        self._told = head
        return None

    async def held_elsewhere(self, first: date, last: date) -> tuple[list[person_store.RecordMonths], str | None]:
        """From the parent: the months held outside this node's subtree, in a period, of the
        persons this subtree shares with the rest of the federation (and what went wrong)."""
        parent = self.cfg.parent
        if parent is None:
            return [], None
        tok = self.node_token()
        if tok is None:
            return [], "this node cannot sign node tokens to ask its parent"
        try:
            async with httpx.AsyncClient(timeout=httpx.Timeout(parent.timeout_s * 4)) as c:
                r = await c.post(parent.url, json={"query": ELSEWHERE, "variables": {
                    "a": [{"from": month_str(first), "to": month_str(last)}]}},
                    headers={"Authorization": f"Bearer {tok}", "Accept": "application/json"})
            body: Any = r.json()
            if body.get("errors"):
                return [], f"parent node at {parent.url}: {body['errors'][0].get('message')}"
            return months_from_json(body["data"]["c0"][0]), None
        except (httpx.HTTPError, ValueError, OSError, KeyError, TypeError, IndexError) as e:
            return [], f"parent node at {parent.url} could not be asked ({type(e).__name__})"

    async def duplicate_warnings(self, store: Store, first: date, last: date,
                                 imported: Callable[[set[str]], set[tuple[str, int, date]]]
                                 ) -> tuple[list[str], str | None]:
        """After an import: its records (``imported`` gives the file's (person, scheme, month) keys
        of some persons) whose person, scheme and month are also held elsewhere in the federation,
        below this node or outside its subtree, one line each; and what could not be asked."""
        months, problem = await self.held_elsewhere(first, last)
        if self.node.children:
            live = RemoteCalls(self.clients, lambda child: self.node_token(child) or "", {}, {}, LIVE)
            found = await Duplicates(self.node, store, live, self.is_current).find(self.node.region, first, last, 1000)
            for d in found.duplicates if found else []:
                months.extend(person_store.RecordMonths(d.id_number, d.name, d.scheme, r, (d.month,)) for r in d.regions)
        ids = {m.id_number for m in months}
        keys = imported(ids) if ids else set()
        own = [k for k in await person_store.own_keys(self.pool, sorted(ids), first, last) if k[:3] in keys]
        return warnings(own, months, mask_id), problem

    async def tell_if_moved(self) -> None:
        if self.cfg.parent is None:
            return
        if await person_store.presence_head(self.pool) != self._told:
            problem = await self.tell_parent()
            if problem:
                log.warning("person index: %s", problem)

    # ------------------------------------------------------------ in the background

    async def start(self) -> None:
        """Read the children and tell the parent once, then keep doing so in the background."""
        if self.node.children:
            await self.sync_all()
        await self.tell_if_moved()
        self._task = background.every("person-index", self.cfg.index_sync_interval_s, self._round)

    async def _round(self) -> None:
        if self.node.children:
            await self.sync_all()
        await self.tell_if_moved()

    async def stop(self) -> None:
        await background.stop(self._task)
        self._task = None
        for t in list(self._catching_up.values()):
            await background.stop(t)
