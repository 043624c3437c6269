"""``/healthz`` (the process answers) and ``/readyz`` (it can serve: its database answers
and its migrations are current; the state of each child is reported beside).

A child that is down does not make its parent unready: the parent still answers, with
that child's part marked missing, and taking it out of a load balancer would only
turn a partial answer into none. Children are asked for their own readiness without
their children (``?children=0``), so one probe never fans out over the whole tree.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse

from .db import applied_version, migration_files
from .errors import RETRY_AFTER_S, database_down
from .runtime import Runtime
from .tiers.node import Child

DB_TIMEOUT_S = 2.0
CHILD_TIMEOUT_S = 2.0
NO_STORE = {"Cache-Control": "no-store"}


async def healthz(request: Request) -> JSONResponse:
    rt: Runtime = request.app.state.runtime
    return JSONResponse({"node": rt.cfg.name, "region": rt.cfg.region, "status": "ok"}, headers=NO_STORE)


async def database_state(rt: Runtime) -> dict[str, Any]:
    """``{"state": "ok"}``, or why not: the database does not answer, or migrations are missing."""
    latest = max(v for v, _, _ in migration_files())
    try:
        applied = await asyncio.wait_for(applied_version(rt.pool), DB_TIMEOUT_S)
    except TimeoutError:
        return {"state": "unavailable", "reason": f"no answer within {DB_TIMEOUT_S:g} s"}
    except Exception as e:  # noqa: BLE001 - reported, never raised: this is the probe
        if database_down(e):
            return {"state": "unavailable", "reason": f"cannot connect ({type(e).__name__})"}
        return {"state": "error", "reason": type(e).__name__}
    if applied is None or applied < latest:
        return {"state": "migrations_pending", "reason": f"schema at migration {applied}, this release needs {latest}: "
                "run `tierfed migrate --config FILE`", "migration": applied, "expected": latest}
    return {"state": "ok", "migration": applied}


async def child_state(rt: Runtime, child: Child) -> dict[str, Any]:
    out: dict[str, Any] = {"name": child.name, "region": child.region}
    base = child.url.rsplit("/", 1)[0]
    try:
        r = await rt.clients.clients[child.name].get(base + "/readyz", params={"children": "0"},
                                                     timeout=min(child.timeout_s, CHILD_TIMEOUT_S))
    except httpx.TimeoutException:
        return {**out, "state": "unreachable", "reason": f"no answer within {CHILD_TIMEOUT_S:g} s"}
    except httpx.HTTPError as e:
        return {**out, "state": "unreachable", "reason": type(e).__name__}
    if r.status_code == 200:
        return {**out, "state": "ready"}
    reason = f"HTTP {r.status_code}"
    try:
        body = r.json()
    except ValueError:
        body = None
    # Whatever answers there (a proxy, another program): only a node's own answer is read.
    db = body.get("database") if isinstance(body, dict) else None
    if isinstance(db, dict) and isinstance(db.get("state"), str):
        reason = db["state"]
    return {**out, "state": "not_ready", "reason": str(reason)[:100]}


async def readyz(request: Request) -> JSONResponse:
    rt: Runtime = request.app.state.runtime
    with_children = request.query_params.get("children", "1") not in ("0", "false")
    checks = [database_state(rt)]
    if with_children:
        checks += [child_state(rt, c) for c in rt.node.children]
    db, *children = await asyncio.gather(*checks)
    ready = db["state"] == "ok"
    body: dict[str, Any] = {"node": rt.cfg.name, "region": rt.cfg.region, "status": "ready" if ready else "not_ready",
                            "database": db}
    if with_children:
        body["children"] = children
    headers = dict(NO_STORE) if ready else {**NO_STORE, "Retry-After": str(RETRY_AFTER_S)}
    return JSONResponse(body, status_code=200 if ready else 503, headers=headers)
