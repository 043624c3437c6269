"""Request bodies read with a limit: counted as they arrive, so a body over the limit (however
it is sent: a false or missing Content-Length, chunked) is refused after at most ``limit``
bytes, never held whole in memory first."""

from __future__ import annotations

from starlette.requests import Request


class TooLarge(Exception):
    """The body is longer than the limit."""


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        parts.append(chunk)
    return b"".join(parts)
