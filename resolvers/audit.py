"""Reading the audit of unmasked ID number reads: the AUDITOR role only."""

from __future__ import annotations

from strawberry.types import Info
from tierfed.tiers.store import PiiReadRec, pii_audit_log

from tierfed import codes
from tierfed.errors import bad_input

from .context import ctx


async def pii_reads(info: Info, id_number: str | None, limit: int) -> list[PiiReadRec]:
    c = ctx(info)
    if id_number is not None:
        try:
            id_number = codes.id_number(id_number)
        except ValueError as e:
            raise bad_input(str(e), argument="idNumber") from None
    if not 1 <= limit <= 1000:
        raise bad_input("limit must be 1 to 1000", argument="limit")
    return await pii_audit_log(c.store.pool, id_number, limit)
