"""The public fund report of a region for a year or half-year."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info
from tierfed.resolvers import report as rep
from tierfed.resolvers.funds import AccountRec
from tierfed.tiers.store import PoolRec

from .scalars import Decimal
from .types import Pool, Region, Scheme, missing_of, period_of, region_of

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
    region = strawberry.field(resolver=region_of, graphql_type=Region)

    year: int
    half: int | None

    period = strawberry.field(resolver=period_of)

    title: str
    schemes: list[FundReportScheme]
    complete: bool

    missing = strawberry.field(resolver=missing_of, graphql_type=list[Region])

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
