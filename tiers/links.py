"""Versions pushed up the tree: a parent answers from what its children told it while
their links are up, and checks them per request while a link is down.

Two directions over the same link (migration 0012):

- **Up, on commit (push).** After a commit, a child posts its new version to its parent
  (``POST /tierfed/link``); the parent records it (its own version advances in the same
  transaction), pushes its own new version to its parent in turn, and only then
  acknowledges. A commit is reported done once the push is acknowledged: every ancestor
  has then moved its version, so the very next question anywhere above misses the cache.
- **Down, periodically (the check, and the lease).** Every ``link_lease_s / 3`` a parent
  asks each child for its version (``GET /tierfed/link``). The child answers with its
  version and a lease: how long the parent may answer from it without asking again. The
  child records the lease *before* reading its version; the parent counts it from the
  moment it sent the question, so the parent's lease always ends before the child's
  record of it does. A node grants no lease when it has no parent to push to, and never
  a longer one than its own links to its children have left (0 when one is down): a
  lease covers the whole subtree below.

Why this is never stale: a commit is reported done either after every ancestor
acknowledged its version, or, when the push fails, after the lease the child last
granted has run out, when the parent checks the child per request again (a child that
cannot be checked is reported as failed: ``tiers.versions``). No answer served from
memory can miss a commit reported done before its request arrived.

The person index rides on the same link: a check's answer and a push carry the head of the
child's person feed (``tiers.personindex``). The parent takes its index of a child as current
only while its lease on the child runs and it has read the child's feed up to the last head
the child told it; else person lookups ask the child. So a feed that moved while the child
could not tell its parent (the tell failed) is never missed: the parent hears the head at its
next check, or its lease runs out first, and the child's commit is reported done only then.

Node-to-node calls here run without a caller: they carry the NODE token a node signs
for itself (``tiers.personindex``); a parent accepts a push only from a configured
child's region, a child answers a check only to a token whose scope is above its region.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from typing import Any

import asyncpg
import httpx

from tierfed.config import NodeConfig

from . import background
from .linkstore import CHECKED, DOWN, GRANT, INDEX_BEHIND, LEASE_LEFT, LEFT, OWN_AND_PERSONS, PUSHED
from .node import Child, Node
from .remote import ChildClients
from .stepclient import StepClient, StepError

log = logging.getLogger("tierfed.links")

LINK_PATH = "/tierfed/link"
NOW = "select clock_timestamp()"


def base_url(graphql_url: str) -> str:
    return graphql_url.rsplit("/", 1)[0]


def feed_head(value: Any) -> int | None:
    """A person feed's head as a child told it (a whole number), or None (an older node sends none)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


class Links:
    """One node's side of its links: checking children, granting leases to and pushing to its parent."""

    def __init__(self, cfg: NodeConfig, pool: asyncpg.Pool, node: Node, clients: ChildClients,
                 node_token: Any) -> None:
        self.cfg = cfg
        self.pool = pool
        self.node = node
        self.clients = clients
        self.node_token = node_token  # () -> str | None, the NODE token this node signs for itself
        self.lease_s = cfg.link_lease_s
        self._acked = -1  # the own version the parent last acknowledged (in this process)
        self._push = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._kicked = False
        self._parent_client: httpx.AsyncClient | None = None
        # Pushes to an http:// parent go over the small client of change steps (one write per push,
        # no httpx machinery: a push follows every commit, and an httpx client's creation alone
        # costs tens of milliseconds of CPU at a node's first commit).
        self._parent_steps = StepClient()
        self._tasks: set[asyncio.Task[None]] = set()
        self.checks = 0
        self.pushes = 0
        self.on_checked: list[Any] = []  # callbacks after each round of checks (live answers' fallback)
        # A child told its person feed's head (child, head): the person index (``Runtime``).
        self.on_persons: Any = None
        # Per child, until when (the event loop's clock) the lease of this process's last check runs.
        self._up_until: dict[str, float] = {}

    # ------------------------------------------------------------ parent side

    async def check_child(self, child: Child) -> bool:
        """Ask a child its version and lease; the link is up until the lease runs out. False when it
        could not be asked (the link is then down at once: requests ask the child themselves)."""
        tok = self.node_token(child.name)
        if tok is None or self.lease_s <= 0:
            return False
        self.checks += 1
        sent: datetime = await self.pool.fetchval(NOW)
        sent_here = asyncio.get_running_loop().time()
        try:
            r = await self.clients.clients[child.name].get(
                base_url(child.url) + LINK_PATH, headers={"Authorization": f"Bearer {tok}", "Accept": "application/json"})
            body = r.json()
            version, valid = int(body["version"]), float(body["validFor"])
            persons = feed_head(body.get("persons"))
            if r.status_code != 200:
                raise ValueError(f"HTTP {r.status_code}")
        except (httpx.HTTPError, ValueError, OSError, KeyError, TypeError, AttributeError) as e:
            log.info("link to child node %s down: %s", child.name, type(e).__name__)
            self._up_until.pop(child.name, None)
            await self.pool.execute(DOWN, child.name)
            return False
        lease = max(0.0, min(valid, self.lease_s))
        behind = bool(await self.pool.fetchval(CHECKED, child.name, version, sent, lease, persons or 0))
        self._up_until[child.name] = sent_here + lease
        self._heard(child, persons, sent_here, behind)
        return valid > 0

    def lease_up(self, child: str) -> bool:
        """Whether the lease of this process's last check of the child still runs (counted from
        when the check was sent, so it ends before the child's record of it)."""
        return asyncio.get_running_loop().time() < self._up_until.get(child, 0.0)

    def _heard(self, child: Child, persons: int | None, checked_at: float | None, behind: bool = False) -> None:
        """The child told its feed's head: from a check sent at ``checked_at`` (the event loop's
        clock; ``behind``: the node's shared watermark of the child is below it), or from a push."""
        if self.on_persons is not None and persons is not None:
            self.on_persons(child, persons, checked_at, behind)

    async def check_children(self) -> dict[str, bool]:
        """Check every child once, concurrently: which links are up."""
        got = await asyncio.gather(*(self.check_child(c) for c in self.node.children))
        for cb in self.on_checked:
            cb()
        return {c.name: ok for c, ok in zip(self.node.children, got)}

    async def pushed(self, child: Child, version: int, persons: int | None = None) -> str | None:
        """A child pushed its version (and its person feed's head): record it, push ours up, then
        acknowledge (None) or say what failed."""
        await self.pool.execute(PUSHED, child.name, version, persons or 0)
        self._heard(child, persons, None, False)
        return await self.announce()

    # ------------------------------------------------------------ child side

    async def grant(self) -> tuple[int, float, int]:
        """Answer the parent's check: the lease (recorded first), then the version it covers and
        the head of this node's person feed."""
        valid = 0.0
        # No lease without a way to push: a parent to push to, and a key to sign the push with.
        if self.cfg.parent is not None and self.lease_s > 0 and self.node_token() is not None:
            valid = self.lease_s
            if self.node.children:
                left = await self.pool.fetchval(LEFT, [c.name for c in self.node.children])
                valid = min(valid, float(left or 0.0))
                # Nor while this node's person index is behind a child's feed (as any worker of this
                # node heard it): the parent, taking this node's index as whole, would miss the
                # persons not read yet (tiers.personindex).
                if valid > 0 and await self.pool.fetchval(INDEX_BEHIND, [c.name for c in self.node.children]):
                    valid = 0.0
            if valid > 0:
                await self.pool.execute(GRANT, valid)
        row = await self.pool.fetchrow(OWN_AND_PERSONS)
        return int(row["version"]), valid, int(row["persons"])

    async def announce(self, wait: bool = True) -> str | None:
        """Push this node's version to its parent and wait for every ancestor's acknowledgement.
        When that fails (and ``wait``: a commit is being reported), wait until the lease last granted
        to the parent has run out (the parent then checks this node per request), and say so.
        None when done, or with no parent."""
        parent = self.cfg.parent
        if parent is None:
            return None
        async with self._push:
            row = await self.pool.fetchrow(OWN_AND_PERSONS)
            version, persons = int(row["version"]), int(row["persons"])
            if version == self._acked:
                return None
            tok = self.node_token()
            problem = None
            if tok is None:
                problem = "this node cannot sign node tokens"
            else:
                self.pushes += 1
                url = base_url(parent.url) + LINK_PATH
                headers = {"Authorization": f"Bearer {tok}", "Accept": "application/json"}
                try:
                    # The parent acknowledges after its own parent did: allow each tier its timeout.
                    if self._parent_steps.handles(url):
                        status, raw = await self._parent_steps.post(
                            url, json.dumps({"version": version, "persons": persons}).encode(),
                            {**headers, "Content-Type": "application/json"}, parent.timeout_s * 3)
                        body: Any = json.loads(raw)
                    else:
                        if self._parent_client is None:
                            # Kept for the node's lifetime: a push reuses its connection.
                            self._parent_client = httpx.AsyncClient(timeout=httpx.Timeout(parent.timeout_s * 3))
                        r = await self._parent_client.post(url, json={"version": version, "persons": persons},
                                                           headers=headers)
                        status, body = r.status_code, r.json()
                    if status != 200 or not isinstance(body, dict) or body.get("ok") is not True:
                        problem = str(body.get("message") if isinstance(body, dict) else body)[:300]
                except (httpx.HTTPError, StepError, TimeoutError, ValueError, OSError) as e:
                    problem = f"{type(e).__name__}"
            if problem is None:
                self._acked = version
                return None
            if not wait:
                return f"parent node at {parent.url} was not told of version {version} ({problem})"
            await self.wait_out_lease(f"parent node at {parent.url} not told of version {version} ({problem})")
            return (f"parent node at {parent.url} was not told of this commit ({problem}); it checks this node "
                    f"per request from now on, until its next check of this node succeeds")

    async def wait_out_lease(self, why: str) -> float:
        """Wait until the lease this node last granted its parent has run out (the parent, and
        every node above, whose leases this one bounds, then ask this node per request); the
        seconds waited. The protocol's wait, not a guess: see the module's docstring."""
        left = float(await self.pool.fetchval(LEASE_LEFT) or 0.0)
        log.warning("%s: waiting %.1f s for the lease granted to the parent to run out", why, left)
        if left > 0:
            await asyncio.sleep(left)
        return left

    def kick(self) -> None:
        """This node's version moved (tierfed_version): push it up soon, bursts folded into one push."""
        if self.cfg.parent is None or self._kicked:
            return
        self._kicked = True

        async def push() -> None:
            await asyncio.sleep(0)
            self._kicked = False
            problem = await self.announce(wait=False)
            if problem:
                log.info("links: %s", problem)

        task = asyncio.get_running_loop().create_task(push(), name="tier-link-push")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------ in the background

    def start(self, first_at_once: bool = True) -> None:
        if (self.node.children and self.lease_s > 0) or self.cfg.parent is not None:
            self._task = background.every("tier-links", self.lease_s / 3 if self.lease_s > 0 else 30.0,
                                          self._round, first_at_once=first_at_once)

    async def begin(self) -> None:
        """The children's leases before anything is asked (until a check, a person lookup asks every
        child whatever the index says, and every answer asks versions), then the rounds."""
        checked = bool(self.node.children and self.lease_s > 0)
        if checked:
            await self.check_children()
        self.start(first_at_once=not checked)

    async def pause(self) -> None:
        """Stop the background rounds (lease checks, a version no push followed) until ``start``:
        pushes after commits go on. What a round reads and writes depends on the clock, so a
        caller counting a change's statements pauses them."""
        await background.stop(self._task)
        self._task = None

    async def _round(self) -> None:
        if self.node.children and self.lease_s > 0:
            await self.check_children()
        # A commit no push followed (psql, a recovery step): the parent learns it here.
        problem = await self.announce(wait=False)
        if problem:
            log.info("links: %s", problem)

    async def stop(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        if self._parent_client is not None:
            await self._parent_client.aclose()
            self._parent_client = None
        await self._parent_steps.aclose()
        await self.pause()
