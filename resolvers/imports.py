"""The history of imports on this node: OPERATOR or AUDITOR, imports submitted inside the caller's scope."""

from __future__ import annotations

from strawberry.types import Info

from tierfed.errors import bad_input
from tierfed.imports import KINDS, ImportRunRec, history

from .context import ctx


async def imports(info: Info, kind: str | None, first: int) -> list[ImportRunRec]:
    c = ctx(info)
    if kind is not None and kind not in KINDS:
        raise bad_input(f"unknown import kind {kind!r}: expected one of {', '.join(KINDS)}", argument="kind")
    if not 1 <= first <= 1000:
        raise bad_input("first must be 1 to 1000", argument="first")
    return await history(c.store.pool, c.caller.scope, kind, first)
