"""Settling the pension central adjustment across the federation: the mutation and its result."""

from __future__ import annotations

from decimal import Decimal as PyDecimal

import strawberry
from strawberry.types import Info
from tierfed.resolvers import settlement as stl
from tierfed.resolvers.context import ctx
from tierfed.tiers.settlement import Booking
from tierfed.tiers.tree import RegionRec

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
    @strawberry.field(graphql_type=Region)
    @staticmethod
    async def region(root: strawberry.Parent[Booking], info: Info) -> RegionRec | None:
        return await ctx(info).loaders.region.load(root.region)

    @strawberry.field
    @staticmethod
    def pool(root: strawberry.Parent[Booking]) -> strawberry.ID:
        return strawberry.ID(root.pool or "")

    remittance: Decimal
    allocation: Decimal


@strawberry.type
class SettleCentralAdjustmentResult:
    change_id: strawberry.ID | None
    state: ChangeState | None
    month: Month
    bookings: list[Booking] = strawberry.field(graphql_type=list[AdjustmentBooking])
    replayed: bool
    dry_run: bool

    @strawberry.field
    def total(self) -> Decimal:
        return sum((b.remittance for b in self.bookings), PyDecimal("0.00"))


@strawberry.type
class SettlementMutations:
    @strawberry.mutation
    async def settle_central_adjustment(self, info: Info, input: SettleCentralAdjustmentInput
                                        ) -> SettleCentralAdjustmentResult:
        out = await stl.settle_central_adjustment(info, input.year, input.ratio, input.month, input.idempotency_key,
                                                  bool(input.dry_run))
        return SettleCentralAdjustmentResult(
            change_id=strawberry.ID(out.change_id) if out.change_id else None,
            state=ChangeState[out.state] if out.state else None, month=out.month,
            bookings=out.bookings, replayed=out.replayed, dry_run=out.dry_run)
