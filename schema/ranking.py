"""Rankings: the regions of one tier inside a subtree ordered by a figure of one scheme."""

from __future__ import annotations

from enum import Enum

import strawberry
from strawberry.types import Info
from tierfed.resolvers import ranking as rnk

from .types import PeriodInput, Region, Scheme, SchemeTotals, Tier, missing_of, region_of


@strawberry.enum
class RankBy(Enum):
    INSURED = "INSURED"
    CONTRIBUTION_TOTAL = "CONTRIBUTION_TOTAL"
    POOLED = "POOLED"
    BENEFITS_PAID = "BENEFITS_PAID"
    BENEFICIARIES = "BENEFICIARIES"
    DEPENDENCY_RATIO = strawberry.enum_value("DEPENDENCY_RATIO", description=(
        "insured / beneficiaries in the period's last month (contributors per beneficiary); regions without "
        "beneficiaries rank last."))
    INCOME_EXPENDITURE_RATIO = strawberry.enum_value("INCOME_EXPENDITURE_RATIO", description=(
        "pooled / benefitsPaid over the period; regions without benefits rank last."))


@strawberry.type
class RankEntry:
    rank: int = strawberry.field(description="1-based position in the whole ranking.")

    region = strawberry.field(resolver=region_of, graphql_type=Region)

    value: str | None = strawberry.field(description=(
        "The figure ranked by, as a decimal string (two decimals for amounts and ratios, none for counts); "
        "null when undefined."))
    totals: SchemeTotals
    cursor: str


@strawberry.type
class Ranking:
    count: int = strawberry.field(description="Number of regions ranked.")
    entries: list[RankEntry]
    complete: bool

    missing = strawberry.field(resolver=missing_of, graphql_type=list[Region])


@strawberry.type
class RankingQueries:
    @strawberry.field(description=(
        "The regions of one tier inside a region's subtree, ordered by a figure of one\n"
        "scheme over a period, wherever in the federation they are held; exact, with\n"
        "ties broken by code. Paged: pass the last cursor as after."), graphql_type=Ranking)
    async def ranking(self, info: Info, region: strawberry.ID, tier: Tier, period: PeriodInput, scheme: Scheme,
                      by: RankBy, descending: bool | None = True, first: int | None = 20,
                      after: str | None = None) -> rnk.RankingRec:
        return await rnk.ranking(info, str(region), tier.value, period.from_, period.to,
                                 scheme.value, by.value, descending is not False, 20 if first is None else first,
                                 after)
