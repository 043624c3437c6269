"""Settling the pension central adjustment across the federation: the mutation and its result."""

from __future__ import annotations

from decimal import Decimal as PyDecimal

import strawberry
from strawberry.types import Info
from tierfed.resolvers import settlement as stl
from tierfed.resolvers.context import ctx

from .changes import ChangeState
from .scalars import Decimal, Month
from .types import Region


@strawberry.input
class SettleCentralAdjustmentInput:
    year: int
    ratio: Decimal
    month: Month | None = None
    idempotency_key: str
    dry_run: bool | None = False


@strawberry.type
class AdjustmentBooking:
    @strawberry.field
    async def region(self, info: Info) -> Region:
        return await ctx(info).loaders.region.load(self.region)  # type: ignore[attr-defined,no-any-return]

    @strawberry.field
    def pool(self) -> strawberry.ID:
        return strawberry.ID(self.pool or "")  # type: ignore[attr-defined,arg-type]

    remittance: Decimal
    allocation: Decimal


@strawberry.type
class SettleCentralAdjustmentResult:
    change_id: strawberry.ID | None
    state: ChangeState | None
    month: Month
    bookings: list[AdjustmentBooking]
    replayed: bool
    dry_run: bool

    @strawberry.field
    def total(self) -> Decimal:
        return sum((b.remittance for b in self.bookings), PyDecimal("0.00"))  # type: ignore[attr-defined,no-any-return]


@strawberry.type
class SettlementMutations:
    @strawberry.mutation
    async def settle_central_adjustment(self, info: Info, input: SettleCentralAdjustmentInput
                                        ) -> SettleCentralAdjustmentResult:
        out = await stl.settle_central_adjustment(info, input.year, input.ratio, input.month, input.idempotency_key,
                                                  bool(input.dry_run))
        return SettleCentralAdjustmentResult(  # type: ignore[call-arg]
            change_id=strawberry.ID(out.change_id) if out.change_id else None,
            state=ChangeState[out.state] if out.state else None, month=out.month,  # type: ignore[arg-type]
            bookings=out.bookings, replayed=out.replayed, dry_run=out.dry_run)  # type: ignore[arg-type]
