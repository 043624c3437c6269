"""Servers in their own processes on 127.0.0.1: tierfed nodes (uvicorn ``--workers N``), the
plain Starlette baseline and PostGraphile; started, waited for, measured and stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import cluster
from .load import Conn, get
from .topology import NodeSpec, free_port


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


async def wait_ready(server: Server, path: str = "/healthz", timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode}:\n"
                               + server.log.read_text(errors="replace")[-3000:])
        c = Conn(server.port)
        try:
            status, _ = await c.send(get(path))
            if status < 500:
                return
        except OSError:
            pass
        finally:
            await c.close()
        await asyncio.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{server.name} did not answer within {timeout} s:\n" + server.log.read_text()[-3000:])


def _spawn(name: str, args: list[str], env: dict[str, str], port: int, cwd: Path | None = None,
           prefix: list[str] | None = None) -> Server:
    logdir = cluster.BENCH_DIR / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    log = logdir / f"{name}.log"
    fh = log.open("wb")
    proc = subprocess.Popen([*(prefix or []), *args], stdout=fh, stderr=subprocess.STDOUT,
                            cwd=cwd or cluster.ROOT,
                            env={**os.environ, "PYTHONPATH": str(cluster.ROOT), **env})
    return Server(name, proc, port, log)


def uvicorn_args(factory: str, port: int, workers: int, extra: list[str] | None = None) -> list[str]:
    return [sys.executable, "-m", "uvicorn", factory, "--factory", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--log-level", "warning", "--no-access-log", *(extra or [])]


async def start_node(spec: NodeSpec, workers: int = 1, run_dir: Path | None = None,
                     prefix: list[str] | None = None, extra_env: dict[str, str] | None = None,
                     factory: str = "bench.serve:node_app", uvicorn_extra: list[str] | None = None) -> Server:
    """A tierfed node from its TOML, as ``tierfed serve`` would build it, with ``workers`` processes
    (on ``spec.port`` when one was chosen beforehand, e.g. for its children's [parent].url)."""
    if spec.port < 1024:  # unset, or a placeholder
        spec.port = free_port()
    cfg = spec.write(run_dir)
    s = _spawn(f"node-{spec.name}-{spec.port}", uvicorn_args(factory, spec.port, workers, uvicorn_extra),
               {"TIERFED_CONFIG": str(cfg), **(extra_env or {})}, spec.port, prefix=prefix)
    await wait_ready(s)
    return s


async def start_plain(db_url: str, secret: str) -> Server:
    port = free_port()
    s = _spawn(f"plain-{port}", uvicorn_args("bench.serve:plain_app", port, 1),
               {"BENCH_DB_URL": db_url, "BENCH_JWT_SECRET": secret}, port)
    await wait_ready(s)
    return s


async def start_memory(body_file: Path, secret: str) -> Server:
    """The bytes-from-memory floor (``bench.serve:memory_app``)."""
    port = free_port()
    s = _spawn(f"memory-{port}", uvicorn_args("bench.serve:memory_app", port, 1),
               {"BENCH_BODY_FILE": str(body_file), "BENCH_JWT_SECRET": secret}, port)
    await wait_ready(s)
    return s
