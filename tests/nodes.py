"""Real nodes for federation tests: uvicorn servers on loopback ports, each with its own database."""

from __future__ import annotations

import asyncio
import random
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from tierfed.app import create_app
from tierfed.config import NodeConfig
from tierfed.runtime import Runtime, open_runtime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_run(n: int) -> int:
    """The first of ``n`` consecutive free ports (the demo listens on its port and the next ones),
    below the kernel's ephemeral range: a port from that range can be taken, between the check
    and the bind, as the local end of any outgoing connection on the machine."""
    low = 32768
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(max(1024, low - 12000), low - n)
        socks = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {n} consecutive free ports below {low}")


@dataclass
class RunningNode:
    cfg: NodeConfig
    runtime: Runtime
    server: uvicorn.Server
    task: asyncio.Task[Any]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    @property
    def requests(self) -> int:
        return self.runtime.requests

    async def stop(self) -> None:
        self.server.should_exit = True
        await asyncio.wait_for(self.task, 10)
        await self.runtime.close()

    async def post(self, query: str, variables: dict[str, Any] | None, tok: str) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=30) as c:
            r = await c.post(self.url, json={"query": query, "variables": variables or {}},
                             headers={"Authorization": f"Bearer {tok}"})
            return r.json()  # type: ignore[no-any-return]


async def start_node(cfg: NodeConfig, db_url: str, port: int | None = None) -> RunningNode:
    port = port or free_port()
    rt = await open_runtime(cfg, db_url, check_children=False)
    server = uvicorn.Server(uvicorn.Config(create_app(cfg, rt), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False, lifespan="on"))
    server.install_signal_handlers = lambda: None  # type: ignore[attr-defined,method-assign]
    task = asyncio.get_running_loop().create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    return RunningNode(cfg, rt, server, task, port)
