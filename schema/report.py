"""The public fund report of a region for a year or half-year."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info
from tierfed.resolvers import report as rep
from tierfed.resolvers.context import ctx

from .scalars import Decimal
from .types import Period, Pool, Region, Scheme

if TYPE_CHECKING:
    from .funds import FundAccount


@strawberry.type
class FundReportScheme:
    @strawberry.field
    def scheme(self) -> Scheme:
        return Scheme[self.scheme]  # type: ignore[misc,index,no-any-return]

    label: str
    insured: int
    beneficiaries: int

    @strawberry.field
    def pool(self) -> Pool | None:
        return self.pool  # type: ignore[return-value]

    own_pool: bool
    note: str

    @strawberry.field
    def account(self) -> Annotated[FundAccount, strawberry.lazy("tierfed.schema.funds")] | None:
        return self.account  # type: ignore[return-value]

    returns: Decimal | None

    @classmethod
    def is_type_of(cls, obj: object, info: object) -> bool:
        return isinstance(obj, rep.ReportSchemeRec)


@strawberry.type
class FundReport:
    @strawberry.field
    async def region(self, info: Info) -> Region:
        return await ctx(info).loaders.region.load(self.region_code)  # type: ignore[attr-defined,no-any-return]

    year: int
    half: int | None

    @strawberry.field
    def period(self) -> Period:
        return Period(from_=self.first, to=self.last)  # type: ignore[attr-defined]

    title: str
    schemes: list[FundReportScheme]
    complete: bool

    @strawberry.field
    async def missing(self, info: Info) -> list[Region]:
        return [r for r in await ctx(info).loaders.region.load_many(self.missing_codes) if r]  # type: ignore

    @classmethod
    def is_type_of(cls, obj: object, info: object) -> bool:
        return isinstance(obj, rep.FundReportRec)


@strawberry.type
class ReportQueries:
    @strawberry.field
    async def fund_report(self, info: Info, region: strawberry.ID, year: int, half: int | None = None) -> FundReport:
        return await rep.fund_report(info, str(region), year, half)  # type: ignore[no-any-return]
