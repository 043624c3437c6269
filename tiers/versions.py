"""Data versions: this node's (one row in PostgreSQL, migration 0007) and its subtree's.

A node's own version advances in the same transaction as every commit that
changes what an answer can show (triggers do it, so no writer can forget). It also
advances when a child's version, pushed or checked, moves (``tiers.links``,
migration 0012). The version of a subtree, as a caller with a given scope sees it,
is therefore the node's own alone while the links to every child that scope reaches
are up; for a child whose link is down, the child's subtree version is added, asked
of the child with one small GET per operation (``GET /tierfed/version``). A child
that cannot be asked makes the subtree's version unknown (None): nothing is then
served from or stored in the answer cache, and the operation runs as usual,
reporting the child as failed if it is still down.

Order matters for freshness: versions are read before the figures, so a figure
is never older than the version an answer is filed under.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
import httpx

from tierfed import observe
from tierfed.telemetry import child_headers

from .linkstore import OWN_VERSION, SUBTREE_VERSION
from .node import Child, Node
from .remote import ChildClients

log = logging.getLogger("tierfed.versions")

VERSION_PATH = "/tierfed/version"


async def own_version(pool: asyncpg.Pool) -> int:
    """This node's version: one primary-key lookup."""
    return int(await pool.fetchval(OWN_VERSION))


def version_url(child: Child) -> str:
    return child.url.rsplit("/", 1)[0] + VERSION_PATH


def reached(node: Node, scope: str) -> list[Child]:
    """The children whose part a caller with this scope can see (their region inside the
    scope, or the scope inside their region)."""
    tree = node.tree
    return [c for c in node.children if tree.within(c.region, scope) or tree.within(scope, c.region)]


async def child_version(clients: ChildClients, child: Child, token: str) -> str | None:
    """A child's subtree version for this token, or None when it cannot be asked."""
    clients.version_requests[child.name] = clients.version_requests.get(child.name, 0) + 1
    try:
        r = await clients.clients[child.name].get(
            version_url(child), headers={"Authorization": f"Bearer {token}", "Accept": "application/json",
                                         **child_headers(observe.current.get())})
        body: Any = r.json()
    except (httpx.HTTPError, ValueError, OSError) as e:
        log.info("version of child node %s unknown: %s", child.name, type(e).__name__)
        return None
    version = body.get("version") if isinstance(body, dict) else None
    if r.status_code != 200 or not isinstance(version, str):
        return None
    return version


async def subtree_version(pool: asyncpg.Pool, node: Node, clients: ChildClients, scope: str,
                          token: str) -> str | None:
    """``own`` (``<version>t<tree version>``) or ``own[child=version,...]`` for the children the scope reaches
    whose links are down; None when such a child could not be asked."""
    try:
        row = await pool.fetchrow(SUBTREE_VERSION)
        own, up = int(row[0]), set(row[1])
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as e:  # the operation reports the outage
        log.info("own version unknown: %s", type(e).__name__)
        return None
    mine = f"{own}t{node.tree_version}"  # and the version the tree in memory was loaded at
    kids = [c for c in reached(node, scope) if c.name not in up]
    if not kids:
        return mine
    got = await asyncio.gather(*(child_version(clients, c, token) for c in kids))
    if any(v is None for v in got):
        return None
    return f"{mine}[" + ",".join(f"{c.name}={v}" for c, v in zip(kids, got, strict=True)) + "]"
