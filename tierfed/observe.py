"""What one request did, gathered as it runs: read by the access log, the metrics and
the timing an answer may carry.

One ``RequestInfo`` per HTTP request lives in a context variable, set by
``tierfed.telemetry.ObserveMiddleware``; the SQL query logger, the child clients and
the error formatter add to it from wherever they run in that request's tasks (asyncio
copies the context into the tasks it starts, and the object is shared, not copied).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

access_log = logging.getLogger("tierfed.access")

# 18-character resident ID numbers (17 digits and a check character), anywhere in a string.
ID_NUMBER = re.compile(r"\d{17}[\dXx]")
# A JWT (three base64url parts), however it got into a string.
JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*")


def redact(text: str, limit: int = 120) -> str:
    """A caller-supplied string made safe for a log line: no ID number, no token, bounded length."""
    return JWT.sub("[token]", ID_NUMBER.sub("[id-number]", text))[:limit]


@dataclass
class ChildCall:
    child: str
    outcome: str
    seconds: float
    timing: dict[str, Any] | None = None


@dataclass
class RequestInfo:
    node: str
    started: float = field(default_factory=time.perf_counter)
    wall: float = field(default_factory=time.time)
    trace_id: str | None = None
    operation: str | None = None  # as the caller named it (redacted)
    metric_operation: str = "unregistered"  # bounded: a registered name or "unregistered"
    subject: str | None = None
    outcome: str = "ok"
    timing_wanted: bool = False
    sql_statements: int = 0
    passes: int = 0  # executions of the operation: 2 when children were asked (plan, then answer)
    sql_seconds: float = 0.0
    children: list[ChildCall] = field(default_factory=list)
    error_refs: list[str] = field(default_factory=list)
    cache: list[tuple[str, str]] = field(default_factory=list)  # (cache, "hit" | "miss")
    tracer: Tracer | None = None
    traceparent: str | None = None  # passed on to children when this node makes no spans

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def timing(self) -> dict[str, Any]:
        """Where the time went on this node and, merged in, on each child it asked."""
        return {
            "node": self.node,
            "ms": round(self.elapsed() * 1000, 2),
            "sqlStatements": self.sql_statements,
            "passes": self.passes,
            "sqlMs": round(self.sql_seconds * 1000, 2),
            "children": [
                {"child": c.child, "outcome": c.outcome, "ms": round(c.seconds * 1000, 2),
                 **({"timing": c.timing} if c.timing else {})}
                for c in self.children
            ],
        }

    def log_line(self, status: int) -> str:
        return json.dumps({
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.wall)) + f".{int(self.wall % 1 * 1000):03d}Z",
            "trace_id": self.trace_id,
            "node": self.node,
            "operation": self.operation,
            "subject": self.subject,
            "outcome": self.outcome,
            "status": status,
            "duration_ms": round(self.elapsed() * 1000, 2),
            "sql_statements": self.sql_statements,
            "children": [{"child": c.child, "outcome": c.outcome, "ms": round(c.seconds * 1000, 2)}
                         for c in self.children],
            "error_refs": self.error_refs,
        }, ensure_ascii=False)


current: contextvars.ContextVar[RequestInfo | None] = contextvars.ContextVar("tierfed_request", default=None)


def info() -> RequestInfo | None:
    return current.get()


def outcome_of(body: dict[str, Any]) -> str:
    """A bounded outcome: ``ok``, or the contract code of the first error (``partial`` when data came too)."""
    errors = body.get("errors")
    if not errors:
        return "ok"
    code = (errors[0].get("extensions") or {}).get("code", "INTERNAL_SERVER_ERROR")
    from .errors import Code

    code = code if code in Code.__members__ else "INTERNAL_SERVER_ERROR"
    return f"partial:{code}" if body.get("data") else code
