"""GraphQL over HTTP (POST and GET), following the GraphQL-over-HTTP spec.

Order of checks, cheapest first: body size, request shape, token, persisted
operations, parse, limits, validation and variables; only then any SQL. With
``Accept: application/graphql-response+json`` request errors get 4xx statuses
and an answer whose execution started gets 200; with ``application/json`` both
come back as 200, as that spec says. docs/SECURITY.md has the whole picture.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from typing import Any

from graphql import GraphQLError, OperationType
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import observe
from .answers import cache_key, cacheable, etag, matches
from .auth import Caller, bearer
from .bodies import TooLarge, read_body
from .errors import RETRY_AFTER_S, Code, TierfedError, database_down, forbidden
from .execution import Prepared, RequestError, format_error, masked, prepare, run, unstorable
from .graphiql import page as graphiql_page
from .persisted import operation_text
from .runtime import Runtime
from .selfservice import self_role
from .subscriptions import sse_endpoint, wants_stream
from .tiers.personindex import NODE_OPERATIONS
from .tiers.remote import NODE_HEADER
from .tiers.versions import subtree_version

log = logging.getLogger("tierfed.http")
GQL_RESPONSE = "application/graphql-response+json"


def _error_body(errors: list[GraphQLError]) -> dict[str, Any]:
    return {"errors": [format_error(e) for e in errors]}


# Answers may hold personal data: no cache anywhere may keep them.
NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
# Answers of the answer cache keep no-store too (masked answers still name persons), and
# carry an ETag: a client that kept the answer itself sends it back in If-None-Match.
REVALIDATE = NO_STORE
COMPLETE_FALSE = b'"complete":false'


def _respond(body: dict[str, Any], status: int, media: str, headers: dict[str, str] | None = None) -> Response:
    headers = {**NO_STORE, **(headers or {})}
    req = observe.current.get()
    if req is not None:
        req.outcome = observe.outcome_of(body)
        if req.timing_wanted:
            body.setdefault("extensions", {})["timing"] = req.timing()
    if any((e.get("extensions") or {}).get("code") == Code.DATABASE_UNAVAILABLE for e in body.get("errors", ())):
        headers["Retry-After"] = str(RETRY_AFTER_S)
    return JSONResponse(body, status_code=status, media_type=media, headers=headers)


def _accepts(request: Request) -> str:
    accept = request.headers.get("accept", "")
    if GQL_RESPONSE in accept:
        return GQL_RESPONSE
    return "application/json"


async def _read_params(request: Request, rt: Runtime) -> dict[str, Any]:
    limit = rt.cfg.limits.max_body_bytes
    if request.method != "POST":  # GET, and HEAD (which Starlette routes with GET)
        q = request.query_params
        params: dict[str, Any] = {"query": q.get("query"), "operationName": q.get("operationName")}
        for key in ("variables", "extensions"):
            if q.get(key):
                try:
                    params[key] = json.loads(q[key])
                except (ValueError, RecursionError):
                    raise _BadRequest(f"{key} must be JSON", 400) from None
        if len(str(request.url)) > limit:
            raise _BadRequest(f"request is larger than this node's limit of {limit} bytes", 413)
        why = unstorable(params)
        if why:
            raise _BadRequest(why, 400)
        return params
    try:
        body = await read_body(request, limit)
    except TooLarge:
        raise _BadRequest(f"request body is larger than this node's limit of {limit} bytes", 413) from None
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/graphql":
        return {"query": body.decode("utf-8", "replace")}
    if ctype not in ("application/json", ""):
        raise _BadRequest(f"content type {ctype!r} is not supported: send application/json", 415)
    try:
        params = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise _BadRequest("request body is not valid JSON", 400) from None
    if not isinstance(params, dict):
        raise _BadRequest("request body must be a JSON object with a query", 400)
    why = unstorable(params)
    if why:
        raise _BadRequest(why, 400)
    return params


class _BadRequest(Exception):
    def __init__(self, message: str, status: int) -> None:
        self.message, self.status = message, status


def _via_node(rt: Runtime, caller: Caller, assertion: str | None) -> Caller:
    """The caller, with the scope of the parent node that forwarded its request when the request
    carries that node's own NODE token (tiers.remote.NODE_HEADER); UNAUTHENTICATED when it carries
    one that is not valid."""
    if not assertion:
        return caller
    try:
        node = rt.keys.verify(assertion, rt.tree)
    except TierfedError as e:
        raise TierfedError(Code.UNAUTHENTICATED, f"{NODE_HEADER}: {e.message}") from None
    if not node.has("NODE"):
        raise TierfedError(Code.UNAUTHENTICATED, f"{NODE_HEADER} must carry a node's NODE token")
    if node.to != rt.node.name:
        raise TierfedError(Code.UNAUTHENTICATED, f"{NODE_HEADER} carries a NODE token signed for "
                                                 f"{node.to or 'no node'}, not for this node '{rt.node.name}'")
    return dataclasses.replace(caller, via_node=node.scope)


def _bad(message: str, status: int, media: str, headers: dict[str, str] | None = None) -> Response:
    return _respond({"errors": [{"message": message, "extensions": {"code": Code.BAD_USER_INPUT.value}}]},
                    status, media, headers)


async def graphql_endpoint(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    rt.requests += 1
    media = _accepts(request)
    if request.method == "GET" and not request.query_params.get("query") and \
            "text/html" in request.headers.get("accept", "") and rt.cfg.graphiql:
        req = observe.current.get()
        if req is not None:
            req.outcome = "graphiql_page"
        return graphiql_page()
    try:
        params = await _read_params(request, rt)
    except _BadRequest as e:
        return _bad(e.message, e.status, media)
    if wants_stream(request, rt, params):  # a subscription over Server-Sent Events (tierfed.subscriptions)
        return await sse_endpoint(request, rt, params)
    # A request error (nothing ran, no data): 4xx under the GraphQL-over-HTTP media
    # type; 200 under application/json, which older clients expect.
    request_error = 400 if media == GQL_RESPONSE else 200
    try:
        caller = await rt.keys.verify_async(bearer(request.headers.get("authorization")), rt.tree)
        caller = _via_node(rt, caller, request.headers.get(NODE_HEADER))
    except TierfedError as e:
        return _respond(_error_body([e]), 401, media, {"WWW-Authenticate": "Bearer"})
    req = observe.current.get()
    if req is not None:
        req.subject = observe.redact(caller.sub)
    # A request the node above forwarded (its NODE token beside the caller's): an operation the
    # parent built, which no frontend registered and whose limits the parent already applied. A
    # node's own calls (a NODE token: a child telling its parent its persons moved) run too, as
    # those exact texts and no other.
    forwarded = (caller.via_node is not None and rt.tree.within(rt.node.region, caller.via_node)
                 and caller.via_node != rt.node.region)
    try:
        own = caller.has("NODE") and params.get("query") in NODE_OPERATIONS  # a node's own call, as sent
        query = operation_text(rt.persisted, rt.cfg.persisted_only and not forwarded and not own, params)
    except TierfedError as e:
        return _respond(_error_body([e]), request_error, media)
    variables = params.get("variables") or {}
    op_name = params.get("operationName") or None
    if not isinstance(query, str) or not query.strip():
        return _bad("request has no query: send {\"query\": \"...\"}", 400, media)
    if not isinstance(variables, dict) or (op_name is not None and not isinstance(op_name, str)):
        return _bad("variables must be a JSON object and operationName a string", 400, media)
    try:
        prepared = prepare(rt, query, op_name, variables, forwarded=forwarded)
    except RequestError as e:
        return _respond(_error_body(e.errors), request_error, media)
    if req is not None and prepared.operation.name:
        req.operation = observe.redact(prepared.operation.name.value)
        req.metric_operation = rt.metrics.label(prepared.operation.name.value)
    if prepared.operation.operation == OperationType.SUBSCRIPTION:
        return _bad("subscriptions are served as live answers: send this operation with Accept: text/event-stream "
                    "(GraphQL over Server-Sent Events) or over a graphql-transport-ws WebSocket at /graphql",
                    request_error, media)
    if request.method != "POST" and prepared.operation.operation != OperationType.QUERY:
        return _bad("mutations must be sent with POST", 405, media, {"Allow": "POST"})
    # The answer cache (tierfed.answers): versions first, then an answer kept at them.
    key = version = None
    if rt.answers.enabled and cacheable(prepared.operation, caller) and not (req is not None and req.timing_wanted):
        version = await subtree_version(rt.pool, rt.node, rt.clients, caller.scope, caller.token)
        if version is not None:
            key = cache_key(query, prepared.document, op_name, variables, caller)
            tag = etag(key, version)
            if matches(request.headers.get("if-none-match"), tag):
                if req is not None:
                    req.outcome, req.cache = "ok", [*req.cache, ("answer", "not_modified")]
                return Response(status_code=304, headers={**REVALIDATE, "ETag": tag})
            entry = rt.answers.get(key, version)
            if req is not None:
                req.cache.append(("answer", "hit" if entry else "miss"))
            if entry is not None:
                if req is not None:
                    req.outcome = "ok"
                return Response(entry.body, 200, {**REVALIDATE, "ETag": entry.etag}, media)
    return await _execute(rt, caller, prepared, variables, op_name, media, key, version)


async def _execute(rt: Runtime, caller: Caller, prepared: Prepared, variables: dict[str, Any],
                   op_name: str | None, media: str, key: str | None, version: str | None) -> Response:
    """Run the operation within the node's deadline; its answer (kept in the answer cache under
    ``key`` at ``version`` when given and complete)."""
    req = observe.current.get()
    deadline = rt.cfg.limits.deadline_s
    try:
        result = await asyncio.wait_for(run(rt, caller, prepared, variables, op_name), deadline)
    except TimeoutError:
        err = TierfedError(Code.QUERY_TOO_COMPLEX,
                           f"operation did not finish within this node's deadline of {deadline:g} s: "
                           "ask for fewer regions, months or nested levels", limit="deadline_s")
        return _respond(_error_body([err]), 503 if media == GQL_RESPONSE else 200, media)
    except Exception as e:  # noqa: BLE001 - outside any field (the PII audit, a lost database): masked
        return _respond({"errors": [masked(e)]}, 503 if database_down(e) else 500, media)
    body: dict[str, Any] = {}
    if prepared.operation.operation == OperationType.MUTATION and rt.cfg.parent is not None:
        # A mutation's commit is reported once every ancestor knows this node's new version (tiers.links).
        problem = await rt.links.announce()
        if problem:
            body["extensions"] = {"freshness": problem}
    if result.errors:
        body["errors"] = [format_error(e) for e in result.errors]
    # Execution started, so the answer has data (null when a non-null root field
    # failed): 200 under either media type, as the GraphQL-over-HTTP spec says.
    body["data"] = result.data
    if key is not None and version is not None and not result.errors:
        raw = JSONResponse(body).body
        # An incomplete answer (a child failed after its version was read) is never kept.
        if COMPLETE_FALSE not in raw:
            kept = rt.answers.put(key, version, raw)
            if req is not None:
                req.outcome = "ok"
            return Response(kept.body, 200, {**REVALIDATE, "ETag": kept.etag}, media)
    return _respond(body, 200, media)


async def version_endpoint(request: Request) -> Response:
    """``GET /tierfed/version``: this node's subtree version as the token's scope sees it
    (``tiers.versions``); 503 when a child could not be asked. Parents ask it once per operation."""
    rt: Runtime = request.app.state.runtime
    try:
        caller = await rt.keys.verify_async(bearer(request.headers.get("authorization")), rt.tree)
    except TierfedError as e:
        return _respond(_error_body([e]), 401, "application/json", {"WWW-Authenticate": "Bearer"})
    if self_role(caller.roles) is not None:
        return _respond(_error_body([forbidden("a self token reads only its own records, not data versions")]), 403,
                        "application/json")
    version = await subtree_version(rt.pool, rt.node, rt.clients, caller.scope, caller.token)
    return JSONResponse({"version": version}, 200 if version is not None else 503, headers=NO_STORE)
