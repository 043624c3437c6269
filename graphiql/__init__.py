"""GraphiQL, served by every node from files in the package: no CDN, so it works on
networks that reach nothing outside.

Vendored from npm, unmodified (``npm pack``), each under the MIT licence beside it:
``graphiql@3.8.3`` (``graphiql.min.js``, ``graphiql.min.css``: ``LICENSE-graphiql``),
``react@18.2.0`` (``umd/react.production.min.js``: ``LICENSE-react``) and
``react-dom@18.2.0`` (``umd/react-dom.production.min.js``: ``LICENSE-react-dom``), the
versions strawberry's own GraphiQL page loads from a CDN. ``start.js`` is ours: it
renders GraphiQL against the node's ``/graphql``. No inline script, so the page runs
under a strict Content-Security-Policy.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

GRAPHIQL_DIR = Path(__file__).parent

# GraphiQL styles its components inline (emotion) and its CSS embeds its fonts as data: URIs.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; font-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; script-src 'self'; worker-src 'self' blob:"
)

STATIC_FILES: dict[str, str] = {
    "start.js": "text/javascript; charset=utf-8",
    "start.css": "text/css; charset=utf-8",
    "graphiql.min.js": "text/javascript; charset=utf-8",
    "graphiql.min.css": "text/css; charset=utf-8",
    "react.production.min.js": "text/javascript; charset=utf-8",
    "react-dom.production.min.js": "text/javascript; charset=utf-8",
    "LICENSE-graphiql": "text/plain; charset=utf-8",
    "LICENSE-react": "text/plain; charset=utf-8",
    "LICENSE-react-dom": "text/plain; charset=utf-8",
}

HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def page() -> Response:
    """The GraphiQL page (also what ``GET /graphql`` answers a browser)."""
    return FileResponse(GRAPHIQL_DIR / "index.html", media_type="text/html; charset=utf-8",
                        headers={**HEADERS, "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                                 "Cache-Control": "no-store", "X-Frame-Options": "DENY"})


async def _index(request: Request) -> Response:
    if not request.app.state.runtime.cfg.graphiql:
        return PlainTextResponse("GraphiQL is switched off on this node ([http].graphiql = false)", 404)
    return page()


async def _static(request: Request) -> Response:
    name = request.path_params["path"]
    media_type = STATIC_FILES.get(name)
    if media_type is None or not request.app.state.runtime.cfg.graphiql:
        return PlainTextResponse("Not Found", status_code=404)
    return FileResponse(GRAPHIQL_DIR / name, media_type=media_type, headers={**HEADERS, "Cache-Control": "no-cache"})


def routes() -> list[Route]:
    return [
        Route("/graphiql", _index, methods=["GET", "HEAD"]),
        Route("/graphiql/static/{path:path}", _static, methods=["GET", "HEAD"]),
    ]
