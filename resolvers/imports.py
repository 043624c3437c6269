"""The history of imports on this node: OPERATOR or AUDITOR, imports submitted inside the caller's scope."""

from __future__ import annotations

import json
from dataclasses import dataclass

from strawberry.types import Info

from tierfed.errors import bad_input
from tierfed.imports import KINDS, history

from .context import ctx


@dataclass(frozen=True)
class ImportRunRec:
    id: str
    kind: str
    file_name: str
    sha256: str
    caller: str
    scope: str
    via: str
    started_at: str
    finished_at: str
    seconds: float
    bytes: float
    rows: int
    inserted: int
    unchanged: int
    bad_rows: int
    outcome: str
    message: str | None
    warnings: list[str]
    version: str | None
    same_as: str | None


async def imports(info: Info, kind: str | None, first: int) -> list[ImportRunRec]:
    c = ctx(info)
    if kind is not None and kind not in KINDS:
        raise bad_input(f"unknown import kind {kind!r}: expected one of {', '.join(KINDS)}", argument="kind")
    if not 1 <= first <= 1000:
        raise bad_input("first must be 1 to 1000", argument="first")
    rows = await history(c.store.pool, c.caller.scope, kind, first)
    return [ImportRunRec(
        str(r["id"]), r["kind"], r["file_name"], r["sha256"], r["caller"], r["scope"], r["via"],
        r["started_at"].isoformat(), r["finished_at"].isoformat(),
        round((r["finished_at"] - r["started_at"]).total_seconds(), 3), float(r["bytes"]),
        r["rows"], r["inserted"], r["unchanged"], r["bad_rows"], r["outcome"], r["message"],
        list(json.loads(r["warnings"])), str(r["version"]) if r["version"] is not None else None,
        str(r["same_as"]) if r["same_as"] is not None else None) for r in rows]
