"""Raising pooling levels: the mutation, its result, the overview and the audit trail."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info
from tierfed.resolvers import pooling as rp
from tierfed.tiers import pooling as tp
from tierfed.tiers.store import PoolRec
from tierfed.tiers.tree import RegionRec

from .changes import ChangeState
from .scalars import Decimal, Month
from .types import Pool, Region, Scheme, Tier, regions_of


@strawberry.input
class RaisePoolingLevelInput:
    scheme: Scheme
    region: strawberry.ID = strawberry.field(description=(
        "The region whose whole subtree is pooled from effectiveFrom on; its tier is the new pooling level."))
    effective_from: Month
    idempotency_key: str = strawberry.field(description=(
        "A repeated call with the same key and input returns the first result and changes nothing; "
        "the same key with other input is a CONFLICT."))
    dry_run: bool | None = strawberry.field(
        default=False, description="Compute and return the result without changing anything.")
    vertical_management: bool | None = strawberry.field(default=False, description=(
        "Also mark the agencies of the scheme's department in the subtree as vertically managed, "
        "each under the agency of its parent region."))


@strawberry.type
class RaisePoolingLevelResult:
    pool: PoolRec = strawberry.field(description="The new pool.", graphql_type=Pool)
    closed: list[PoolRec] = strawberry.field(
        description="The pools it replaces, closed after the month before effectiveFrom.", graphql_type=list[Pool])
    transferred: Decimal = strawberry.field(
        description="The sum of the closed pools' balances at the month before effectiveFrom.")
    dry_run: bool = strawberry.field(description="True when nothing was changed.")
    replayed: bool = strawberry.field(
        description="True when this is the stored first result of an earlier call with the same key.")
    state: ChangeState | None = strawberry.field(description=(
        "COMMITTED when applied (for a raise across nodes: when decided); null for a dry run."))


@strawberry.type
class PoolingLevelCount:
    level: Tier
    count: int

    @strawberry.field(graphql_type=list[Region])
    @staticmethod
    async def regions(root: strawberry.Parent[rp.LevelCount], info: Info) -> list[RegionRec]:
        return await regions_of(info, root.region_codes)


@strawberry.type(description="How one scheme is pooled: the number of pools open at each level, and where.")
class SchemePooling:
    scheme: Scheme
    levels: list[PoolingLevelCount]


@strawberry.type(description="One applied raisePoolingLevel: who, when, the input and the result.")
class PoolingChange:
    id: strawberry.ID
    idempotency_key: str
    caller: str
    at: str
    input: JSON
    result: JSON


@strawberry.type
class PoolingQueries:
    @strawberry.field(description=(
        "Per scheme, how many pools are open at each level as of a month (default: the current month) "
        "and over which regions: the progress of raising pooling levels, in one query. "
        "Only pools inside the caller's scope are counted."), graphql_type=list[SchemePooling])
    async def pooling_overview(self, info: Info, as_of: Month | None = None) -> list[rp.SchemeOverview]:
        return await rp.overview(info, as_of)

    @strawberry.field(description=(
        "Applied pooling changes inside a region's subtree (default: the caller's scope), newest first. "
        "Needs OPERATOR or AUDITOR."), graphql_type=list[PoolingChange])
    async def pooling_changes(self, info: Info, region: strawberry.ID | None = None,
                              limit: int = 50) -> list[tp.ChangeRec]:
        return await rp.changes(info, str(region) if region else None, limit)

    @strawberry.field(name="_tierPools", description="Internal, node to node: pools open at a month, as JSON rows.",
                      deprecation_reason="Nodes of 0.2 ask _tierCall(kind: \"pools\"); kept for parents still on 0.1.",
                      graphql_type=list[JSON])
    async def tier_pools(self, info: Info, as_of: Month) -> list[dict[str, Any]]:
        return await rp.pools_at(info, as_of)


@strawberry.type
class PoolingMutations:
    @strawberry.mutation(description=(
        "Raise the pooling level of a scheme: every open pool of the scheme inside the\n"
        "region's subtree is closed and one pool over the whole region opens. All or\n"
        "nothing: a region at a tier not above the pools it would replace, an\n"
        "effectiveFrom at or before a replaced pool's openedFrom, or a region outside\n"
        "the caller's scope changes nothing and returns an error."))
    async def raise_pooling_level(self, info: Info, input: RaisePoolingLevelInput) -> RaisePoolingLevelResult:
        out = await rp.raise_pooling_level(
            info, input.scheme.value, str(input.region), input.effective_from, input.idempotency_key,
            bool(input.dry_run), bool(input.vertical_management))
        return RaisePoolingLevelResult(pool=out.pool, closed=out.closed, transferred=out.transferred,
                                       dry_run=out.dry_run, replayed=out.replayed,
                                       state=ChangeState(out.state) if out.state else None)
