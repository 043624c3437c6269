"""The ASGI middleware around ``/graphql``: one ``RequestInfo`` per request, the server
span, and at the end the request's metrics and its one JSON access-log line."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import observe, telemetry

if TYPE_CHECKING:
    from .runtime import Runtime


class ObserveMiddleware:
    def __init__(self, app: ASGIApp, path: str = "/graphql") -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        rt: Runtime = scope["app"].state.runtime
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        req = observe.RequestInfo(rt.cfg.name, tracer=rt.tracer,
                                  timing_wanted=headers.get(telemetry.TIMING_HEADER, "") not in ("", "0"))
        status = 500
        done = False

        def finish() -> None:
            nonlocal done
            if done:
                return
            done = True
            rt.metrics.request_done(req)
            rt.metrics.pool_state(rt.pool)
            if observe.access_log.isEnabledFor(logging.INFO):
                observe.access_log.info(req.log_line(status))

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Counted and logged before the answer's last byte leaves: a client that
                # reads its answer and then scrapes /metrics finds the request counted.
                finish()
            await send(message)

        token = observe.current.set(req)
        try:
            with telemetry.request_span(req, rt.tracer, headers, scope["method"], self.path) as span:
                await self.app(scope, receive, send_status)
                if span is not None:
                    _close(span, req, status)
        finally:
            observe.current.reset(token)
            finish()


def _close(span: Any, req: observe.RequestInfo, status: int) -> None:
    span.set_attribute("http.response.status_code", status)
    span.set_attribute("graphql.operation.name", req.metric_operation)
    span.set_attribute("tierfed.outcome", req.outcome)
    if req.outcome != "ok" and not req.outcome.startswith("partial"):
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR, req.outcome))

