"""``POST /internal/changes``: change steps between nodes (tiers/changes.py).

Not GraphQL and not for callers: every step is signed by a node key. Prepare,
commit and abort are accepted only from this node's configured parent; a
question about a change's state only from a configured child.
"""

from __future__ import annotations

import json
import logging
import time

from starlette.requests import Request
from starlette.responses import JSONResponse

from .bodies import TooLarge, read_body
from .errors import Code
from .runtime import Runtime

log = logging.getLogger("tierfed.changes")
MAX_BODY = 1_000_000


async def changes_endpoint(request: Request) -> JSONResponse:
    rt: Runtime = request.app.state.runtime
    t0 = time.perf_counter()
    try:
        # Counted as it arrives: the step is read before its signature can be checked.
        body = await read_body(request, MAX_BODY)
    except TooLarge:
        return JSONResponse({"ok": False, "code": Code.BAD_USER_INPUT.value, "message": "step too large"}, 413)
    try:
        msg = json.loads(body)
    except (ValueError, RecursionError):
        return JSONResponse({"ok": False, "code": Code.BAD_USER_INPUT.value, "message": "body is not JSON"}, 400)
    if not isinstance(msg, dict):
        return JSONResponse({"ok": False, "code": Code.BAD_USER_INPUT.value, "message": "body is not an object"}, 400)
    header = request.headers.get("authorization")
    try:
        if msg.get("op") == "status":
            sender = rt.changes.identity.verify_from_child(header, body)
        else:
            sender = rt.changes.identity.verify_from_parent(header, body)
    except PermissionError as e:
        log.warning("change step refused: %s", e)
        return JSONResponse({"ok": False, "code": Code.FORBIDDEN.value, "message": str(e)}, 403)
    answer = await rt.changes.handle(msg, sender)
    # how long this node took over the step (the sender's round trip less this is the network and
    # the queueing on both sides: bench/changes.py reports both)
    return JSONResponse({**answer, "ms": round((time.perf_counter() - t0) * 1e3, 2)})
