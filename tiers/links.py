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
from .linkstore import CHECKED, DOWN, GRANT, LEASE_LEFT, LEFT, OWN, PUSHED
from .node import Child, Node
from .remote import ChildClients
from .stepclient import StepClient, StepError

log = logging.getLogger("tierfed.links")

LINK_PATH = "/tierfed/link"
NOW = "select clock_timestamp()"


def base_url(graphql_url: str) -> str:
    return graphql_url.rsplit("/", 1)[0]


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

    # ------------------------------------------------------------ parent side

    async def check_child(self, child: Child) -> bool:
        """Ask a child its version and lease; the link is up until the lease runs out. False when it
        could not be asked (the link is then down at once: requests ask the child themselves)."""
        tok = self.node_token(child.name)
        if tok is None or self.lease_s <= 0:
            return False
        self.checks += 1
        sent: datetime = await self.pool.fetchval(NOW)
        try:
            r = await self.clients.clients[child.name].get(
                base_url(child.url) + LINK_PATH, headers={"Authorization": f"Bearer {tok}", "Accept": "application/json"})
            body = r.json()
            version, valid = int(body["version"]), float(body["validFor"])
            if r.status_code != 200:
                raise ValueError(f"HTTP {r.status_code}")
        except (httpx.HTTPError, ValueError, OSError, KeyError, TypeError) as e:
            log.info("link to child node %s down: %s", child.name, type(e).__name__)
            await self.pool.execute(DOWN, child.name)
            return False
        await self.pool.execute(CHECKED, child.name, version, sent, max(0.0, min(valid, self.lease_s)))
        return valid > 0

    async def check_children(self) -> dict[str, bool]:
        """Check every child once, concurrently: which links are up."""
        got = await asyncio.gather(*(self.check_child(c) for c in self.node.children))
        for cb in self.on_checked:
            cb()
        return {c.name: ok for c, ok in zip(self.node.children, got)}

    async def pushed(self, child: Child, version: int) -> str | None:
        """A child pushed its version: record it, push ours up, then acknowledge (None) or say what failed."""
        await self.pool.execute(PUSHED, child.name, version)
        return await self.announce()

    # ------------------------------------------------------------ child side

    async def grant(self) -> tuple[int, float]:
        """Answer the parent's check: the lease (recorded first), then the version it covers."""
        valid = 0.0
        # No lease without a way to push: a parent to push to, and a key to sign the push with.
        if self.cfg.parent is not None and self.lease_s > 0 and self.node_token() is not None:
            valid = self.lease_s
            if self.node.children:
                left = await self.pool.fetchval(LEFT, [c.name for c in self.node.children])
                valid = min(valid, float(left or 0.0))
            if valid > 0:
                await self.pool.execute(GRANT, valid)
        return int(await self.pool.fetchval(OWN)), valid

    async def announce(self, wait: bool = True) -> str | None:
        """Push this node's version to its parent and wait for every ancestor's acknowledgement.
        When that fails (and ``wait``: a commit is being reported), wait until the lease last granted
        to the parent has run out (the parent then checks this node per request), and say so.
        None when done, or with no parent."""
        parent = self.cfg.parent
        if parent is None:
            return None
        async with self._push:
            version = int(await self.pool.fetchval(OWN))
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
                            url, json.dumps({"version": version}).encode(),
                            {**headers, "Content-Type": "application/json"}, parent.timeout_s * 3)
                        body: Any = json.loads(raw)
                    else:
                        if self._parent_client is None:
                            # Kept for the node's lifetime: a push reuses its connection.
                            self._parent_client = httpx.AsyncClient(timeout=httpx.Timeout(parent.timeout_s * 3))
                        r = await self._parent_client.post(url, json={"version": version}, headers=headers)
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
            left = float(await self.pool.fetchval(LEASE_LEFT) or 0.0)
            log.warning("parent node at %s not told of version %d (%s): waiting %.1f s for its lease to run out",
                        parent.url, version, problem, left)
            if left > 0:
                await asyncio.sleep(left)  # the protocol's wait, not a guess: see the module's docstring
            return (f"parent node at {parent.url} was not told of this commit ({problem}); it checks this node "
                    f"per request from now on, until its next check of this node succeeds")

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

    def start(self) -> None:
        if (self.node.children and self.lease_s > 0) or self.cfg.parent is not None:
            self._task = background.every("tier-links", self.lease_s / 3 if self.lease_s > 0 else 30.0,
                                          self._round, first_at_once=True)

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
