"""Traces (OpenTelemetry), and the middleware that opens each request's record.

Spans are made with the OpenTelemetry SDK, by hand at the few places that matter
rather than by the generic instrumentations: the HTTP request (continuing the
caller's W3C ``traceparent``), parse and validation, the planning pass, the children's
requests, each execution pass, each child request (which carries the trace on), and
each SQL statement (one per loader batch) -- never a span per resolved field. A SQL
span is made after the fact from asyncpg's query record (its start is the end less its
elapsed time), so the driver is not wrapped at all.

Without ``[telemetry].otlp_endpoint`` a node has no tracer: every span site is one
``None`` check, and the caller's ``traceparent`` (or a new trace id) is still passed to
the children so the access logs of all nodes share one trace id.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from . import observe

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

    from .config import NodeConfig

log = logging.getLogger("tierfed.telemetry")
_NO_SPAN = contextlib.nullcontext()


def provider_for(cfg: NodeConfig) -> TracerProvider | None:
    """The node's tracer provider exporting over OTLP/HTTP, or None when no endpoint is configured."""
    t = cfg.telemetry
    if not t.otlp_endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    resource = Resource.create({"service.name": t.service_name or f"tierfed-{cfg.name}",
                                "service.instance.id": f"{cfg.name}-{os.getpid()}", "tierfed.node": cfg.name})
    provider = TracerProvider(resource=resource, sampler=ParentBased(TraceIdRatioBased(t.sample_ratio)))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=t.otlp_endpoint, timeout=5)))
    return provider


def span(name: str, **attributes: Any) -> Any:
    """A span under the current one when this request is traced; otherwise nothing at all."""
    req = observe.current.get()
    if req is None or req.tracer is None:
        return _NO_SPAN
    return _failing_by_type(req.tracer.start_as_current_span(
        name, attributes=attributes or None, record_exception=False, set_status_on_exception=False))


@contextlib.contextmanager
def _failing_by_type(opened: Any) -> Iterator[Any]:
    """A span that fails with the exception's type as its status, never its text: OpenTelemetry's
    default copies the message and a stack trace into the span, and graphql-core words the value
    it refused into its messages (an ID number sent as a number, or as an unquoted literal)."""
    with opened as s:
        try:
            yield s
        except BaseException as e:
            from opentelemetry.trace import Status, StatusCode

            s.set_status(Status(StatusCode.ERROR, type(e).__name__))
            raise


def current_span() -> Any:
    from opentelemetry.trace import get_current_span

    return get_current_span()


def sql_span(req: observe.RequestInfo, query: str, elapsed: float) -> None:
    """One finished SQL statement as a span (called from asyncpg's query logger, in the request's context)."""
    assert req.tracer is not None
    end = time.time_ns()
    verb = query.lstrip().split(None, 1)[0].lower() if query.strip() else "sql"
    s = req.tracer.start_span(f"sql {verb}", start_time=end - int(elapsed * 1e9),
                              attributes={"db.system": "postgresql", "db.statement": query[:300]})
    s.end(end_time=end)


def child_headers(req: observe.RequestInfo | None) -> dict[str, str]:
    """The trace context (and the timing request) a child request carries."""
    if req is None:
        return {}
    out: dict[str, str] = {}
    if req.tracer is not None:
        from opentelemetry.propagate import inject

        inject(out)
    elif req.traceparent:
        out["traceparent"] = req.traceparent
    if req.timing_wanted:
        out[TIMING_HEADER] = "1"
    return out


TIMING_HEADER = "tierfed-timing"


def _traceparent(value: str | None) -> str | None:
    """A W3C traceparent header as given, when well formed (version 00)."""
    if not value:
        return None
    parts = value.strip().split("-")
    ok = len(parts) == 4 and parts[0] == "00" and len(parts[1]) == 32 and len(parts[2]) == 16 and len(parts[3]) == 2
    if not ok or parts[1] == "0" * 32:
        return None
    try:
        int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    return value.strip().lower()


@contextlib.contextmanager
def request_span(req: observe.RequestInfo, tracer: Tracer | None, headers: dict[str, str], method: str,
                 path: str) -> Iterator[Any]:
    """The server span of one request, continuing the caller's trace; sets ``req.trace_id``."""
    incoming = _traceparent(headers.get("traceparent"))
    if tracer is None:
        if incoming:
            req.trace_id = incoming.split("-")[1]
            req.traceparent = incoming
        else:
            req.trace_id = os.urandom(16).hex()
            req.traceparent = f"00-{req.trace_id}-{os.urandom(8).hex()}-01"
        yield None
        return
    from opentelemetry.propagate import extract
    from opentelemetry.trace import SpanKind

    ctx = extract({"traceparent": incoming} if incoming else {})
    with _failing_by_type(tracer.start_as_current_span(
            f"{method} {path}", context=ctx, kind=SpanKind.SERVER, record_exception=False,
            set_status_on_exception=False,
            attributes={"tierfed.node": req.node, "http.request.method": method, "url.path": path})) as s:
        req.trace_id = format(s.get_span_context().trace_id, "032x")
        yield s
