"""One running node: its config, database pool, tree, routing, keys and child clients.

Opened in the app's lifespan and exposed as typed state; nothing here is global.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from .auth import Keys
from .config import NodeConfig
from .db import StatementCounter, create_pool, database_url
from .errors import UserError
from .tiers.node import Node
from .tiers.remote import ChildClients
from .tiers.store import Store, load_tree
from .tiers.tree import Tree

log = logging.getLogger("tierfed")


@dataclass
class Runtime:
    cfg: NodeConfig
    pool: asyncpg.Pool
    store: Store
    node: Node
    keys: Keys
    clients: ChildClients
    statements: StatementCounter
    persisted: dict[str, str] = field(default_factory=dict)
    requests: int = 0
    _listener: Any = None
    changes: Any = None  # tiers.changes.Changes: this node's side of changes across nodes

    @property
    def tree(self) -> Tree:
        return self.node.tree

    async def reload_tree(self) -> None:
        self.node = Node(self.cfg, Tree(await load_tree(self.pool)))
        log.info("division tree reloaded: %d regions", len(self.node.tree))

    async def close(self) -> None:
        if self.changes is not None:
            await self.changes.close()
        if self._listener is not None:
            await self._listener.close()
        await self.clients.close()
        await self.pool.close()


async def open_runtime(cfg: NodeConfig, url: str | None = None, check_children: bool | None = None) -> Runtime:
    """Connect, check the schema is migrated and the topology sound, and start listening for tree changes."""
    url = url or database_url(cfg)
    counter = StatementCounter()
    try:
        pool = await create_pool(url, counter)
    except (OSError, asyncpg.PostgresError) as e:
        raise UserError(f"cannot connect to the node's database: {e}") from None
    try:
        if not await pool.fetchval("select to_regclass('public.region') is not null"):
            raise UserError("the node's database is not migrated: run `tierfed migrate --config FILE` first")
        tree = Tree(await load_tree(pool))
        node = Node(cfg, tree)
    except BaseException:
        await pool.close()
        raise
    persisted: dict[str, str] = {}
    if cfg.persisted_operations_file:
        try:
            persisted = dict(json.loads(Path(cfg.persisted_operations_file).read_text("utf-8")))
        except (ValueError, OSError) as e:
            await pool.close()
            raise UserError(f"persisted operations file {cfg.persisted_operations_file}: {e}") from None
    rt = Runtime(cfg, pool, Store(pool), node, Keys(cfg.auth), ChildClients(node.children), counter, persisted)
    if check_children if check_children is not None else cfg.check_children_at_start:
        try:
            await check_children_reachable(rt)
        except UserError:
            await rt.close()
            raise
    from .tiers.changes import Changes

    try:
        rt.changes = Changes(rt, await create_pool(url, None, min_size=0, max_size=10))
    except UserError:
        await rt.close()
        raise
    rt.changes.start()
    listener = await pool.acquire()

    def on_tree_change(*_: Any) -> None:
        asyncio.get_running_loop().create_task(rt.reload_tree())

    await listener.add_listener("tierfed_tree", on_tree_change)
    rt._listener = _Released(pool, listener, on_tree_change)
    return rt


class _Released:
    def __init__(self, pool: asyncpg.Pool, con: asyncpg.Connection, callback: Any) -> None:
        self.pool, self.con, self.callback = pool, con, callback

    async def close(self) -> None:
        try:
            await self.con.remove_listener("tierfed_tree", self.callback)
            await self.pool.release(self.con)
        except Exception:  # noqa: BLE001 - closing anyway
            pass


async def check_children_reachable(rt: Runtime) -> None:
    """At start, every child URL must answer HTTP (any status): a typo fails fast."""
    for ch in rt.node.children:
        try:
            await rt.clients.clients[ch.name].get(ch.url.rsplit("/", 1)[0] + "/healthz")
        except httpx.HTTPError as e:
            raise UserError(f"child node '{ch.name}' ({ch.region}) at {ch.url} is unreachable: {type(e).__name__}") from None
