"""The ASGI app of one node: /graphql, /healthz, /readyz, /metrics, /graphiql, /dashboard and /imports."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route, WebSocketRoute

from .changes_http import changes_endpoint
from .config import NodeConfig
from .health import healthz, readyz
from .http import graphql_endpoint, version_endpoint
from .instrument import ObserveMiddleware
from .links_http import link_endpoint
from .metrics import metrics_endpoint, refresh_metrics
from .runtime import Runtime, open_runtime
from .subscriptions import ws_endpoint
from .tiers import background


def create_app(cfg: NodeConfig, runtime: Runtime | None = None, database_url: str | None = None) -> Starlette:
    """A node's app; ``runtime`` is opened in the lifespan unless one is given."""
    from tierfed.dashboard import routes as dashboard_routes
    from tierfed.graphiql import routes as graphiql_routes
    from tierfed.imports.http import routes as import_routes
    from tierfed.reports import routes as report_routes

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        rt = runtime or await open_runtime(cfg, database_url)
        app.state.runtime = rt
        await rt.index.start()
        await rt.links.begin()  # the children's leases before the first request
        # On [metrics].listen nobody scrapes through this app: read the database's part of the
        # metrics (changes waiting for a node) every 15 s instead.
        refresh = refresh_metrics(rt, 15.0) if cfg.metrics.enabled and cfg.metrics.listen else None
        # What the node loaded to serve (modules, the schema, the division tree: ~10^5 objects that
        # live as long as it) is left out of the garbage collector's full passes, each of which
        # would otherwise walk all of it again, a pause of tens of milliseconds in some request.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()  # (a process running several nodes, as the tests do, frees a stopped one's)
            jobs = getattr(app.state, "import_jobs", None)
            if jobs is not None:  # imports over HTTP still running: stopped, and their jobs say so
                await jobs.stop()
            await background.stop(refresh)
            if rt.live is not None:
                await rt.live.close()
            await rt.index.stop()
            await rt.links.stop()
            if runtime is None:
                await rt.close()

    middleware = [Middleware(ObserveMiddleware)]
    if cfg.cors_origins:
        middleware.append(Middleware(CORSMiddleware, allow_origins=list(cfg.cors_origins),
                                     allow_methods=["GET", "POST"],
                                     allow_headers=["Authorization", "Content-Type", "If-None-Match"],
                                     expose_headers=["ETag"]))
    routes = [
        Route("/graphql", graphql_endpoint, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", ws_endpoint),
        Route("/tierfed/version", version_endpoint),
        Route("/tierfed/link", link_endpoint, methods=["GET", "POST"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        *([Route("/metrics", metrics_endpoint)] if cfg.metrics.enabled and not cfg.metrics.listen else []),
        Route("/internal/changes", changes_endpoint, methods=["POST"]),
        *dashboard_routes(),
        *report_routes(),
        *graphiql_routes(),
        *import_routes(),
    ]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    if runtime is not None:
        app.state.runtime = runtime
    return app


def from_environment() -> Starlette:
    """The app of the node configured by ``TIERFED_CONFIG``: what each worker of
    ``tierfed serve --workers N`` runs (each opens its own runtime in its lifespan)."""
    from .cli import access_log, log_setup
    from .config import load

    log_setup()
    access_log()
    return create_app(load(None))
