"""ASGI factories the benchmark starts with ``uvicorn --factory`` in their own processes.

- ``node_app``: a tierfed node exactly as ``tierfed serve`` builds it
  (``create_app`` on the TOML named by ``TIERFED_CONFIG``), so that uvicorn's
  ``--workers`` can run several of it;
- ``plain_app``: the baseline of case 2, a plain Starlette endpoint that checks
  the same bearer token, runs the summary SQL and returns the very JSON the
  GraphQL rollup returns, with no GraphQL in between.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from tierfed.tiers.figures import SCHEMES

from tierfed import codes
from tierfed.app import create_app
from tierfed.config import load
from tierfed.db import create_pool

# The rollup of a region and its children over a period, straight from the summaries.
ROLLUP_SQL = """
select s.region_code, s.scheme,
       sum(s.contributions)::bigint as contributor_months,
       sum(s.employer) as employer, sum(s.individual) as individual,
       sum(s.individual_account) as account, sum(s.benefits_paid) as paid,
       coalesce(sum(s.contributions) filter (where s.month = $2), 0)::bigint as insured,
       coalesce(sum(s.benefits) filter (where s.month = $2), 0)::bigint as beneficiaries
from summary s
where s.region_code = any($3::text[]) and s.month between $1 and $2
group by 1, 2
"""


def node_app() -> Starlette:
    if os.environ.get("BENCH_ACCESS_LOG"):  # case 9: the JSON access log on, as `tierfed serve` has it
        from tierfed.cli import access_log

        access_log()
    return create_app(load(os.environ["TIERFED_CONFIG"]))


def scheme_totals(row: Any | None, scheme: str) -> dict[str, Any]:
    """One SchemeTotals object, formatted as the GraphQL answer formats it."""
    z = codes.format_amount
    if row is None:
        zero = z(codes.FEN * 0)
        return {"scheme": scheme, "insured": 0, "contributorMonths": 0, "contributionEmployer": zero,
                "contributionIndividual": zero, "contributionTotal": zero, "individualAccount": zero,
                "pooled": zero, "benefitsPaid": zero, "beneficiaries": 0}
    e, i, a = row["employer"], row["individual"], row["account"]
    return {"scheme": scheme, "insured": row["insured"], "contributorMonths": row["contributor_months"],
            "contributionEmployer": z(e), "contributionIndividual": z(i), "contributionTotal": z(e + i),
            "individualAccount": z(a), "pooled": z(e + i - a), "benefitsPaid": z(row["paid"]),
            "beneficiaries": row["beneficiaries"]}


def plain_app() -> Starlette:
    url = os.environ["BENCH_DB_URL"]
    secret = os.environ["BENCH_JWT_SECRET"]
    state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state["pool"] = await create_pool(url)
        rows = await state["pool"].fetch("select code, name, parent_code from region order by code")
        state["names"] = {r["code"]: r["name"] for r in rows}
        kids: dict[str, list[str]] = {}
        for r in rows:
            if r["parent_code"]:
                kids.setdefault(r["parent_code"], []).append(r["code"])
        state["kids"] = kids
        yield
        await state["pool"].close()

    async def rollup(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        try:
            claims = jwt.decode(auth.removeprefix("Bearer "), secret, algorithms=["HS256"])
        except jwt.PyJWTError:
            return JSONResponse({"errors": [{"message": "bad token"}]}, status_code=401)
        body = await request.json()
        region = body["region"]
        if not (claims["scope"] == "000000" or region.startswith(claims["scope"][:2])):
            return JSONResponse({"errors": [{"message": "outside scope"}]}, status_code=403)
        first, last = codes.month(body["from"]), codes.month(body["to"])
        kids = state["kids"].get(region, [])
        rows = await state["pool"].fetch(ROLLUP_SQL, first, last, [region, *kids])
        by: dict[tuple[str, int], Any] = {(r["region_code"], r["scheme"]): r for r in rows}

        def totals(code: str) -> list[dict[str, Any]]:
            return [scheme_totals(by.get((code, i + 1)), s) for i, s in enumerate(SCHEMES)]

        return JSONResponse({"data": {"rollup": {
            "totals": totals(region),
            "byChild": [{"region": {"code": k, "name": state["names"][k]}, "totals": totals(k)} for k in kids],
        }}})

    return Starlette(routes=[Route("/rollup", rollup, methods=["POST"]),
                             Route("/healthz", lambda r: JSONResponse({"status": "ok"}))], lifespan=lifespan)


def memory_app() -> Starlette:
    """The floor of serving an answer in this stack (case 10): check the bearer token, read
    the request, return bytes held in memory (``BENCH_BODY_FILE``), with no database."""
    secret = os.environ["BENCH_JWT_SECRET"]
    with open(os.environ["BENCH_BODY_FILE"], "rb") as f:
        answer = f.read()

    async def rollup(request: Request) -> Response:
        try:
            jwt.decode(request.headers.get("authorization", "").removeprefix("Bearer "), secret, algorithms=["HS256"])
        except jwt.PyJWTError:
            return JSONResponse({"errors": [{"message": "bad token"}]}, status_code=401)
        await request.body()
        return Response(answer, media_type="application/json")

    return Starlette(routes=[Route("/graphql", rollup, methods=["POST"]),
                             Route("/healthz", lambda r: JSONResponse({"status": "ok"}))])


__all__ = ["node_app", "plain_app", "memory_app", "date"]
