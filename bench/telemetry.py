"""Case 9, telemetry: the dashboard mix of case 4 on one node with tracing on (every
request sampled, spans exported over OTLP/HTTP to a local collector that accepts and
drops them) against the same node with tracing off, in the same run. Runs alternate
(off, on, off, on, ...) so drift of the shared machine falls on both; target: on is at most
5% slower, compared by the node process's CPU time per request (throughput is reported
too, but on a machine shared with others it drifts more than the effect). "On" is
tracing and the JSON access log; metrics are on in both (they always are).
"""

from __future__ import annotations

import asyncio
import re
import statistics
import urllib.request
from typing import Any

import psutil
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from .cases import PROVINCE, Bench, Row, dashboard_ops, load_rows, load_run, persons_of
from .dataset import single_spec
from .servers import start_node


class NoopCollector:
    """An OTLP/HTTP endpoint that reads each export request, counts its spans and drops them."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        self.spans = 0
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
                req = ExportTraceServiceRequest.FromString(body)
                self.spans += sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
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
    clients, seconds, rounds = 16, b.n(20, 8), 3
    collector = NoopCollector()
    cport = await collector.start()
    specs = {"off": single_spec(ds.single_url, "tel-off")}
    for mode, ratio in (("on", 1.0), ("on-10%", 0.1)):
        specs[mode] = single_spec(ds.single_url, f"tel-{mode}")
        specs[mode].extra_toml = (f'\n[telemetry]\notlp_endpoint = "http://127.0.0.1:{cport}/v1/traces"\n'
                                  f"sample_ratio = {ratio}\n")
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in specs}
    try:
        for _ in range(rounds):
            for mode, spec in specs.items():
                node = await start_node(spec, 1, extra_env={"BENCH_ACCESS_LOG": "1"} if mode != "off" else None)
                b.servers.append(node)
                proc = psutil.Process(node.pid)
                c0 = proc.cpu_times()
                r = await load_run(node.port, [node.pid], ops, clients, seconds)
                c1 = proc.cpu_times()
                # CPU time of the node's process (all its threads, the exporter's too) per request:
                # what tracing costs, far less disturbed than throughput by others sharing the machine.
                # (The warm-up's requests are inside the window too: counted by the server itself.)
                served = _served(node.port)
                r["cpu_ms_per_request"] = (c1.user + c1.system - c0.user - c0.system) * 1000 / max(served, 1)
                runs[mode].append(r)
                b.stop_all()
        await asyncio.sleep(6)  # the last batch of spans leaves within the exporter's 5 s schedule
    finally:
        await collector.stop()
    rps = {m: statistics.mean(r["req_per_s"] for r in rs) for m, rs in runs.items()}
    cpu = {m: statistics.median(r["cpu_ms_per_request"] for r in rs) for m, rs in runs.items()}
    med = {m: statistics.mean(r["latency"]["median_ms"] for r in rs) for m, rs in runs.items()}
    slower = {m: (cpu[m] / cpu["off"] - 1) * 100 for m in specs if m != "off"}
    b.results["telemetry"] = {"clients": clients, "seconds": seconds, "rounds": rounds, "runs": runs,
                              "req_per_s": rps, "median_ms": med, "cpu_ms_per_request": cpu, "slower_pct": slower,
                              "collector_requests": collector.requests, "collector_bytes": collector.bytes,
                              "spans": collector.spans}
    for mode in specs:
        for i, r in enumerate(runs[mode]):
            b.rows += load_rows("9 telemetry", f"{mode}, round {i + 1}, {r['cpu_ms_per_request']:.2f} ms CPU/request", r)
    b.rows.append(Row("9 telemetry", f"spans exported: {collector.spans:,} in {collector.requests} OTLP requests "
                      f"({collector.bytes / 2**20:,.1f} MiB)"))
    for mode in slower:
        b.rows.append(Row("9 telemetry", f"{mode} (sample_ratio {'1.0' if mode == 'on' else '0.1'}) vs off: "
                          f"{slower[mode]:+.1f}% CPU per request (median of {rounds} rounds)",
                          f"{cpu[mode]:.2f} vs {cpu['off']:.2f} ms", "", f"{rps[mode] / rps['off']:.3f} req/s",
                          "<= 5% slower"))
    if collector.requests == 0:
        raise AssertionError("case 9: the node with tracing on exported no spans")


def _served(port: int) -> int:
    """Requests the node answered, from its own /metrics (the bench's token has no OPERATOR role:
    a token with it is made here)."""
    from tierfed.auth import Keys
    from tierfed.config import AuthConfig

    from .topology import NATION, SECRET

    tok = Keys(AuthConfig(jwt_secret=SECRET)).sign("bench", NATION, ["OPERATOR"], 60)
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {tok}"})
    text = urllib.request.urlopen(req, timeout=10).read().decode()
    return int(sum(float(v) for v in re.findall(r"^tierfed_requests_total\{[^}]*\} (\S+)$", text, re.M)))
