"""One running node: its config, database pool, tree, routing, keys and child clients.

Opened in the app's lifespan and exposed as typed state; nothing here is global.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from . import telemetry
from .answers import AnswerCache
from .auth import Keys
from .config import NodeConfig
from .db import StatementCounter, create_pool, database_url
from .errors import UserError
from .metrics import Metrics, operation_names
from .persisted import load as load_persisted
from .tiers.links import Links
from .tiers.node import Node
from .tiers.personindex import PersonIndex
from .tiers.remote import ChildClients
from .tiers.store import Store, load_tree
from .tiers.tree import Tree
from .tiers.versions import own_version

log = logging.getLogger("tierfed")
HAS_VERSIONS = "select to_regclass('public.data_version') is not null"


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
    metrics: Metrics = field(default_factory=lambda: Metrics(set()))
    # None unless [telemetry].otlp_endpoint is set (or a test installs one): no spans at all then.
    tracer: Any = None
    tracer_provider: Any = None
    _listener: Any = None
    index: PersonIndex = field(init=False)
    answers: AnswerCache = field(init=False)
    links: Links = field(init=False)
    # Called (on the event loop) each time this node's version moves, whoever committed: the
    # push to the parent and live answers (tierfed_version, migration 0012).
    on_version: list[Any] = field(default_factory=list)
    live: Any = None  # tierfed.live.Live, made on the first subscription

    def __post_init__(self) -> None:
        self.index = PersonIndex(self.cfg, self.pool, self.node, self.clients, self.keys)
        self.clients.node_token = self.index.node_token
        self.answers = AnswerCache(self.cfg.cache_max_bytes)
        self.links = Links(self.cfg, self.pool, self.node, self.clients, self.index.node_token)
        self.on_version.append(self.links.kick)
        self.index.lease_up = self.links.lease_up
        self.links.on_persons = self.index.heard
    changes: Any = None  # tiers.changes.Changes: this node's side of changes across nodes

    @property
    def tree(self) -> Tree:
        return self.node.tree

    async def reload_tree(self) -> None:
        version = await own_version(self.pool)
        self.node = Node(self.cfg, Tree(await load_tree(self.pool)))
        self.node.tree_version = version
        self.index.node = self.node
        self.links.node = self.node
        log.info("division tree reloaded: %d regions", len(self.node.tree))

    def version_moved(self, *_: Any) -> None:
        for cb in list(self.on_version):
            try:
                cb()
            except Exception:  # noqa: BLE001 - one listener's bug must not stop the others
                log.exception("version listener failed")

    async def close(self) -> None:
        if self.live is not None:
            await self.live.close()
        await self.links.stop()  # first: a check ending meanwhile would start a reading of the index
        await self.index.stop()
        if self.changes is not None:
            await self.changes.close()
        if self._listener is not None:
            await self._listener.close()
        await self.clients.close()
        await self.pool.close()
        if self.tracer_provider is not None:  # flushes the last spans: off the event loop
            await asyncio.to_thread(self.tracer_provider.shutdown)


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
        version = await own_version(pool) if await pool.fetchval(HAS_VERSIONS) else 0
        tree = Tree(await load_tree(pool))
        node = Node(cfg, tree)
        node.tree_version = version
    except BaseException:
        await pool.close()
        raise
    persisted: dict[str, str] = {}
    if cfg.persisted_operations_file:
        try:
            persisted = load_persisted(Path(cfg.persisted_operations_file).read_text("utf-8"))
        except (ValueError, OSError) as e:
            await pool.close()
            raise UserError(f"persisted operations file {cfg.persisted_operations_file}: {e}") from None
    rt = Runtime(cfg, pool, Store(pool), node, Keys(cfg.auth), ChildClients(node.children), counter, persisted,
                 metrics=Metrics(operation_names(list(persisted.values()))))
    rt.tracer_provider = telemetry.provider_for(cfg)
    if rt.tracer_provider is not None:
        rt.tracer = rt.tracer_provider.get_tracer("tierfed")
    if check_children if check_children is not None else cfg.check_children_at_start:
        try:
            await check_children_reachable(rt)
        except UserError:
            await rt.close()
            raise
    from .tiers.changes import OWNER_SETTING, WARM_STATEMENTS, Changes

    try:
        changes_counter = StatementCounter()
        owner = uuid.uuid4().hex  # this process, on the rows of the changes it coordinates (migration 0013)
        # Kept open once opened (a raise is rare: its connections are not closed when idle), and
        # each prepares the change steps' statements when it opens (changestore.WARM).
        rt.changes = Changes(rt, await create_pool(url, changes_counter, {OWNER_SETTING: owner}, WARM_STATEMENTS,
                                                   min_size=0, max_size=10, max_inactive_connection_lifetime=0),
                             owner)
        rt.changes.statements = changes_counter
        await rt.changes.open()
    except UserError:
        await rt.close()
        raise
    except (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError, asyncpg.UndefinedFunctionError) as e:
        # the change steps' statements, prepared on the pool's first connection, name what a
        # migration this database has not had yet creates
        await rt.close()
        raise UserError(f"the node's database is not migrated to this version of tierfed ({e}): "
                        "run `tierfed migrate --config FILE` first") from None
    rt.changes.start()
    # Links run beside operations (checks, leases, pushes): on the changes' own pool, so that they
    # are never counted among an operation's statements.
    rt.links.pool = rt.changes.pool
    rt._listener = TreeListener(rt)
    await rt._listener.start()
    return rt


class TreeListener:
    """LISTEN for tree changes on a connection of its own; when the database goes away
    the connection dies, so listen again once it is back and reload the tree (a change
    may have been missed meanwhile)."""

    RETRY_S = 1.0

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.con: asyncpg.Connection | None = None
        self.closed = False
        self.task: asyncio.Task[None] | None = None
        self.reload: asyncio.Task[None] | None = None
        self.pending = False

    def on_change(self, *_: Any) -> None:
        """Reload in a task this listener keeps; changes arriving during a reload are folded
        into one more reload after it."""
        if self.reload is not None and not self.reload.done():
            self.pending = True
            return
        self.reload = asyncio.get_running_loop().create_task(self._reload(), name="tree-reload")

    async def _reload(self) -> None:
        attempt = 0
        while not self.closed:
            self.pending = False
            try:
                await self.rt.reload_tree()
            except Exception:  # noqa: BLE001 - logged, and tried again: the node must not stay on an old tree
                attempt += 1
                log.exception("division tree reload failed (attempt %d): trying again in %.0f s", attempt,
                              self.RETRY_S * min(attempt, 30))
                await asyncio.sleep(self.RETRY_S * min(attempt, 30))
                continue
            if not self.pending:
                return

    def on_lost(self, *_: Any) -> None:
        self.con = None
        if not self.closed:
            log.warning("database connection of the tree listener lost: listening again when the database is back")
            self.task = asyncio.get_running_loop().create_task(self._again())

    async def start(self) -> None:
        con = await self.rt.pool.acquire()
        try:
            con.add_termination_listener(self.on_lost)
            await con.add_listener("tierfed_tree", self.on_change)
            await con.add_listener("tierfed_version", self.rt.version_moved)
        except BaseException:
            await self.rt.pool.release(con)
            raise
        self.con = con

    async def _again(self) -> None:
        while not self.closed:
            await asyncio.sleep(self.RETRY_S)
            try:
                await self.start()
            except Exception:  # noqa: BLE001 - the database is still down: try again
                continue
            # Listening again, on one connection: the tree may have changed meanwhile (reloaded,
            # and tried again until it loads, by the reload task), and a commit may have been missed.
            self.on_change()
            self.rt.version_moved()
            log.info("tree listener back")
            return

    async def close(self) -> None:
        self.closed = True
        for task in (self.task, self.reload):
            if task is not None:
                task.cancel()
        con, self.con = self.con, None
        if con is None:
            return
        try:
            con.remove_termination_listener(self.on_lost)
            await con.remove_listener("tierfed_tree", self.on_change)
            await con.remove_listener("tierfed_version", self.rt.version_moved)
            await self.rt.pool.release(con)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as e:
            # The connection is already gone (the database went away): nothing left to release.
            log.debug("tree listener closed on a lost connection: %s", e)


async def check_children_reachable(rt: Runtime) -> None:
    """At start, every child URL must answer HTTP (any status): a typo fails fast."""
    for ch in rt.node.children:
        try:
            await rt.clients.clients[ch.name].get(ch.url.rsplit("/", 1)[0] + "/healthz")
        except httpx.HTTPError as e:
            raise UserError(f"child node '{ch.name}' ({ch.region}) at {ch.url} is unreachable: {type(e).__name__}") from None
