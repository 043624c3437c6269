"""Shared fixtures: a real PostgreSQL (embedded unless DATABASE_URL names a server),
a migrated template database cloned per test, a small generated data set, and
in-process clients for a node's app."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from hypothesis import settings
from tierfed.tiers.node import Node
from tierfed.tiers.tree import RegionRec, Tree

from tierfed.app import create_app
from tierfed.auth import Keys
from tierfed.cli import tree_from_shipped
from tierfed.config import NodeConfig, parse
from tierfed.db import migrate, shipped_regions
from tierfed.generator import Options, generate
from tierfed.importer import import_file
from tierfed.runtime import Runtime, open_runtime

SECRET = "test-secret-" + "x" * 32
DATA_KINDS = ("pools", "employers", "persons", "contributions", "benefits")


# In CI the property tests explore a fixed set of examples (the same on every run);
# on a developer's machine they explore new ones each time.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def pytest_configure(config: pytest.Config) -> None:
    # A private base temp dir per run: pytest's default rotation deletes the
    # temp dirs of older runs, which would pull the data directory from under
    # an embedded PostgreSQL of a run still going in parallel.
    if not config.option.basetemp:
        config.option.basetemp = tempfile.mkdtemp(prefix="tierfed-pytest-")


def _with_db(url: str, db: str) -> str:
    if "?" in url:
        head, q = url.split("?", 1)
        return re.sub(r"/[^/]*$", f"/{db}", head) + "?" + q
    return re.sub(r"/[^/]*$", f"/{db}", url)


@pytest.fixture(scope="session")
def admin_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A URL for a maintenance database on a server tests may create databases on."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    import pgserver

    srv = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="delete")
    return srv.get_uri("postgres")


async def _create_db(admin: str, name: str, template: str | None = None) -> str:
    con = await asyncpg.connect(admin)
    try:
        tmpl = f' template "{template}"' if template else ""
        await con.execute(f'create database "{name}"{tmpl}')
    finally:
        await con.close()
    return _with_db(admin, name)


@pytest.fixture(scope="session")
async def template_db(admin_url: str) -> str:
    """A database migrated from empty (the shipped tree seeded); cloned by ``fresh_db``."""
    name = f"tierfed_tmpl_{uuid.uuid4().hex[:8]}"
    url = await _create_db(admin_url, name)
    con = await asyncpg.connect(url)
    try:
        await migrate(con)
    finally:
        await con.close()
    return name


@pytest.fixture
async def fresh_db(admin_url: str, template_db: str) -> str:
    return await _create_db(admin_url, f"tierfed_t_{uuid.uuid4().hex[:10]}", template_db)


@pytest.fixture(scope="session")
def new_db(admin_url: str, template_db: str):  # type: ignore[no-untyped-def]
    """A factory of fresh migrated databases (for tests that need several)."""
    async def make() -> str:
        return await _create_db(admin_url, f"tierfed_t_{uuid.uuid4().hex[:10]}", template_db)
    return make


@pytest.fixture(scope="session")
def tree() -> Tree:
    return tree_from_shipped(shipped_regions(), RegionRec, Tree)


def node_config(region: str = "000000", name: str = "n", children: list[dict[str, Any]] | None = None,
                **extra: Any) -> NodeConfig:
    data: dict[str, Any] = {"node": {"name": name, "region": region, "listen": "127.0.0.1:0",
                                     "check_children_at_start": False},
                            "auth": {"jwt_secret": SECRET}, "children": children or []}
    for k, v in extra.items():
        data[k] = v
    return parse(data)


def token(scope: str = "000000", roles: tuple[str, ...] = ("VIEWER",), ttl: int = 3600, sub: str = "tester") -> str:
    return Keys(node_config().auth).sign(sub, scope, list(roles), ttl)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory, tree: Tree) -> Path:
    """A small national data set (2,000 persons, six months of 2025), generated once."""
    out = tmp_path_factory.mktemp("data")
    from datetime import date

    generate(tree, out, Options(persons=2000, first=date(2025, 1, 1), last=date(2025, 6, 1), seed=7))
    return out


async def load_dataset(url: str, cfg: NodeConfig, directory: Path) -> None:
    rt = await open_runtime(cfg, url, check_children=False)
    try:
        for kind in DATA_KINDS:
            f = directory / f"{kind}.csv"
            if f.exists():
                await import_file(rt.pool, rt.node, kind, f, progress=False)
    finally:
        await rt.close()


@pytest.fixture(scope="session")
async def loaded_db(admin_url: str, template_db: str, dataset: Path) -> str:
    """A national single-node database with the data set: read-only for the tests that share it."""
    url = await _create_db(admin_url, f"tierfed_loaded_{uuid.uuid4().hex[:8]}", template_db)
    await load_dataset(url, node_config(), dataset)
    return url


class Client:
    """An in-process client of one node's app."""

    def __init__(self, http: httpx.AsyncClient, runtime: Runtime) -> None:
        self.http = http
        self.runtime = runtime

    async def post(self, query: str, variables: dict[str, Any] | None = None, tok: str | None = None,
                   **headers: str) -> httpx.Response:
        h = {"Authorization": f"Bearer {tok or token(roles=('VIEWER', 'OPERATOR', 'PII_READER'))}", **headers}
        return await self.http.post("/graphql", json={"query": query, "variables": variables or {}}, headers=h)

    async def gql(self, query: str, variables: dict[str, Any] | None = None, tok: str | None = None) -> dict[str, Any]:
        r = await self.post(query, variables, tok)
        return r.json()  # type: ignore[no-any-return]

    async def data(self, query: str, variables: dict[str, Any] | None = None, tok: str | None = None) -> Any:
        body = await self.gql(query, variables, tok)
        assert "errors" not in body, body.get("errors")
        return body["data"]


@asynccontextmanager
async def import_held(pool: Any, node: Any, kind: str, path: Path) -> AsyncIterator[asyncio.Future[Any]]:
    """An import running and held once its checks passed (a warning check of
    ``tierfed.imports.notices`` waits), its transaction and lock held, for the block's length;
    the block gets the import's future (its report or its error once released)."""
    from tierfed.imports import notices

    paused, go = asyncio.Event(), asyncio.Event()

    async def hold(con: Any, kind: str) -> list[str]:
        paused.set()
        await go.wait()
        return []

    notices.CHECKS.append(hold)
    try:
        importing = asyncio.ensure_future(import_file(pool, node, kind, path, progress=False))
        await asyncio.wait_for(paused.wait(), 30)
        yield importing
    finally:
        go.set()
        notices.CHECKS.remove(hold)


@asynccontextmanager
async def node_client(url: str, cfg: NodeConfig | None = None, **tables: Any) -> AsyncIterator[Client]:
    """An in-process client of a node over ``url`` (``cfg``, or a national node with extra
    config tables such as ``limits={...}``), closed with its runtime at the end."""
    cfg = cfg or node_config(**tables)
    rt = await open_runtime(cfg, url, check_children=False)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(cfg, rt)), base_url="http://node")
    try:
        yield Client(http, rt)
    finally:
        await http.aclose()
        await rt.close()


@pytest.fixture
async def client(loaded_db: str) -> AsyncIterator[Client]:
    """A national node over the shared loaded database."""
    async with node_client(loaded_db) as c:
        yield c


@pytest.fixture
async def empty_client(fresh_db: str) -> AsyncIterator[Client]:
    async with node_client(fresh_db) as c:
        yield c


def node_of(tree: Tree, region: str = "000000") -> Node:
    return Node(node_config(region), tree)


# ---------------------------------------------------------------- a test that hangs says where

# Every test shares one event loop (pyproject: the session's), so a test that hangs is usually
# waiting on a task, which pytest-timeout's thread dump (the loop's select) does not show: a test
# still running after STUCK_S prints every asyncio task's stack to stderr, then runs on.
STUCK_S = 240.0


def _print_tasks(name: str) -> None:
    import asyncio
    import sys

    print(f"\n=== {name} still running after {STUCK_S:g} s; its event loop's tasks:", file=sys.stderr)
    for task in asyncio.all_tasks():
        print(f"--- {task.get_name()}: {task.get_coro()!r}", file=sys.stderr)
        task.print_stack(limit=30, file=sys.stderr)
    sys.stderr.flush()


@pytest.fixture(autouse=True)
async def _tasks_printed_when_stuck(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    import asyncio

    handle = asyncio.get_running_loop().call_later(STUCK_S, _print_tasks, request.node.nodeid)
    try:
        yield
    finally:
        handle.cancel()
