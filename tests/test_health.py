"""Health endpoints and database outages, against real PostgreSQL servers and real child nodes.

The outage test runs a PostgreSQL of its own (pgserver's ``pg_ctl``), stops it under a
running node and starts it again: requests get ``DATABASE_UNAVAILABLE`` with a retry hint
meanwhile, ``/readyz`` says why, and the node answers again by itself afterwards.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import node_config, token
from tests.nodes import free_port, start_node
from tierfed.db import migrate, migration_files

ROLLUP = '{ rollup(region: "110000", period: {from: "2025-01", to: "2025-01"}) { complete totals { insured } } }'


async def test_healthz_and_readyz_with_a_child_up_and_one_down(new_db) -> None:  # type: ignore[no-untyped-def]
    child = await start_node(node_config("440000", "guangdong"), await new_db())
    dead = f"http://127.0.0.1:{free_port()}/graphql"

    async def odd(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A child (or the proxy before it) answering 503 with JSON that is not an object."""
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 2\r\nConnection: close\r\n\r\n[]")
        await writer.drain()
        writer.close()

    stub = await asyncio.start_server(odd, "127.0.0.1", 0)
    odd_url = f"http://127.0.0.1:{stub.sockets[0].getsockname()[1]}/graphql"
    cfg = node_config("000000", "central", children=[{"region": "440000", "url": child.url, "name": "guangdong"},
                                                     {"region": "510000", "url": dead, "name": "sichuan"},
                                                     {"region": "460000", "url": odd_url, "name": "hainan"}])
    parent = await start_node(cfg, await new_db())
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{parent.port}", timeout=10) as c:
            h = await c.get("/healthz")
            assert h.status_code == 200 and h.json()["status"] == "ok"
            r = await c.get("/readyz")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "ready"
        latest = max(v for v, _, _ in migration_files())
        assert body["database"] == {"state": "ok", "migration": latest}
        states = {ch["name"]: ch for ch in body["children"]}
        assert states["guangdong"]["state"] == "ready"
        assert states["sichuan"]["state"] == "unreachable"
        assert states["hainan"] == {"name": "hainan", "region": "460000", "state": "not_ready", "reason": "HTTP 503"}, \
            states["hainan"]
        assert "127.0.0.1" not in r.text, "child addresses are not published on an open endpoint"
        # The child's own check was asked without its children: one probe, no fan-out.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{child.port}") as c:
            own = (await c.get("/readyz", params={"children": "0"})).json()
        assert "children" not in own and own["status"] == "ready"
    finally:
        await parent.stop()
        await child.stop()
        stub.close()


async def test_readyz_says_when_migrations_are_pending(fresh_db: str) -> None:
    con = await asyncpg.connect(fresh_db)
    try:
        await con.execute("delete from schema_migrations where version = (select max(version) from schema_migrations)")
    finally:
        await con.close()
    node = await start_node(node_config(), fresh_db)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.port}") as c:
            r = await c.get("/readyz")
        assert r.status_code == 503
        assert r.json()["database"]["state"] == "migrations_pending"
        assert "tierfed migrate" in r.json()["database"]["reason"]
        assert r.headers["Retry-After"]
    finally:
        await node.stop()


async def test_a_database_missing_what_a_migration_creates_is_refused_at_start_with_what_to_run(fresh_db: str) -> None:
    """A node opening a database that lacks a table the change steps use (their statements are
    prepared when the node starts) says to migrate, not a PostgreSQL error."""
    from tierfed.errors import UserError
    from tierfed.runtime import open_runtime

    con = await asyncpg.connect(fresh_db)
    try:
        await con.execute("drop table pool_remote_predecessor")
    finally:
        await con.close()
    with pytest.raises(UserError, match=r"not migrated to this version of tierfed .*run `tierfed migrate"):
        await open_runtime(node_config(), fresh_db)


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_database_outage_is_a_clear_retryable_error_and_the_node_recovers(tmp_path: Path) -> None:
    import pgserver

    srv = pgserver.get_server(tmp_path / "pg", cleanup_mode="delete")
    try:
        url = srv.get_uri("postgres")
        con = await asyncpg.connect(url)
        try:
            await migrate(con)
        finally:
            await con.close()
        node = await start_node(node_config(), url)
        tok = token()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.port}", timeout=30) as c:
                async def ask() -> httpx.Response:
                    return await c.post("/graphql", json={"query": ROLLUP}, headers={"Authorization": f"Bearer {tok}"})

                assert "errors" not in (await ask()).json()

                await asyncio.to_thread(pgserver.pg_ctl, ["-w", "-m", "fast", "stop"], pgdata=srv.pgdata,
                                        user=srv.system_user)
                r = await ask()
                body = r.json()
                assert body["errors"], body
                err = body["errors"][0]
                assert err["extensions"]["code"] == "DATABASE_UNAVAILABLE", err
                assert err["extensions"]["retryAfter"] > 0 and "retry" in err["message"]
                assert "reference" not in err["message"]
                assert r.headers["Retry-After"] == str(err["extensions"]["retryAfter"])
                ready = await c.get("/readyz")
                assert ready.status_code == 503 and ready.json()["database"]["state"] == "unavailable"
                assert (await c.get("/healthz")).status_code == 200  # alive, only not ready
                # The metrics, the outage's own counts among them, are still served: at once, not after a
                # connection attempt's timeout.
                t0 = asyncio.get_running_loop().time()
                m = await c.get("/metrics", headers={"Authorization": f"Bearer {token(roles=('VIEWER', 'OPERATOR'))}"})
                assert m.status_code == 200 and "DATABASE_UNAVAILABLE" in m.text, m.text[:300]
                assert asyncio.get_running_loop().time() - t0 < 5

                await asyncio.to_thread(srv.ensure_postgres_running)
                for _ in range(50):  # the node reconnects by itself: no restart, no call
                    r = await ask()
                    if "errors" not in r.json():
                        break
                    await asyncio.sleep(0.2)
                assert "errors" not in r.json(), r.json()
                assert (await c.get("/readyz")).status_code == 200
                # The tree listener listens again: a tree change made now still reaches the node.
                before = node.runtime.node
                for _ in range(50):
                    con = await asyncpg.connect(url)
                    try:
                        await con.execute("notify tierfed_tree")
                    finally:
                        await con.close()
                    await asyncio.sleep(0.2)
                    if node.runtime.node is not before:
                        break
                assert node.runtime.node is not before, "the tree listener did not listen again"
        finally:
            await node.stop()
    finally:
        srv.cleanup()
