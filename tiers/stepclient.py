"""A small HTTP/1.1 client for change steps between nodes (tiers/changes.py).

Change steps are small signed JSON bodies sent to a handful of peers, many per
second while transfers stream: httpx's per-request machinery (and its two
writes per request, headers then body) cost more CPU than the step itself. This
client keeps idle connections per peer and sends each request with one write;
it reads the answer by ``Content-Length`` (or chunked). Only ``http://`` URLs:
for others the caller uses httpx.

A connection that the peer closed while idle fails on reuse before any byte of
the answer arrives: the step is sent once more on a new connection (every step
is idempotent).
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

MAX_IDLE = 32  # idle connections kept per peer
MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024


class StepError(Exception):
    """The peer could not be reached, closed the connection, or answered something that is not HTTP."""


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class StepClient:
    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[Conn]] = {}

    @staticmethod
    def handles(url: str) -> bool:
        return url.startswith("http://")

    async def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
        """POST ``body``; (status, answer body). TimeoutError after ``timeout`` seconds, StepError otherwise."""
        u = urlsplit(url)
        host, port = u.hostname or "127.0.0.1", u.port or 80
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        head = [f"POST {path} HTTP/1.1", f"Host: {u.netloc}", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        key = (host, port)
        async with asyncio.timeout(timeout):
            idle = self._idle.get(key)
            if idle:
                conn = idle.pop()
                try:
                    return await self._exchange(key, conn, request)
                except _Stale:
                    pass  # closed by the peer while idle: once more on a new connection
            try:
                conn = await asyncio.open_connection(host, port)
            except OSError as e:
                raise StepError(f"could not connect ({type(e).__name__})") from None
            try:
                return await self._exchange(key, conn, request)
            except _Stale:
                raise StepError("the connection was closed before an answer") from None

    async def _exchange(self, key: tuple[str, int], conn: Conn, request: bytes) -> tuple[int, bytes]:
        reader, writer = conn
        keep = False
        try:
            try:
                writer.write(request)
                await writer.drain()
                status_line = await reader.readline()
            except (ConnectionError, OSError):
                raise _Stale from None
            if not status_line:
                raise _Stale
            parts = status_line.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                raise StepError("answered something that is not HTTP")
            status = int(parts[1])
            length: int | None = None
            chunked = False
            close = parts[0] == b"HTTP/1.0"
            size = 0
            while True:
                line = await reader.readline()
                size += len(line)
                if size > MAX_HEAD:
                    raise StepError("answered headers too large")
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                value = value.strip()
                if name == b"content-length" and value.isdigit():
                    length = int(value)
                elif name == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
                elif name == b"connection":
                    close = close or value.lower() == b"close"
            if chunked:
                out = bytearray()
                while True:
                    n = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
                    if n == 0:
                        await reader.readline()
                        break
                    out += await reader.readexactly(n)
                    await reader.readexactly(2)
                    if len(out) > MAX_BODY:
                        raise StepError("answered a body too large")
                data = bytes(out)
            elif length is not None:
                if length > MAX_BODY:
                    raise StepError("answered a body too large")
                data = await reader.readexactly(length)
            else:
                data = await reader.read(MAX_BODY)
                close = True
            keep = not close
            return status, data
        except (asyncio.IncompleteReadError, ConnectionError, OSError, ValueError) as e:
            raise StepError(f"the answer broke off ({type(e).__name__})") from None
        finally:
            if keep and len(self._idle.setdefault(key, [])) < MAX_IDLE:
                self._idle[key].append(conn)
            else:
                writer.close()

    async def aclose(self) -> None:
        for conns in self._idle.values():
            for _, w in conns:
                w.close()
        self._idle.clear()


class _Stale(Exception):
    pass
