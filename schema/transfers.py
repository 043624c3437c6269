"""Insurance transfers: the mutation, its result and what one transfer moves."""

from __future__ import annotations

import strawberry
from strawberry.types import Info
from tierfed.resolvers import transfers as rt
from tierfed.resolvers.context import ctx
from tierfed.resolvers.persons import PersonView
from tierfed.tiers.store import PoolRec
from tierfed.tiers.transferstore import TransferRec
from tierfed.tiers.tree import RegionRec

from .changes import ChangeState
from .scalars import Decimal, Month
from .types import Person, Pool, Region, Scheme


@strawberry.type(description="What one scheme's transfer moves.")
class TransferredScheme:
    @strawberry.field
    @staticmethod
    def scheme(root: strawberry.Parent[rt.SchemeMoved]) -> Scheme:
        return Scheme(rt.scheme_name(root))

    individual_account: Decimal = strawberry.field(description=(
        "The person's individual-account credits at the origin before effectiveFrom (PENSION, MEDICAL; zero otherwise)."))
    pooled_fund: Decimal = strawberry.field(description=(
        "PENSION: 12% of the sum of the person's monthly contribution bases at the origin, moved from fromPool "
        "to toPool; zero otherwise."))

    @strawberry.field(graphql_type=Pool | None)
    @staticmethod
    async def from_pool(root: strawberry.Parent[rt.SchemeMoved], info: Info) -> PoolRec | None:
        return await rt.pool_at(info, root.from_region, root.scheme, root.month)

    @strawberry.field(graphql_type=Pool | None)
    @staticmethod
    async def to_pool(root: strawberry.Parent[rt.SchemeMoved], info: Info) -> PoolRec | None:
        return await rt.pool_at(info, root.to_region, root.scheme, root.month)


@strawberry.type(description="A person's insurance moved from one region to another, from a month on.")
class InsuranceTransfer:
    id: strawberry.ID
    state: ChangeState

    @strawberry.field(graphql_type=Person)
    @staticmethod
    def person(root: strawberry.Parent[TransferRec]) -> PersonView:
        return rt.person_of(root)

    @strawberry.field(name="from", graphql_type=Region)
    @staticmethod
    async def from_(root: strawberry.Parent[TransferRec], info: Info) -> RegionRec | None:
        return await ctx(info).loaders.region.load(root.from_region)

    @strawberry.field(graphql_type=Region)
    @staticmethod
    async def to(root: strawberry.Parent[TransferRec], info: Info) -> RegionRec | None:
        return await ctx(info).loaders.region.load(root.to_region)

    @strawberry.field
    @staticmethod
    def effective_from(root: strawberry.Parent[TransferRec]) -> Month:
        return root.effective_from

    @strawberry.field(description="One entry per scheme the person had at the origin, in Scheme order.",
                      graphql_type=list[TransferredScheme])
    @staticmethod
    def schemes(root: strawberry.Parent[TransferRec]) -> list[rt.SchemeMoved]:
        return rt.schemes_of(root)


@strawberry.input
class TransferInsuranceInput:
    id_number: str = strawberry.field(description="The person's full ID number.")
    to: strawberry.ID = strawberry.field(description="The county, or city without counties, the insurance moves to.")
    effective_from: Month = strawberry.field(description="First month insured at the destination.")
    idempotency_key: str = strawberry.field(description=(
        "As for raisePoolingLevel: same key and input, same result; same key, other input: CONFLICT."))
    dry_run: bool | None = False


@strawberry.type
class TransferInsuranceResult:
    transfer: TransferRec = strawberry.field(graphql_type=InsuranceTransfer)
    replayed: bool
    dry_run: bool


@strawberry.type
class TransferMutations:
    @strawberry.mutation(description=(
        "Move a person's insurance (every scheme they have) to another region from a\n"
        "month on, wherever in the federation the two regions are held. All or nothing.\n"
        "Needs OPERATOR over the destination."))
    async def transfer_insurance(self, info: Info, input: TransferInsuranceInput) -> TransferInsuranceResult:
        out = await rt.transfer_insurance(info, input.id_number, str(input.to), input.effective_from,
                                          input.idempotency_key, bool(input.dry_run))
        return TransferInsuranceResult(transfer=out.transfer, replayed=out.replayed,
                                       dry_run=out.dry_run)
