"""Case 9, telemetry: the dashboard mix of case 4 on one node with tracing on (every
request sampled, spans exported over OTLP/HTTP to a local collector that accepts and
drops them) against the same node with tracing off, in the same run. Runs alternate
(off, on, off, on) so drift of the shared machine falls on both; target: on is at most
5% slower. "On" is tracing and the JSON access log; metrics are on in both (they
always are).
"""

from __future__ import annotations

import asyncio
import statistics
from typing import Any

from .cases import PROVINCE, Bench, Row, dashboard_ops, load_rows, load_run, persons_of
from .dataset import single_spec
from .servers import start_node


class NoopCollector:
    """An OTLP/HTTP endpoint that reads each export request whole and answers 200 with nothing."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                self.requests += 1
                self.bytes += len(body)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def case_telemetry(b: Bench) -> None:
    ds = b.data
    tok = b.token(PROVINCE)
    ids = await persons_of(ds.single_url, PROVINCE, 2000)
    ops = dashboard_ops(tok, PROVINCE, ids)
    clients, seconds, rounds = 16, b.n(20, 5), 2
    collector = NoopCollector()
    cport = await collector.start()
    off_spec = single_spec(ds.single_url, "tel-off")
    on_spec = single_spec(ds.single_url, "tel-on")
    on_spec.extra_toml = f'\n[telemetry]\notlp_endpoint = "http://127.0.0.1:{cport}/v1/traces"\nsample_ratio = 1.0\n'
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    try:
        for _ in range(rounds):
            for mode, spec in (("off", off_spec), ("on", on_spec)):
                node = await start_node(spec, 1, extra_env={"BENCH_ACCESS_LOG": "1"} if mode == "on" else None)
                b.servers.append(node)
                runs[mode].append(await load_run(node.port, [node.pid], ops, clients, seconds))
                b.stop_all()
        await asyncio.sleep(6)  # the last batch of spans leaves within the exporter's 5 s schedule
    finally:
        await collector.stop()
    rps = {m: statistics.mean(r["req_per_s"] for r in rs) for m, rs in runs.items()}
    med = {m: statistics.mean(r["latency"]["median_ms"] for r in rs) for m, rs in runs.items()}
    slower = (rps["off"] / rps["on"] - 1) * 100 if rps["on"] else float("inf")
    b.results["telemetry"] = {"clients": clients, "seconds": seconds, "rounds": rounds, "runs": runs,
                              "req_per_s": rps, "median_ms": med, "slower_pct": slower,
                              "collector_requests": collector.requests, "collector_bytes": collector.bytes}
    for mode in ("off", "on"):
        for i, r in enumerate(runs[mode]):
            b.rows += load_rows("9 telemetry", f"tracing {mode}, round {i + 1}", r)
    b.rows.append(Row("9 telemetry", f"tracing on vs off: {slower:+.1f}% time per request "
                      f"({collector.requests} OTLP exports, {collector.bytes / 2**20:,.1f} MiB received)",
                      f"{med['on']:,.1f} vs {med['off']:,.1f} ms", "", f"{rps['on'] / rps['off']:.3f}", "<= 5% slower"))
    if collector.requests == 0:
        raise AssertionError("case 9: the node with tracing on exported no spans")
