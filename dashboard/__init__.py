"""The browser dashboard every node serves at ``/dashboard``.

Vendored: Apache ECharts 5.6.0 (``echarts.min.js`` is ``package/dist/echarts.min.js``
of the npm package ``echarts@5.6.0``; Apache License 2.0, see ``LICENSE-echarts``).

The page is plain JavaScript with no build step: ``index.html`` loads ``style.css``,
``echarts.min.js`` and ``app.js`` from ``/dashboard/static/`` and talks only to the
node's own ``/graphql`` endpoint with the bearer token the user supplied. No inline
script is used, so the page runs under a strict Content-Security-Policy.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

DASHBOARD_DIR = Path(__file__).parent

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; script-src 'self'"
)

# The files served under /dashboard/static/, with their media types. Anything else
# (this module, __pycache__, index.html itself) is a 404.
STATIC_FILES: dict[str, str] = {
    "app.js": "text/javascript; charset=utf-8",
    "budget.js": "text/javascript; charset=utf-8",
    "funds.js": "text/javascript; charset=utf-8",
    "live.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "echarts.min.js": "text/javascript; charset=utf-8",
    "LICENSE-echarts": "text/plain; charset=utf-8",
}

_COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def _index(request: Request) -> Response:
    return FileResponse(
        DASHBOARD_DIR / "index.html",
        media_type="text/html; charset=utf-8",
        headers={
            **_COMMON_HEADERS,
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
        },
    )


async def _static(request: Request) -> Response:
    name = request.path_params["path"]
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        return PlainTextResponse("Not Found", status_code=404)
    return FileResponse(
        DASHBOARD_DIR / name,
        media_type=media_type,
        # Revalidate on every load (ETag / Last-Modified), so an upgraded node never
        # serves a stale app.js against a newer schema.
        headers={**_COMMON_HEADERS, "Cache-Control": "no-cache"},
    )


def routes() -> list:
    """Starlette routes of the dashboard: the page and its static files."""
    return [
        Route("/dashboard", _index, methods=["GET", "HEAD"], name="dashboard"),
        Route("/dashboard/", _index, methods=["GET", "HEAD"], name="dashboard_slash"),
        Route(
            "/dashboard/static/{path:path}",
            _static,
            methods=["GET", "HEAD"],
            name="dashboard_static",
        ),
    ]


__all__ = ["CONTENT_SECURITY_POLICY", "DASHBOARD_DIR", "STATIC_FILES", "routes"]
