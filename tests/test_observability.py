"""Traces, metrics and timing across real nodes (uvicorn on loopback ports, real HTTP between them).

Three tiers of nodes: central (000000) -> Guangdong (440000) -> Shenzhen (440300). A
national rollup needs all three. The spans go to one in-memory exporter shared by the
three in-process nodes; each node's server span names its node.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import node_client, node_config, token
from tests.nodes import RunningNode, start_node

pytestmark = pytest.mark.federation

ROLLUP = """query Dashboard($r: ID!) { rollup(region: $r, period: {from: "2025-01", to: "2025-06"}) {
  complete totals { scheme insured contributionTotal } byChild { region { code } totals { insured } } } }"""
NATIONAL = token("000000", ("VIEWER",))
OPERATOR = token("000000", ("VIEWER", "OPERATOR"))


@pytest.fixture(scope="module")
async def three_tiers(new_db: Any) -> AsyncIterator[dict[str, RunningNode]]:
    nodes: dict[str, RunningNode] = {}
    # The answer cache off: these tests watch answers computed across the tiers, child calls included.
    off = {"max_bytes": 0}
    nodes["shenzhen"] = await start_node(node_config("440300", "shenzhen", cache=off), await new_db())
    nodes["guangdong"] = await start_node(node_config("440000", "guangdong", [
        {"region": "440300", "url": nodes["shenzhen"].url, "name": "shenzhen"}], cache=off), await new_db())
    nodes["central"] = await start_node(node_config("000000", "central", [
        {"region": "440000", "url": nodes["guangdong"].url, "name": "guangdong"}], cache=off), await new_db())
    try:
        yield nodes
    finally:
        for n in nodes.values():
            await n.stop()


@pytest.fixture
def spans(three_tiers: dict[str, RunningNode]) -> Any:
    """An in-memory exporter receiving every span of the three nodes, for one test."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    for n in three_tiers.values():
        n.runtime.tracer = provider.get_tracer("tierfed")
    yield exporter
    for n in three_tiers.values():
        n.runtime.tracer = None
    provider.shutdown()


async def _post(node: RunningNode, query: str, variables: dict[str, Any], tok: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as c:
        return await c.post(node.url, json={"query": query, "variables": variables},
                            headers={"Authorization": f"Bearer {tok}", **headers})


async def test_a_three_tier_query_is_one_trace_with_spans_from_every_node(three_tiers: dict[str, RunningNode],
                                                                         spans: InMemorySpanExporter) -> None:
    trace_id = os.urandom(16).hex()
    caller_span = os.urandom(8).hex()
    r = await _post(three_tiers["central"], ROLLUP, {"r": "000000"}, NATIONAL,
                    traceparent=f"00-{trace_id}-{caller_span}-01")
    assert "errors" not in r.json(), r.json()
    # A server span ends once its answer is sent: wait for the three to be finished.
    for _ in range(100):
        got: list[ReadableSpan] = list(spans.get_finished_spans())
        if sum(s.name == "POST /graphql" for s in got) == 3:
            break
        await asyncio.sleep(0.05)
    # One trace, the caller's: every span of every node continues it.
    assert {format(s.context.trace_id, "032x") for s in got} == {trace_id}
    by_id = {s.context.span_id: s for s in got}
    servers = {s.attributes["tierfed.node"]: s for s in got if s.name == "POST /graphql"}
    assert set(servers) == {"central", "guangdong", "shenzhen"}
    assert servers["central"].parent is not None and format(servers["central"].parent.span_id, "016x") == caller_span

    def node_of(s: ReadableSpan) -> str:
        while s.name != "POST /graphql":
            assert s.parent is not None, s.name
            s = by_id[s.parent.span_id]
        return str(s.attributes["tierfed.node"])

    # Each child's server span hangs under its parent's span of the request to it.
    for parent, child in (("central", "guangdong"), ("guangdong", "shenzhen")):
        server = servers[child]
        assert server.parent is not None
        call = by_id[server.parent.span_id]
        assert call.name == f"child {child}" and node_of(call) == parent
    names: dict[str, set[str]] = {}
    for s in got:
        names.setdefault(node_of(s), set()).add(s.name)
    for node in ("central", "guangdong"):
        assert {"graphql.parse_validate", "graphql.plan", "graphql.children", "graphql.execute"} <= names[node], names
    assert {"graphql.parse_validate", "graphql.execute"} <= names["shenzhen"]
    for node in names:  # each node read its summaries with SQL, each statement one span
        assert any(n.startswith("sql ") for n in names[node]), names[node]
    # The cache checks are on the parse/validate spans (the child's forward request is new to it).
    pv = [s for s in got if s.name == "graphql.parse_validate"]
    assert all(s.attributes["tierfed.cache.parse"] in ("hit", "miss") for s in pv)
    sql = [s for s in got if s.name.startswith("sql ")]
    assert all("$1" in str(s.attributes["db.statement"]) or "$" not in str(s.attributes["db.statement"]) for s in sql)
    # No span per resolved field: a rollup of 5 schemes with 31 children stays a few dozen spans.
    assert len(got) < 40, sorted(s.name for s in got)


async def test_no_span_carries_an_id_number(three_tiers: dict[str, RunningNode], spans: InMemorySpanExporter) -> None:
    """A person looked up by a variable and by a literal in the document, by a PII reader: no
    span's name or attribute holds the ID number (SQL spans carry their parameterized text,
    never the values; the document is not recorded)."""
    from tierfed import codes

    first17 = "44030419850312123"
    person = first17 + codes.id_check_char(first17)
    reader = token("000000", ("VIEWER", "PII_READER"))
    asked = [("query P($id: String!) { person(idNumber: $id) { idNumber name } }", {"id": person}),
             ('query Q { person(idNumber: "' + person + '") { idNumber name } }', {})]
    for query, variables in asked:
        r = await _post(three_tiers["central"], query, variables, reader)
        assert "errors" not in r.json(), r.json()
    # Refused before they run: graphql-core words the value it refused into its message (the
    # ID number as a number, and as an unquoted literal), which must not reach a span's status
    # or an exception event.
    refused = [("query P($id: String!) { person(idNumber: $id) { name } }", {"id": int(first17 + "1")}),
               ("query Q { person(idNumber: " + first17 + "1) { name } }", {})]
    for query, variables in refused:
        r = await _post(three_tiers["central"], query, variables, reader)
        assert r.json()["errors"], r.json()
    for _ in range(100):
        got: list[ReadableSpan] = list(spans.get_finished_spans())
        if sum(s.name == "POST /graphql" for s in got) >= 4:
            break
        await asyncio.sleep(0.05)
    assert any(s.name.startswith("sql ") for s in got)
    for s in got:
        held = [f"{k}={v}" for k, v in (s.attributes or {}).items() if person in str(v) or first17 in str(v)]
        held += [f"status={s.status.description}"] if first17 in str(s.status.description or "") else []
        held += [f"event {e.name}: {k}={v}" for e in s.events for k, v in (e.attributes or {}).items()
                 if first17 in str(v)]
        assert person not in s.name and not held, (s.name, held)


async def test_no_tracer_no_spans_but_the_trace_id_still_travels(three_tiers: dict[str, RunningNode],
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    import json
    import logging

    caplog.set_level(logging.INFO, logger="tierfed.access")
    assert all(n.runtime.tracer is None for n in three_tiers.values())
    trace_id = os.urandom(16).hex()
    r = await _post(three_tiers["central"], ROLLUP, {"r": "000000"}, NATIONAL,
                    traceparent=f"00-{trace_id}-{os.urandom(8).hex()}-01")
    assert "errors" not in r.json()
    lines = [json.loads(rec.getMessage()) for rec in caplog.records if rec.name == "tierfed.access"]
    assert {ln["node"] for ln in lines if ln["trace_id"] == trace_id} == {"central", "guangdong", "shenzhen"}


async def test_timing_in_the_answer_per_node_of_the_tree(three_tiers: dict[str, RunningNode]) -> None:
    plain = await _post(three_tiers["central"], ROLLUP, {"r": "000000"}, NATIONAL)
    assert "extensions" not in plain.json()
    body = (await _post(three_tiers["central"], ROLLUP, {"r": "000000"}, NATIONAL, **{"tierfed-timing": "1"})).json()
    assert body["data"] == plain.json()["data"]
    t = body["extensions"]["timing"]
    assert t["node"] == "central" and t["ms"] > 0 and t["sqlStatements"] >= 1
    (gd,) = t["children"]
    assert gd["child"] == "guangdong" and gd["outcome"] == "ok" and gd["ms"] > 0
    assert gd["timing"]["node"] == "guangdong" and gd["timing"]["ms"] <= gd["ms"]
    (sz,) = gd["timing"]["children"]
    assert sz["child"] == "shenzhen" and sz["timing"]["node"] == "shenzhen" and sz["timing"]["children"] == []
    assert sz["timing"]["sqlStatements"] >= 1


async def test_an_operation_runs_twice_only_when_it_asks_a_child(three_tiers: dict[str, RunningNode]) -> None:
    """The planning pass is the answer when no child was needed: the operation runs once."""
    timing = {"tierfed-timing": "1"}
    local = '{ region(code: "110000") { name agencies { code } pool(scheme: PENSION) { id } } }'
    held = '{ region(code: "440300") { name agencies { code } pool(scheme: PENSION) { id } } }'
    for query, passes, asked in ((local, 1, []), (held, 2, ["guangdong"]), (ROLLUP, 2, ["guangdong"])):
        body = (await _post(three_tiers["central"], query, {"r": "000000"} if "$r" in query else None, NATIONAL,
                            **timing)).json()
        assert "errors" not in body, body
        t = body["extensions"]["timing"]
        assert (t["passes"], [c["child"] for c in t["children"]]) == (passes, asked), query
    # Guangdong answered Shenzhen's region by asking Shenzhen: two passes there too.
    body = (await _post(three_tiers["central"], held, None, NATIONAL, **timing)).json()
    (gd,) = body["extensions"]["timing"]["children"]
    assert gd["timing"]["passes"] == 2 and [c["child"] for c in gd["timing"]["children"]] == ["shenzhen"]
    assert gd["timing"]["children"][0]["timing"]["passes"] == 1


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def _metrics(node: RunningNode, tok: str | None = OPERATOR) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.port}") as c:
        return await c.get("/metrics", headers={"Authorization": f"Bearer {tok}"} if tok else {})


async def test_metrics_count_child_requests_and_need_the_role(three_tiers: dict[str, RunningNode]) -> None:
    central = three_tiers["central"]
    assert (await _metrics(central, None)).status_code == 401
    assert (await _metrics(central, NATIONAL)).status_code == 403
    before = _samples((await _metrics(central)).text)
    await _post(central, ROLLUP, {"r": "000000"}, NATIONAL)
    await _post(central, ROLLUP, {"r": "000000"}, NATIONAL)
    after = _samples((await _metrics(central)).text)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert delta("tierfed_child_requests_total", child="guangdong", outcome="ok") == 2
    assert delta("tierfed_child_request_duration_seconds_count", child="guangdong") == 2
    assert delta("tierfed_requests_total", operation="Dashboard", outcome="ok") == 2
    gd = _samples((await _metrics(three_tiers["guangdong"])).text)
    assert gd[("tierfed_requests_total", (("operation", "TierfedForward"), ("outcome", "ok")))] >= 2


async def test_metrics_count_what_was_asked_with_bounded_labels(loaded_db: str) -> None:
    async with node_client(loaded_db) as c:
        q = ROLLUP.replace("query Dashboard", "query {name}")
        for name in ("Dashboard", "Dashboard", "Report440300199001011234", "AnotherAdHocName"):
            body = await c.gql(q.replace("{name}", name), {"r": "440000"})
            assert "errors" not in body, body
        await c.gql('query Dashboard { rollup(region: "44", period: {from: "2025-01", to: "2025-06"}) { complete } }')
        r = await c.http.get("/metrics", headers={"Authorization": f"Bearer {OPERATOR}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    s = _samples(r.text)
    assert s[("tierfed_requests_total", (("operation", "Dashboard"), ("outcome", "ok")))] == 2
    assert s[("tierfed_requests_total", (("operation", "unregistered"), ("outcome", "ok")))] == 2
    assert s[("tierfed_requests_total", (("operation", "Dashboard"), ("outcome", "BAD_USER_INPUT")))] == 1
    assert s[("tierfed_request_duration_seconds_count", (("operation", "Dashboard"),))] == 3
    assert "AdHoc" not in r.text and "199001011234" not in r.text
    assert s[("tierfed_sql_statements_total", ())] >= 4 and s[("tierfed_sql_seconds_total", ())] > 0
    assert s[("tierfed_cache_lookups_total", (("cache", "parse"), ("result", "hit")))] >= 1
    assert s[("tierfed_cache_lookups_total", (("cache", "parse"), ("result", "miss")))] >= 1
    assert ("tierfed_db_pool_connections", (("state", "in_use"),)) in s


async def test_metrics_can_be_switched_off(loaded_db: str) -> None:
    async with node_client(loaded_db, metrics={"enabled": False}) as c:
        r = await c.http.get("/metrics", headers={"Authorization": f"Bearer {OPERATOR}"})
    assert r.status_code == 404


async def test_spans_are_exported_over_otlp_when_an_endpoint_is_configured(fresh_db: str) -> None:
    """The configured path, end to end: the node's own provider exports over OTLP/HTTP to a
    collector (here a local one that decodes what it receives)."""

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    bodies: list[bytes] = []

    async def keep(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(ln.split(b":", 1)[1]) for ln in head.split(b"\r\n")
                      if ln.lower().startswith(b"content-length:"))
        bodies.append(await reader.readexactly(length))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    collector = await asyncio.start_server(keep, "127.0.0.1", 0)
    port = collector.sockets[0].getsockname()[1]
    cfg = node_config("440000", "guangdong", telemetry={"otlp_endpoint": f"http://127.0.0.1:{port}/v1/traces"})
    node = await start_node(cfg, fresh_db)
    try:
        assert node.runtime.tracer is not None
        r = await _post(node, ROLLUP, {"r": "440000"}, token("440000"))
        assert "errors" not in r.json()
    finally:
        await node.stop()  # shuts the provider down, which flushes the batch
        collector.close()
    assert bodies, "nothing was exported"
    names, services = set(), set()
    for b in bodies:
        req = ExportTraceServiceRequest.FromString(b)
        for rs in req.resource_spans:
            services |= {a.value.string_value for a in rs.resource.attributes if a.key == "service.name"}
            names |= {s.name for ss in rs.scope_spans for s in ss.spans}
    assert services == {"tierfed-guangdong"}
    assert {"POST /graphql", "graphql.parse_validate", "graphql.execute"} <= names
    assert any(n.startswith("sql ") for n in names)


@pytest.mark.parametrize("tables, words", [
    ({"metrics": {"role": "ADMIN"}}, "[metrics].role"),
    ({"metrics": {"listen": "9464"}}, "host:port"),
    ({"telemetry": {"otlp_endpoint": "collector:4318"}}, "http(s) URL"),
    ({"telemetry": {"sample_ratio": 2}}, "0 to 1"),
    ({"node": {"name": "n", "region": "000000", "workers": 0}}, "[node].workers"),
])
def test_bad_observability_config_says_what_to_fix(tables: dict[str, Any], words: str) -> None:
    from tierfed.config import parse
    from tierfed.errors import UserError

    data: dict[str, Any] = {"node": {"name": "n", "region": "000000"}, "auth": {"jwt_secret": "s" * 32}, **tables}
    with pytest.raises(UserError, match=re.escape(words)):
        parse(data)


async def test_metrics_count_imports_and_the_changes_waiting_for_a_node(fresh_db: str, tmp_path: Any) -> None:
    """An import over HTTP counts its rows and time; a change whose part a child has not
    applied yet shows as waiting for that child, with the age of the oldest."""
    cfg = node_config("000000", "central", [{"region": "440000", "url": "http://127.0.0.1:9/graphql",
                                             "name": "guangdong"}])
    async with node_client(fresh_db, cfg) as c:
        csv = "id_number,name,region_code\n110101199001011237,甲,110101\n110101199001021232,乙,110105\n"
        r = await c.http.post("/imports/persons?name=p.csv", content=csv.encode(),
                              headers={"Authorization": f"Bearer {OPERATOR}"})
        assert r.status_code == 200, r.text
        await c.runtime.pool.execute(
            "insert into change (id, kind, role, state, idempotency_key, input, caller, started_at, decided_at) "
            "values ('c-1', 'raisePoolingLevel', 'coordinator', 'COMMITTED', 'k-1', '{}', 't', "
            "now() - interval '90 seconds', now())")
        await c.runtime.pool.execute(
            "insert into change_participant (change_id, node, region, state) values ('c-1', 'guangdong', '440000', 'PENDING')")
        m = await c.http.get("/metrics", headers={"Authorization": f"Bearer {OPERATOR}"})
        s = _samples(m.text)
        assert s[("tierfed_import_rows_total", (("kind", "persons"), ("outcome", "imported")))] == 2
        assert s[("tierfed_import_duration_seconds_count", (("kind", "persons"),))] == 1
        assert s[("tierfed_changes_waiting", (("node", "guangdong"),))] == 1
        assert s[("tierfed_changes_waiting_oldest_seconds", (("node", "guangdong"),))] >= 90
        await c.runtime.pool.execute("update change_participant set state = 'COMMITTED'")
        s = _samples((await c.http.get("/metrics", headers={"Authorization": f"Bearer {OPERATOR}"})).text)
        assert s[("tierfed_changes_waiting", (("node", "guangdong"),))] == 0


def test_the_gauges_of_a_worker_that_is_gone_are_left_out(tmp_path: Path) -> None:
    """A worker that crashed (and was restarted) left its gauges' files: its last subscriptions
    and changes waiting stayed in every scrape's sum and maximum until the node restarted. Its
    counts stay (a counter of the dead worker is still part of the node's total)."""
    import subprocess
    import sys

    from prometheus_client import CollectorRegistry, generate_latest

    from tierfed.metrics import LiveWorkersCollector

    code = ("from prometheus_client import Counter, Gauge\n"
            "Gauge('tierfed_live_subscriptions', 'x', multiprocess_mode='livesum').set(7)\n"
            "Gauge('tierfed_changes_waiting', 'x', ['node'], multiprocess_mode='max').labels('a').set(5)\n"
            "Counter('tierfed_requests', 'x').inc(3)\n")
    subprocess.run([sys.executable, "-c", code], env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
                   check=True)
    registry = CollectorRegistry()
    LiveWorkersCollector(registry, path=str(tmp_path))
    text = generate_latest(registry).decode()
    assert "tierfed_live_subscriptions 7.0" not in text and 'tierfed_changes_waiting{node="a"} 5.0' not in text, text
    assert "tierfed_requests_total 3.0" in text, text


async def test_a_refused_subscription_is_counted_with_its_code(fresh_db: str, caplog: pytest.LogCaptureFixture) -> None:
    """A subscription refused before it starts (a bad token, a bad document) is logged and counted
    with its code (it was counted as ok with its 401 or 400)."""
    import json
    import logging

    caplog.set_level(logging.INFO, logger="tierfed.access")
    sub = 'subscription { rollup(region: "440000", period: {from: "2025-01", to: "2025-01"}) { complete } }'
    async with node_client(fresh_db) as c:
        stream = {"Accept": "text/event-stream"}
        bad_token = await c.http.post("/graphql", json={"query": sub},
                                      headers={**stream, "Authorization": "Bearer nope"})
        bad_doc = await c.http.post("/graphql", json={"query": "subscription { rollup(region: 1) }"},
                                    headers={**stream, "Authorization": f"Bearer {token()}"})
        metrics = c.runtime.metrics.exposition().decode()
    assert (bad_token.status_code, bad_doc.status_code) == (401, 400)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "tierfed.access"]
    assert [ln["outcome"] for ln in lines[-2:]] == ["UNAUTHENTICATED", "BAD_USER_INPUT"], lines
    assert 'outcome="UNAUTHENTICATED"' in metrics, metrics[:500]
