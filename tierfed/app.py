"""The ASGI app of one node: /graphql, /healthz and /dashboard."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .changes_http import changes_endpoint
from .config import NodeConfig
from .http import graphql_endpoint
from .runtime import Runtime, open_runtime


async def healthz(request: Request) -> JSONResponse:
    rt: Runtime = request.app.state.runtime
    return JSONResponse({"node": rt.cfg.name, "region": rt.cfg.region, "status": "ok"})


def create_app(cfg: NodeConfig, runtime: Runtime | None = None, database_url: str | None = None) -> Starlette:
    """A node's app; ``runtime`` is opened in the lifespan unless one is given."""
    from tierfed.dashboard import routes as dashboard_routes

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        rt = runtime or await open_runtime(cfg, database_url)
        app.state.runtime = rt
        try:
            yield
        finally:
            if runtime is None:
                await rt.close()

    middleware = []
    if cfg.cors_origins:
        middleware.append(Middleware(CORSMiddleware, allow_origins=list(cfg.cors_origins),
                                     allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"]))
    routes = [
        Route("/graphql", graphql_endpoint, methods=["GET", "POST"]),
        Route("/healthz", healthz),
        Route("/internal/changes", changes_endpoint, methods=["POST"]),
        *dashboard_routes(),
    ]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    if runtime is not None:
        app.state.runtime = runtime
    return app
