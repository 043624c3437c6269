"""Live answers (subscriptions) over Server-Sent Events and graphql-transport-ws, on real nodes:
new answers after commits anywhere in the subtree, one computation per distinct question and
scope, reconnecting with the last answer's id, tokens that expire, nothing shared across scopes.

No test waits for time to pass: each waits for the event that must come (bounded by a timeout).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import node_config, token
from tests.live_clients import SSE, WS
from tests.nodes import RunningNode, start_node
from tests.test_fresh_answers import VIEWER, import_contributions
from tests.test_pushed_versions import links_up, reported_import, three_tiers

pytestmark = pytest.mark.federation

LIVE = """subscription L($r: ID!) { rollup(region: $r, period: {from: "2025-01", to: "2025-06"}) {
  complete totals { scheme contributorMonths } } }"""


def months(data: Any) -> int:
    """contributorMonths of PENSION in a next payload."""
    assert "errors" not in data, data
    return int(data["data"]["rollup"]["totals"][0]["contributorMonths"])


async def one_node(fresh_db: str) -> RunningNode:
    return await start_node(node_config(), fresh_db)


async def test_a_subscription_at_the_central_node_gets_the_new_rollup_after_an_import_at_a_grandchild(
        new_db: Any, tmp_path: Path) -> None:
    nodes = await three_tiers(new_db, lease=120)
    try:
        await links_up(nodes)
        central, shenzhen = nodes["central"], nodes["shenzhen"]
        async with SSE(central.url, VIEWER, LIVE, {"r": "000000"}) as sse, WS(central.url, VIEWER) as ws:
            kind, first_id, data = await sse.event()
            assert kind == "next" and months(data) == 0 and data["extensions"]["answerId"] == first_id
            assert (await ws.recv())["type"] == "connection_ack"
            await ws.subscribe("a", LIVE, {"r": "000000"})
            msg = await ws.recv()
            assert msg["id"] == "a" and msg["type"] == "next" and months(msg["payload"]) == 0
            assert msg["payload"]["extensions"]["answerId"] == first_id
            live = central.runtime.live
            # One question, one scope: both transports share one watch.
            assert len(live.watches) == 1 and live.subscribers == 2
            computed, refreshes = live.computations, live.refreshes
            for step, (region, ms, total) in enumerate([("440304", [1, 2, 3], 3), ("440305", [4], 4)]):
                await reported_import(shenzhen, tmp_path / str(step), 40 + step, region, ms)
                kind, ident, data = await sse.event()
                assert kind == "next" and months(data) == total and ident != first_id
                msg = await ws.recv()
                assert msg["type"] == "next" and months(msg["payload"]) == total
                assert msg["payload"]["extensions"]["answerId"] == ident
            # However many subscribers, at most one computation per watch and refresh.
            assert 2 <= live.computations - computed <= live.refreshes - refreshes
            await ws.send({"id": "a", "type": "complete"})
        # Both gone: the watch is dropped.
        for _ in range(200):
            if not live.watches:
                break
            await asyncio.sleep(0.01)
        assert live.subscribers == 0 and live.watches == {}
    finally:
        for n in nodes.values():
            await n.stop()


async def test_reconnecting_with_the_last_answer_id(fresh_db: str, tmp_path: Path) -> None:
    node = await one_node(fresh_db)
    try:
        async with SSE(node.url, VIEWER, LIVE, {"r": "440000"}) as sse:
            _, seen, data = await sse.event()
            assert months(data) == 0
        # Back with the id it saw and nothing moved: no answer is sent again; the next one is the
        # commit's (had the old answer been sent, it would come first).
        async with SSE(node.url, VIEWER, LIVE, {"r": "440000"}, last_id=seen) as sse:
            await import_contributions(node.runtime, tmp_path / "a", 1, "440304", [1, 2])
            _, newer, data = await sse.event()
            assert newer != seen and months(data) == 2
        # Back with an older id: what it missed comes at once.
        async with SSE(node.url, VIEWER, LIVE, {"r": "440000"}, last_id=seen) as sse:
            _, ident, data = await sse.event()
            assert ident == newer and months(data) == 2
        # The same over graphql-transport-ws, with extensions.lastAnswerId.
        async with WS(node.url, VIEWER) as ws:
            assert (await ws.recv())["type"] == "connection_ack"
            await ws.subscribe("1", LIVE, {"r": "440000"}, last_id=newer)
            await import_contributions(node.runtime, tmp_path / "b", 2, "440305", [3])
            msg = await ws.recv()
            assert msg["id"] == "1" and months(msg["payload"]) == 3
            await ws.subscribe("2", LIVE, {"r": "440000"}, last_id=seen)
            msg = await ws.recv()
            assert msg["id"] == "2" and months(msg["payload"]) == 3
    finally:
        await node.stop()


async def test_a_subscription_ends_when_its_token_expires(fresh_db: str) -> None:
    node = await one_node(fresh_db)
    try:
        short = token("000000", ("VIEWER",), ttl=2)
        async with SSE(node.url, short, LIVE, {"r": "440000"}) as sse, WS(node.url, short) as ws:
            assert (await sse.event())[0] == "next"
            assert (await ws.recv())["type"] == "connection_ack"
            await ws.subscribe("x", LIVE, {"r": "440000"})
            assert (await ws.recv())["type"] == "next"
            kind, _, data = await sse.event()
            assert kind == "next" and data["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
            assert "expired" in data["errors"][0]["message"]
            assert (await sse.event())[0] == "complete"
            msg = await ws.recv()
            assert msg["type"] == "error" and msg["id"] == "x"
            assert msg["payload"][0]["extensions"]["code"] == "UNAUTHENTICATED"
            assert await ws.closed() == (4403, "Forbidden: token has expired")
        assert node.runtime.live.subscribers == 0
        # An expired token cannot subscribe at all.
        expired = token("000000", ("VIEWER",), ttl=-10)
        async with SSE(node.url, expired, LIVE, {"r": "440000"}) as sse:
            assert sse.status == 401 and sse.error_body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        async with WS(node.url, expired) as ws:
            code, reason = await ws.closed()
            assert code == 4403 and "expired" in reason
    finally:
        await node.stop()


async def test_two_scopes_or_role_sets_never_share_and_a_refusal_ends_the_subscription(
        fresh_db: str, tmp_path: Path) -> None:
    node = await one_node(fresh_db)
    try:
        national, province = VIEWER, token("440000", ("VIEWER",))
        operator = token("000000", ("VIEWER", "OPERATOR"))
        readers = [token("000000", ("VIEWER", "PII_READER"), sub=s) for s in ("r1", "r2")]
        subs = [SSE(node.url, t, LIVE, {"r": "440000"}) for t in (national, province, operator, *readers)]
        same = SSE(node.url, token("000000", ("VIEWER",), sub="another-subject"), LIVE, {"r": "440000"})
        try:
            ids = []
            for s in [*subs, same]:
                await s.__aenter__()
                ids.append((await s.event())[1])
            live = node.runtime.live
            # national, province, operator, each PII reader: a watch each; another subject with the
            # national scope and roles shares the national one.
            assert len(live.watches) == 5 and live.subscribers == 6
            assert len(set(ids)) == 5 and ids[-1] == ids[0]
            await import_contributions(node.runtime, tmp_path, 3, "440304", [1])
            for s in [*subs, same]:
                assert months((await s.event())[2]) == 1
        finally:
            for s in [*subs, same]:
                await s.__aexit__(None, None, None)
        # Outside the scope: the refusal, then the end (a commit can never change it).
        async with SSE(node.url, province, LIVE, {"r": "000000"}) as sse:
            kind, _, data = await sse.event()
            assert kind == "next" and data["data"] is None
            assert {e["extensions"]["code"] for e in data["errors"]} == {"FORBIDDEN"}
            assert (await sse.event())[0] == "complete"
    finally:
        await node.stop()


async def test_self_service_tokens_never_share_a_live_answer(loaded_db: str) -> None:
    """A self-service token's scope and roles are every subject's: its live answer is its own.
    Before, a second employer subscribing to the first one's question joined the first one's
    watch and was sent that employer's records. (The shared loaded database keeps the audit
    rows: the operation has a name of its own, which no other test counts.)"""
    node = await start_node(node_config(), loaded_db)
    try:
        ours, theirs = [r[0] for r in await node.runtime.pool.fetch(
            "select distinct employer_credit_code from contribution where employer_credit_code is not null "
            "order by 1 limit 2")]
        q = "subscription OursLive($c: String!) { employer(creditCode: $c) { creditCode name } }"
        async with SSE(node.url, token("000000", ("SELF_EMPLOYER",), sub=ours), q, {"c": ours}) as own:
            kind, _, data = await own.event()
            assert kind == "next" and data["data"]["employer"]["creditCode"] == ours, data
            async with SSE(node.url, token("000000", ("SELF_EMPLOYER",), sub=theirs), q, {"c": ours}) as other:
                kind, _, data = await other.event()
                assert kind == "next" and data["data"] is None, data
                assert {e["extensions"]["code"] for e in data["errors"]} == {"FORBIDDEN"}
    finally:
        await node.stop()


async def test_a_live_answer_as_of_now_moves_with_the_month(loaded_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pool's balance as of now moves with the calendar, which moves no version: once the month
    has turned, the next check recomputes the live answer (it had kept the old month's)."""
    from datetime import date

    from tierfed import codes

    node = await start_node(node_config(), loaded_db)
    try:
        pool_id = await node.runtime.pool.fetchval("select id from pool where scheme = 1 order by id limit 1")
        q = "subscription($p: ID!) { pool(id: $p) { id balance } }"
        async with SSE(node.url, token(), q, {"p": pool_id}) as sub:
            kind, _, now = await sub.event()
            assert kind == "next" and now["data"]["pool"]["id"] == pool_id, now
            monkeypatch.setattr(codes, "current_month", lambda: date(2025, 2, 1))  # inside the data's months
            node.runtime.live.checked()
            kind, _, then = await asyncio.wait_for(sub.event(), 10)
            assert kind == "next" and then["data"]["pool"]["balance"] != now["data"]["pool"]["balance"], then
    finally:
        await node.stop()


async def test_a_node_running_registered_operations_only_runs_registered_subscriptions_only(
        fresh_db: str, tmp_path: Path) -> None:
    """``persisted_only`` holds for subscriptions, over Server-Sent Events and WebSocket alike
    (a subscription sent as text had run)."""
    sha = hashlib.sha256(LIVE.encode()).hexdigest()
    ops = tmp_path / "operations.json"
    ops.write_text(json.dumps({sha: LIVE}), "utf-8")
    by_hash = {"persistedQuery": {"version": 1, "sha256Hash": sha}}
    node = await start_node(node_config(http={"persisted_only": True, "persisted_operations_file": str(ops)}),
                            fresh_db)
    try:
        async with SSE(node.url, VIEWER, LIVE, {"r": "440000"}) as sse:
            assert sse.status == 400, sse.status
            assert sse.error_body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
            assert "registered operations only" in sse.error_body["errors"][0]["message"]
        async with SSE(node.url, VIEWER, None, {"r": "440000"}, extensions=by_hash) as sse:
            kind, _, data = await sse.event()
            assert kind == "next" and months(data) == 0
        async with WS(node.url, VIEWER) as ws:
            assert (await ws.recv())["type"] == "connection_ack"
            await ws.subscribe("text", LIVE, {"r": "440000"})
            msg = await ws.recv()
            assert msg["id"] == "text" and msg["type"] == "error", msg
            assert msg["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"
            await ws.send({"id": "hash", "type": "subscribe", "payload": {"variables": {"r": "440000"},
                                                                           "extensions": by_hash}})
            msg = await ws.recv()
            assert msg["id"] == "hash" and msg["type"] == "next" and months(msg["payload"]) == 0, msg
    finally:
        await node.stop()


async def test_a_client_accepting_every_media_type_gets_its_queries_as_json(fresh_db: str) -> None:
    """urql's default Accept lists text/event-stream among the JSON types: its queries and
    mutations are answered as JSON, its subscriptions as a stream (every urql query had been
    sent to the stream's endpoint and refused)."""
    accept = ("application/graphql-response+json, application/graphql+json, application/json, "
              "text/event-stream, multipart/mixed")
    node = await one_node(fresh_db)
    try:
        async with httpx.AsyncClient(timeout=10) as c:
            r = await c.post(node.url, json={"query": "{ nation { code } }"},
                             headers={"Authorization": f"Bearer {VIEWER}", "Accept": accept})
            assert r.status_code == 200 and r.json() == {"data": {"nation": {"code": "000000"}}}, r.text
            async with c.stream("POST", node.url, json={"query": LIVE, "variables": {"r": "440000"}},
                                headers={"Authorization": f"Bearer {VIEWER}", "Accept": accept}) as s:
                assert s.headers["content-type"].startswith("text/event-stream")
    finally:
        await node.stop()


async def test_websocket_messages_that_are_not_graphql_close_it_cleanly(fresh_db: str) -> None:
    """A binary frame, a message over the body limit, a reused id of many Chinese characters:
    each closes the socket with its code (they had raised in the handler: no code, a traceback);
    and an id completed and subscribed again at once leaves one subscription, not an untracked
    one beside it (which had escaped the per-connection limit and outlived the socket)."""
    node = await start_node(node_config(limits={"max_body_bytes": 10_000}), fresh_db)
    try:
        async with WS(node.url, VIEWER) as ws:
            assert (await ws.recv())["type"] == "connection_ack"
            await ws.ws.send(b"\x00binary")
            assert (await ws.closed())[0] == 4400
        async with WS(node.url, VIEWER) as ws:
            assert (await ws.recv())["type"] == "connection_ack"
            await ws.send({"id": "big", "type": "subscribe", "payload": {"query": "#" + "x" * 20_000 + "\n" + LIVE}})
            code, reason = await ws.closed()
            assert code == 4400 and "max_body_bytes" in reason
        async with WS(node.url, VIEWER) as ws:
            assert (await ws.recv())["type"] == "connection_ack"
            long_id = "订阅" * 60
            await ws.subscribe(long_id, LIVE, {"r": "440000"})
            await ws.subscribe(long_id, LIVE, {"r": "440000"})
            code, reason = await ws.closed()
            assert code == 4409 and len(reason.encode()) <= 123
        async with WS(node.url, VIEWER) as ws:
            assert (await ws.recv())["type"] == "connection_ack"
            for _ in range(30):
                await ws.subscribe("a", LIVE, {"r": "440000"})
                await ws.send({"id": "a", "type": "complete"})
            await ws.subscribe("a", LIVE, {"r": "440000"})
            msg = await ws.recv()
            while msg.get("type") != "next":
                msg = await ws.recv()
            live = node.runtime.live
            for _ in range(100):  # the completed ones end: one subscription left, the last
                if live.subscribers == 1:
                    break
                await asyncio.sleep(0.02)
            assert live.subscribers == 1, live.subscribers
        for _ in range(100):  # and none outlives the socket
            if live.subscribers == 0:
                break
            await asyncio.sleep(0.02)
        assert live.subscribers == 0, live.subscribers
    finally:
        await node.stop()


async def test_requests_that_cannot_run_are_refused_before_any_stream(fresh_db: str) -> None:
    node = await one_node(fresh_db)
    try:
        async with SSE(node.url, VIEWER, "{ nation { code } }") as sse:
            assert sse.status == 400 and "send a subscription" in sse.error_body["errors"][0]["message"]
        async with SSE(node.url, VIEWER, "subscription { rollup(region: \"44\", period: {from: \"2025-01\", "
                                         "to: \"2025-02\"}) { complete } }") as sse:
            # The malformed code is refused by the field, as for a query: that answer, then the end.
            assert sse.status == 200
            _, _, data = await sse.event()
            assert data["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
            assert (await sse.event())[0] == "complete"
        async with SSE(node.url, VIEWER, "subscription { nation { code } region(code: \"440000\") { code } }") as sse:
            assert sse.status == 400  # a subscription has one root field
        async with SSE(node.url, "not-a-token", LIVE, {"r": "440000"}) as sse:
            assert sse.status == 401
        # Over plain HTTP a subscription says where to go.
        async with httpx.AsyncClient(timeout=10) as h:
            r = await h.post(node.url, json={"query": LIVE, "variables": {"r": "440000"}},
                             headers={"Authorization": f"Bearer {VIEWER}"})
        assert "text/event-stream" in r.json()["errors"][0]["message"]
        # graphql-transport-ws: an error message for a bad subscription, close codes for a bad protocol.
        async with WS(node.url, VIEWER) as ws:
            assert (await ws.recv())["type"] == "connection_ack"
            await ws.subscribe("q", "subscription { nope }")
            msg = await ws.recv()
            assert msg["type"] == "error" and msg["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"
            await ws.send({"type": "ping"})
            assert (await ws.recv())["type"] == "pong"
            await ws.subscribe("d", LIVE, {"r": "440000"})
            assert (await ws.recv())["type"] == "next"
            await ws.subscribe("d", LIVE, {"r": "440000"})
            assert (await ws.closed())[0] == 4409
        async with WS(node.url, "garbage") as ws:
            assert (await ws.closed())[0] == 4403
    finally:
        await node.stop()


async def test_a_child_that_pushes_nothing_is_checked_as_a_fallback(new_db: Any, tmp_path: Path) -> None:
    """Guangdong has no [parent] (it tells nobody) and the central node no lease: the central node's
    live answer learns of Guangdong's commit by its periodic fallback check."""
    import dataclasses

    from tests.nodes import free_port

    port = free_port()
    child = await start_node(node_config("440000", "guangdong"), await new_db(), port)
    central = await start_node(dataclasses.replace(node_config("000000", "central", [
        {"region": "440000", "url": f"http://127.0.0.1:{port}/graphql", "name": "guangdong", "timeout_s": 3}]),
        link_lease_s=0), await new_db())
    try:
        async with SSE(central.url, VIEWER, LIVE, {"r": "000000"}) as sse:
            _, first, data = await sse.event()
            assert months(data) == 0
            await import_contributions(child.runtime, tmp_path, 70, "440304", [1, 2])
            _, ident, data = await sse.event()
            assert ident != first and months(data) == 2
        assert central.runtime.clients.version_requests["guangdong"] > 0
    finally:
        await central.stop()
        await child.stop()


async def test_a_live_answer_learns_that_a_child_went_down(new_db: Any) -> None:
    """A live answer computed while its child's link was up says so no more once the child is
    gone: the next round of link checks recomputes it (incomplete). Before, only watches
    computed while a link was already down were looked at again, and this one kept its old
    answer, complete, for as long as the child stayed away."""
    import dataclasses

    from tests.nodes import free_port

    port = free_port()
    child = await start_node(node_config("440000", "guangdong", parent={"url": "http://127.0.0.1:9/graphql"}),
                             await new_db(), port)
    central = await start_node(dataclasses.replace(node_config("000000", "central", [
        {"region": "440000", "url": f"http://127.0.0.1:{port}/graphql", "name": "guangdong", "timeout_s": 1}]),
        link_lease_s=1.5), await new_db())
    q = LIVE.replace("complete totals", "complete missing { code } totals")
    try:
        assert await central.runtime.links.check_children() == {"guangdong": True}
        async with SSE(central.url, VIEWER, q, {"r": "000000"}) as sse:
            _, _, data = await sse.event()
            assert data["data"]["rollup"]["complete"] is True, data
            await child.stop()
            _, _, data = await sse.event()
            assert data["data"]["rollup"]["complete"] is False, data
            assert data["data"]["rollup"]["missing"] == [{"code": "440000"}], data
    finally:
        await central.stop()
        await child.stop()


async def test_the_limits_of_queries_apply_and_subscriptions_are_bounded(fresh_db: str) -> None:
    node = await start_node(node_config(live={"max_subscriptions": 1}, limits={"max_depth": 3}), fresh_db)
    try:
        deep = "subscription { region(code: \"440000\") { children { children { children { code } } } } }"
        async with SSE(node.url, VIEWER, deep) as sse:
            assert sse.status == 400
            assert sse.error_body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
        async with SSE(node.url, VIEWER, LIVE, {"r": "440000"}) as first:
            assert (await first.event())[0] == "next"
            async with SSE(node.url, VIEWER, LIVE, {"r": "440000"}) as second:
                assert second.status == 503
                err = second.error_body["errors"][0]
                assert err["extensions"]["code"] == "QUERY_TOO_COMPLEX" and "at most 1 live answers" in err["message"]
    finally:
        await node.stop()
