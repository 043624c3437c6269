"""Settling the pension central adjustment (``tiers.settlement``): the figures of
``centralAdjustment``, booked in every province's pension pool as one change across nodes."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from strawberry.types import Info
from tierfed.tiers.settlement import Booking, SettleInput, SettleOutcome, settle

from tierfed import codes
from tierfed.errors import Code, TierfedError, bad_input

from . import adjustment
from .common import as_month, year_arg
from .context import ctx


async def settle_central_adjustment(info: Info, year: int, ratio: object, month: object | None,
                                    idempotency_key: str, dry_run: bool) -> SettleOutcome:
    c = ctx(info)
    if c.node.tree.by_code[c.node.region].tier != 0:
        raise bad_input(f"the central adjustment is settled at the central node; this node answers for "
                        f"{c.node.region}", argument="input")
    if not idempotency_key or len(idempotency_key) > 200:
        raise bad_input("idempotencyKey must be 1 to 200 characters", argument="idempotencyKey")
    year_arg(year)
    at = as_month(month, "month") if month is not None else date(year, 12, 1)
    if at < date(year, 12, 1) or at > codes.current_month():
        raise bad_input(f"month {codes.month_str(at)} must be the year's December or a later month, and not after "
                        f"this month ({codes.month_str(codes.current_month())})", argument="month")
    adj = await adjustment.central_adjustment(info, year, ratio)
    if not adj.complete:
        raise TierfedError(Code.TIER_UNAVAILABLE, "the central adjustment cannot be settled: the figures of "
                           f"{', '.join(adj.missing_codes)} could not be read; nothing was settled",
                           regions=adj.missing_codes)
    bookings = tuple(Booking(p.region_code, p.remittance, p.allocation) for p in adj.provinces)
    total = sum((b.remittance for b in bookings), Decimal("0.00"))
    if total > 0 and not any(p.retirees for p in adj.provinces):
        raise bad_input(f"the central adjustment of {year} cannot be settled: its remittances ({total}) are shared "
                        f"by December {year}'s retirees, and no province has any: import December's benefits "
                        "first; nothing was settled", argument="year")
    # allocate() shares the total to the fen; a settlement that did not conserve it would be a bug.
    if total != sum((b.allocation for b in bookings), Decimal("0.00")):
        raise RuntimeError("central adjustment: allocations do not add up to the remittances")
    inp = SettleInput(year, adj.ratio, at, idempotency_key, dry_run, bookings)
    return await settle(c.runtime.changes, inp, c.caller.sub)
