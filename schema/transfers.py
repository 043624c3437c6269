"""Insurance transfers: the mutation, its result and what one transfer moves."""

from __future__ import annotations

import strawberry
from strawberry.types import Info
from tierfed.resolvers import transfers as rt

from .changes import ChangeState
from .scalars import Decimal, Month
from .types import Person, Pool, Region, Scheme


@strawberry.type(description="What one scheme's transfer moves.")
class TransferredScheme:
    @strawberry.field
    def scheme(self) -> Scheme:
        return rt.scheme_name(self)  # type: ignore[arg-type,return-value]

    individual_account: Decimal = strawberry.field(description=(
        "The person's individual-account credits at the origin before effectiveFrom (PENSION, MEDICAL; zero otherwise)."))
    pooled_fund: Decimal = strawberry.field(description=(
        "PENSION: 12% of the sum of the person's monthly contribution bases at the origin, moved from fromPool "
        "to toPool; zero otherwise."))

    @strawberry.field
    async def from_pool(self, info: Info) -> Pool | None:
        return await rt.pool_at(info, self.from_region, self.scheme, self.month)  # type: ignore[attr-defined,no-any-return]

    @strawberry.field
    async def to_pool(self, info: Info) -> Pool | None:
        return await rt.pool_at(info, self.to_region, self.scheme, self.month)  # type: ignore[attr-defined,no-any-return]


@strawberry.type(description="A person's insurance moved from one region to another, from a month on.")
class InsuranceTransfer:
    id: strawberry.ID
    state: ChangeState

    @strawberry.field
    def person(self) -> Person:
        return rt.person_of(self)  # type: ignore[arg-type,return-value]

    @strawberry.field(name="from")
    async def from_(self, info: Info) -> Region:
        return await info.context.loaders.region.load(self.from_region)  # type: ignore[attr-defined,no-any-return]

    @strawberry.field
    async def to(self, info: Info) -> Region:
        return await info.context.loaders.region.load(self.to_region)  # type: ignore[attr-defined,no-any-return]

    @strawberry.field
    def effective_from(self) -> Month:
        return self.effective_from  # type: ignore[return-value]

    @strawberry.field(description="One entry per scheme the person had at the origin, in Scheme order.")
    def schemes(self) -> list[TransferredScheme]:
        return rt.schemes_of(self)  # type: ignore[arg-type,return-value]


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
    transfer: InsuranceTransfer
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
        return TransferInsuranceResult(transfer=out.transfer, replayed=out.replayed,  # type: ignore[arg-type]
                                       dry_run=out.dry_run)
