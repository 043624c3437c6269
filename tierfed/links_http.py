"""``/tierfed/link``: the two directions of a node's link to its parent (``tiers.links``).

``GET``: the parent's periodic check; the answer is this node's version, the lease it
grants and the head of its person feed (``tiers.personindex``). ``POST {"version": n,
"persons": h}``: a child's push; answered ``{"ok": true}`` once this node
recorded it and every ancestor acknowledged this node's new version (or, when that
failed, once the lease this node granted its parent ran out: ``warning`` says so).
Both take only a NODE token: from a node above this one (GET), from a child's region (POST).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from .auth import bearer
from .bodies import TooLarge, read_body
from .errors import Code, TierfedError
from .runtime import Runtime
from .tiers.links import feed_head

MAX_BODY = 1024


def _refused(code: Code, message: str, status: int) -> JSONResponse:
    return JSONResponse({"ok": False, "code": code.value, "message": message}, status)


async def link_endpoint(request: Request) -> JSONResponse:
    rt: Runtime = request.app.state.runtime
    try:
        caller = rt.keys.verify(bearer(request.headers.get("authorization")), rt.tree)
    except TierfedError as e:
        return _refused(Code.UNAUTHENTICATED, e.message, 401)
    if not caller.has("NODE"):
        return _refused(Code.FORBIDDEN, "/tierfed/link is node to node: it needs a NODE token", 403)
    if request.method == "GET":
        if caller.scope == rt.node.region or not rt.tree.within(rt.node.region, caller.scope):
            return _refused(Code.FORBIDDEN, f"{caller.scope} is not above this node's region {rt.node.region}", 403)
        if caller.to != rt.node.name:
            return _refused(Code.FORBIDDEN, f"the NODE token was signed for {caller.to or 'no node'}, not for this "
                                            f"node '{rt.node.name}'", 403)
        version, valid, head = await rt.links.grant()
        return JSONResponse({"version": version, "validFor": valid, "persons": head},
                            headers={"Cache-Control": "no-store"})
    child = rt.index.child_of_caller(caller.scope)
    if child is None:
        return _refused(Code.FORBIDDEN, f"{caller.scope} is not a child node of this node", 403)
    sent: Any
    persons: Any = None
    try:
        msg = json.loads(await read_body(request, MAX_BODY))
        sent = msg.get("version") if isinstance(msg, dict) else None
        persons = msg.get("persons") if isinstance(msg, dict) else None
    except (ValueError, RecursionError, TooLarge):
        sent = None
    if feed_head(sent) is None or (persons is not None and feed_head(persons) is None):
        return _refused(Code.BAD_USER_INPUT, 'send {"version": <the child\'s version, a whole number>, '
                                             '"persons": <its person feed\'s head, a whole number, optional>}', 400)
    # Recorded, and pushed further up; when that push failed this node has waited out the lease it
    # granted its own parent, which now checks it per request: the child's commit is safe to report.
    problem = await rt.links.pushed(child, sent, persons)
    return JSONResponse({"ok": True, **({"warning": problem} if problem else {})})

