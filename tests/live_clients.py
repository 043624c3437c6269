"""Real clients of live answers: Server-Sent Events over httpx, graphql-transport-ws over websockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import websockets

WAIT_S = 30.0  # a bound on waiting for an event that must come, never a pause


class SSE:
    """One subscription over GraphQL over Server-Sent Events (distinct connections)."""

    def __init__(self, url: str, token: str, query: str | None, variables: dict[str, Any] | None = None,
                 last_id: str | None = None, extensions: dict[str, Any] | None = None) -> None:
        self.url, self.token, self.query, self.variables, self.last_id = url, token, query, variables or {}, last_id
        self.extensions = extensions  # e.g. a persisted operation's hash, sent instead of the query
        self.status = 0
        self.error_body: Any = None
        self._stack = contextlib.AsyncExitStack()
        self._lines: AsyncIterator[str] | None = None

    async def __aenter__(self) -> SSE:
        http = await self._stack.enter_async_context(httpx.AsyncClient(timeout=httpx.Timeout(60, read=None)))
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "text/event-stream"}
        if self.last_id:
            headers["Last-Event-ID"] = self.last_id
        r = await self._stack.enter_async_context(http.stream(
            "POST", self.url, json={k: v for k, v in (("query", self.query), ("variables", self.variables),
                                                      ("extensions", self.extensions)) if v is not None},
            headers=headers))
        self.status = r.status_code
        if r.headers.get("content-type", "").startswith("text/event-stream"):
            self._lines = r.aiter_lines()
        else:
            self.error_body = json.loads(await r.aread())
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._stack.aclose()

    async def event(self, timeout: float = WAIT_S) -> tuple[str, str | None, Any]:
        """The next event: (kind, id, data as JSON or None)."""
        assert self._lines is not None, self.error_body
        return await asyncio.wait_for(self._event(), timeout)

    async def _event(self) -> tuple[str, str | None, Any]:
        assert self._lines is not None
        kind, ident, data = "", None, ""
        async for line in self._lines:
            if line == "":
                if kind:
                    return kind, ident, json.loads(data) if data else None
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(": ")
            if field == "event":
                kind = value
            elif field == "id":
                ident = value
            elif field == "data":
                data += value
        raise EOFError("the stream ended")


class WS:
    """A graphql-transport-ws connection."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url.replace("http://", "ws://")
        self.token = token
        self.ws: Any = None
        self.close_code: int | None = None

    async def __aenter__(self) -> WS:
        self.ws = await websockets.connect(self.url, subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
        await self.send({"type": "connection_init", "payload": {"Authorization": f"Bearer {self.token}"}})
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.ws.close()

    async def send(self, msg: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(msg))

    async def recv(self, timeout: float = WAIT_S) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))  # type: ignore[no-any-return]

    async def subscribe(self, op_id: str, query: str, variables: dict[str, Any] | None = None,
                        last_id: str | None = None) -> None:
        payload: dict[str, Any] = {"query": query, "variables": variables or {}}
        if last_id:
            payload["extensions"] = {"lastAnswerId": last_id}
        await self.send({"id": op_id, "type": "subscribe", "payload": payload})

    async def closed(self, timeout: float = WAIT_S) -> tuple[int, str]:
        """Wait for the server to close the socket: its code and reason."""
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(self.ws.recv(), timeout)
        return self.ws.close_code, self.ws.close_reason
