"""The public fund report of a region for a year or half-year."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info
from tierfed.resolvers import report as rep
from tierfed.resolvers.context import ctx
from tierfed.resolvers.funds import AccountRec
from tierfed.tiers.store import PoolRec
from tierfed.tiers.tree import RegionRec

from .scalars import Decimal
from .types import Period, Pool, Region, Scheme

if TYPE_CHECKING:
    from .funds import FundAccount


@strawberry.type
class FundReportScheme:
    @strawberry.field
    @staticmethod
    def scheme(root: strawberry.Parent[rep.ReportSchemeRec]) -> Scheme:
        return Scheme(root.scheme)

    label: str
    insured: int
    beneficiaries: int

    @strawberry.field(graphql_type=Pool | None)
    @staticmethod
    def pool(root: strawberry.Parent[rep.ReportSchemeRec]) -> PoolRec | None:
        return root.pool

    own_pool: bool
    note: str

    @strawberry.field(graphql_type=Annotated["FundAccount", strawberry.lazy("tierfed.schema.funds")] | None)
    @staticmethod
    def account(root: strawberry.Parent[rep.ReportSchemeRec]) -> AccountRec | None:
        return root.account

    returns: Decimal | None

    @classmethod
    def is_type_of(cls, obj: object, info: object) -> bool:
        return isinstance(obj, rep.ReportSchemeRec)


@strawberry.type
class FundReport:
    @strawberry.field(graphql_type=Region)
    @staticmethod
    async def region(root: strawberry.Parent[rep.FundReportRec], info: Info) -> RegionRec | None:
        return await ctx(info).loaders.region.load(root.region_code)

    year: int
    half: int | None

    @strawberry.field
    @staticmethod
    def period(root: strawberry.Parent[rep.FundReportRec]) -> Period:
        return Period(from_=root.first, to=root.last)

    title: str
    schemes: list[FundReportScheme]
    complete: bool

    @strawberry.field(graphql_type=list[Region])
    @staticmethod
    async def missing(root: strawberry.Parent[rep.FundReportRec], info: Info) -> list[RegionRec]:
        return [r for r in await ctx(info).loaders.region.load_many(root.missing_codes) if r]

    @classmethod
    def is_type_of(cls, obj: object, info: object) -> bool:
        return isinstance(obj, rep.FundReportRec)


@strawberry.type
class ReportQueries:
    @strawberry.field(graphql_type=FundReport)
    async def fund_report(self, info: Info, region: strawberry.ID, year: int,
                          half: int | None = None) -> rep.FundReportRec:
        report: rep.FundReportRec = await rep.fund_report(info, str(region), year, half)
        return report
