"""The two transports of live answers (``tierfed.live``), both at ``/graphql``:

- **GraphQL over Server-Sent Events**, the "distinct connections" mode of graphql-sse:
  ``POST /graphql`` (or GET with ``query``/``variables`` parameters) with
  ``Accept: text/event-stream`` and the usual ``Authorization: Bearer``. Each answer is an
  ``event: next`` whose ``id`` is the answer's id; the stream ends with ``event: complete``.
  Reconnect with ``Last-Event-ID`` (or ``extensions.lastAnswerId``): the current answer is
  sent again only if it is another one.
- **graphql-transport-ws** (the protocol of the graphql-ws library), a WebSocket at
  ``/graphql``: the token goes in ``connection_init``'s payload (``{"Authorization":
  "Bearer ..."}`` or ``{"token": "..."}``; browsers cannot set headers on a WebSocket) or in
  the upgrade request's Authorization header. ``extensions.lastAnswerId`` as for SSE.

Request errors (a bad token, a document that does not validate, over a limit) are
answered before any stream starts: a JSON error with a 4xx status over SSE, an ``error``
message over WebSocket. When the token expires, every subscription it carries ends with
UNAUTHENTICATED (and the WebSocket closes with 4403).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from . import observe
from .auth import Caller, bearer
from .errors import Code, TierfedError
from .execution import RequestError, format_error, is_subscription, unstorable
from .live import Live, Subscriber, payload
from .persisted import operation_text
from .runtime import Runtime

log = logging.getLogger("tierfed.subscriptions")

PROTOCOL = "graphql-transport-ws"
KEEPALIVE_S = 15.0
INIT_TIMEOUT_S = 10.0
PER_CONNECTION = 100  # subscriptions one WebSocket may hold at once
NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def live_of(rt: Runtime) -> Live:
    """The worker's live answers, made on first use."""
    if rt.live is None:
        rt.live = Live(rt)
    return rt.live  # type: ignore[no-any-return]


def wants_stream(request: Request, rt: Runtime, params: dict[str, Any]) -> bool:
    """Whether a request is a subscription over Server-Sent Events: it accepts text/event-stream and
    either accepts nothing else or sends a subscription. A client that accepts every media type
    (urql lists text/event-stream among JSON's) gets its queries and mutations as JSON."""
    types = [t.split(";", 1)[0].strip().lower() for t in request.headers.get("accept", "").split(",")]
    if "text/event-stream" not in types:
        return False
    if all(t in ("text/event-stream", "") for t in types):
        return True
    try:
        query = operation_text(rt.persisted, rt.cfg.persisted_only, params)
    except TierfedError:
        return False  # refused as a plain request, which says why
    return is_subscription(query, params.get("operationName"))


def _errors(errors: list[GraphQLError]) -> list[dict[str, Any]]:
    return [format_error(e) for e in errors]


def _params(rt: Runtime, params: dict[str, Any]) -> tuple[str, str | None, dict[str, Any], str | None]:
    """query (a registered one when the request names it by hash: persisted operations hold for
    subscriptions too), operationName, variables, lastAnswerId of a request; TierfedError naming
    what is wrong."""
    query = operation_text(rt.persisted, rt.cfg.persisted_only, params)
    op, variables = params.get("operationName") or None, params.get("variables") or {}
    ext = params.get("extensions") or {}
    if not isinstance(query, str) or not query.strip():
        raise TierfedError(Code.BAD_USER_INPUT, 'request has no query: send {"query": "subscription { ... }"}')
    if not isinstance(variables, dict) or (op is not None and not isinstance(op, str)) or not isinstance(ext, dict):
        raise TierfedError(Code.BAD_USER_INPUT,
                           "variables and extensions must be JSON objects and operationName a string")
    why = unstorable([query, op, variables, ext])
    if why:
        raise TierfedError(Code.BAD_USER_INPUT, why)
    last = ext.get("lastAnswerId")
    return query, op, variables, last if isinstance(last, str) else None


# ------------------------------------------------------------------ Server-Sent Events


def _event(kind: str, data: bytes = b"", event_id: str | None = None) -> bytes:
    head = f"event: {kind}\n".encode() + (f"id: {event_id}\n".encode() if event_id else b"")
    return head + b"data: " + data + b"\n\n"


def _refused(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    """A subscription refused before it started: counted and logged with its code, not as ``ok``."""
    req = observe.current.get()
    if req is not None:
        req.outcome = observe.outcome_of(body)
    return JSONResponse(body, status, headers={**NO_STORE, **(headers or {})})


async def sse_endpoint(request: Request, rt: Runtime, params: dict[str, Any]) -> Response:
    """A subscription over Server-Sent Events (``params`` already read from the body or the URL)."""
    try:
        caller = await rt.keys.verify_async(bearer(request.headers.get("authorization")), rt.tree)
    except TierfedError as e:
        return _refused({"errors": _errors([e])}, 401, {"WWW-Authenticate": "Bearer"})
    try:
        query, op, variables, last = _params(rt, params)
        last = request.headers.get("last-event-id") or last
        sub = await live_of(rt).subscribe(caller, query, op, variables, last)
    except RequestError as e:
        return _refused({"errors": _errors(e.errors)}, 400)
    except TierfedError as e:
        status = 401 if e.code == Code.UNAUTHENTICATED else 503 if e.code == Code.QUERY_TOO_COMPLEX else 400
        return _refused({"errors": _errors([e])}, status)
    return StreamingResponse(_stream(rt, sub), media_type="text/event-stream",
                             headers={**NO_STORE, "X-Accel-Buffering": "no"})


async def _stream(rt: Runtime, sub: Subscriber) -> AsyncIterator[bytes]:
    try:
        yield b": live answers of tierfed\n\n"
        while True:
            try:
                got = await asyncio.wait_for(sub.next(), KEEPALIVE_S)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if got is None:
                break
            answer_id, body = got
            yield _event("next", payload(body, answer_id), answer_id)
        errors = (sub.ended or {}).get("errors")
        if errors:
            yield _event("next", json.dumps({"errors": errors}, ensure_ascii=False).encode())
        yield _event("complete")
    finally:
        live_of(rt).unsubscribe(sub)


# ------------------------------------------------------------------ graphql-transport-ws


async def ws_endpoint(ws: WebSocket) -> None:
    rt: Runtime = ws.app.state.runtime
    if PROTOCOL not in ws.scope.get("subprotocols", []):
        await ws.close(4406, "Subprotocol not acceptable: use graphql-transport-ws")
        return
    await ws.accept(subprotocol=PROTOCOL)
    conn = _Connection(rt, ws)
    try:
        await conn.serve()
    finally:
        await conn.stop()


class _Connection:
    def __init__(self, rt: Runtime, ws: WebSocket) -> None:
        self.rt = rt
        self.ws = ws
        self.caller: Caller | None = None
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.subs: dict[str, Subscriber] = {}
        self.send_lock = asyncio.Lock()
        self.expiry: asyncio.TimerHandle | None = None
        self.ending: asyncio.Task[None] | None = None

    async def send(self, msg: dict[str, Any]) -> None:
        async with self.send_lock:
            await self.ws.send_text(json.dumps(msg, ensure_ascii=False, separators=(",", ":")))

    async def close(self, code: int, reason: str) -> None:
        # A close frame's reason holds at most 123 bytes of UTF-8 (not characters).
        reason = reason.encode()[:123].decode("utf-8", errors="ignore")
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await self.ws.close(code, reason)

    async def receive(self) -> str | None:
        """The next message's text; None when the client sent what no GraphQL message is (a binary
        frame, or more than [limits].max_body_bytes), the connection then closed with 4400."""
        msg = await self.ws.receive()
        if msg["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(msg.get("code", 1000))
        text = msg.get("text")
        if text is None:
            await self.close(4400, "Invalid message: graphql-transport-ws messages are text frames")
            return None
        if len(text) > self.rt.cfg.limits.max_body_bytes:
            await self.close(4400, f"Invalid message: over this node's limit of {self.rt.cfg.limits.max_body_bytes} "
                                   "bytes ([limits].max_body_bytes)")
            return None
        return text

    async def serve(self) -> None:
        try:
            first = await asyncio.wait_for(self.receive(), INIT_TIMEOUT_S)
        except TimeoutError:
            await self.close(4408, "Connection initialisation timeout")
            return
        except WebSocketDisconnect:
            return
        if first is None:
            return
        msg = _message(first)
        if msg is None or msg.get("type") != "connection_init":
            await self.close(4401 if msg is not None and msg.get("type") == "subscribe" else 4400,
                             "Unauthorized" if msg is not None and msg.get("type") == "subscribe"
                             else "Send connection_init first")
            return
        init = msg.get("payload") or {}
        header = self.ws.headers.get("authorization")
        if isinstance(init, dict):
            header = init.get("Authorization") or init.get("authorization") or \
                (f"Bearer {init['token']}" if isinstance(init.get("token"), str) else header)
        try:
            self.caller = await self.rt.keys.verify_async(bearer(header if isinstance(header, str) else None),
                                                          self.rt.tree)
        except TierfedError as e:
            await self.close(4403, f"Forbidden: {e.message}"[:120])
            return
        await self.send({"type": "connection_ack"})
        if self.caller.exp is not None:
            self.expiry = asyncio.get_running_loop().call_later(
                max(0.0, self.caller.exp - time.time()), self._expire)
        while True:
            try:
                text = await self.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if text is None:
                return
            msg = _message(text)
            kind = msg.get("type") if msg is not None else None
            if kind == "ping":
                await self.send({"type": "pong"})
            elif kind == "pong":
                continue
            elif kind == "subscribe" and isinstance(msg.get("id"), str) and isinstance(msg.get("payload"), dict):  # type: ignore[union-attr]
                op_id = msg["id"]  # type: ignore[index]
                if op_id in self.tasks:
                    await self.close(4409, f"Subscriber for {op_id[:64]} already exists")
                    return
                if len(self.tasks) >= PER_CONNECTION:
                    err = TierfedError(Code.QUERY_TOO_COMPLEX, f"a connection holds at most {PER_CONNECTION} "
                                       "subscriptions: complete one first", limit="subscriptions_per_connection")
                    await self.send({"id": op_id, "type": "error", "payload": _errors([err])})
                    continue
                self.tasks[op_id] = asyncio.get_running_loop().create_task(self.run(op_id, msg["payload"]))  # type: ignore[index]
            elif kind == "complete" and isinstance(msg.get("id"), str):  # type: ignore[union-attr]
                self.cancel(msg["id"])  # type: ignore[index]
            elif kind == "connection_init":
                await self.close(4429, "Too many initialisation requests")
                return
            else:
                await self.close(4400, "Invalid message: expected ping, pong, subscribe or complete")
                return

    async def run(self, op_id: str, params: dict[str, Any]) -> None:
        live = live_of(self.rt)
        assert self.caller is not None
        sub = None
        try:
            try:
                query, op, variables, last = _params(self.rt, params)
                sub = await live.subscribe(self.caller, query, op, variables, last)
            except RequestError as e:
                await self.send({"id": op_id, "type": "error", "payload": _errors(e.errors)})
                return
            except TierfedError as e:
                await self.send({"id": op_id, "type": "error", "payload": _errors([e])})
                return
            self.subs[op_id] = sub
            while True:
                got = await sub.next()
                if got is None:
                    break
                answer_id, body = got
                async with self.send_lock:
                    await self.ws.send_text('{"id":' + json.dumps(op_id) + ',"type":"next","payload":'
                                            + payload(body, answer_id).decode() + "}")
            errors = (sub.ended or {}).get("errors")
            if errors:
                await self.send({"id": op_id, "type": "error", "payload": errors})
            else:
                await self.send({"id": op_id, "type": "complete"})
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            if sub is not None:
                live.unsubscribe(sub)
            # Only this subscription's own entries: its id may already name a new one (completed,
            # then subscribed again before this task ended), which must stay tracked.
            if self.subs.get(op_id) is sub:
                del self.subs[op_id]
            if self.tasks.get(op_id) is asyncio.current_task():
                del self.tasks[op_id]

    def _expire(self) -> None:
        self.ending = asyncio.get_running_loop().create_task(self.expired())

    def cancel(self, op_id: str) -> None:
        task = self.tasks.pop(op_id, None)
        if task is not None:
            task.cancel()

    async def expired(self) -> None:
        """The connection's token expired: every subscription ends with UNAUTHENTICATED (an ``error``
        message each, sent by its own task), then the socket closes."""
        err = dict(TierfedError(Code.UNAUTHENTICATED, "token has expired: the subscription ends; subscribe again "
                                "with a new token").formatted)
        for sub in list(self.subs.values()):
            sub.end([err])  # a no-op for one whose own timer ended it already
        if self.tasks:
            await asyncio.wait(list(self.tasks.values()), timeout=5.0)
        await self.close(4403, "Forbidden: token has expired")

    async def stop(self) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
        for task in list(self.tasks.values()):
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)


def _message(text: str) -> dict[str, Any] | None:
    try:
        msg = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return msg if isinstance(msg, dict) else None
