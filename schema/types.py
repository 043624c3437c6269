"""The contract's types. Roots are the store's records; fields delegate to ``resolvers``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info
from tierfed.resolvers import adjustment as adj
from tierfed.resolvers import employers as emp
from tierfed.resolvers import funds as fun
from tierfed.resolvers import permissions as perm
from tierfed.resolvers import persons as per
from tierfed.resolvers import pools as pol
from tierfed.resolvers import regions as reg
from tierfed.resolvers import rollups as rol
from tierfed.resolvers import transfers as trn
from tierfed.resolvers.context import ctx
from tierfed.tiers.store import AgencyRec, PoolRec
from tierfed.tiers.tree import TIER_NAMES, RegionRec
from tierfed.tiers.vocabulary import AGENCY_KINDS, DEPARTMENTS, SCHEMES, AgencyKind, Department, Scheme, Tier

from .scalars import Decimal, Month

if TYPE_CHECKING:
    from .funds import FundAccount
    from .transfers import InsuranceTransfer


# The vocabulary's enums (tiers/vocabulary.py), served as they are.
strawberry.enum(Tier)
strawberry.enum(Scheme, description="Social insurance schemes.")
strawberry.enum(Department, description=(
    "The administrative department an agency belongs to. Pension, work-injury and\n"
    "unemployment agencies sit under human resources and social security; medical\n"
    "and maternity agencies under healthcare security."))
strawberry.enum(AgencyKind)


@strawberry.input(description="Inclusive range of months.")
class PeriodInput:
    from_: Month = strawberry.field(name="from")
    to: Month


@strawberry.type
class Period:
    from_: Month = strawberry.field(name="from")
    to: Month


@strawberry.federation.type(keys=["code"], description=(
    "An administrative division. The tree is ragged: a county's parent is a city or,\n"
    "for municipalities and province-administered units, a province; a few cities\n"
    "have no counties."))
class Region:
    code: strawberry.ID = strawberry.field(description='6-digit division code (GB/T 2260); the nation is "000000".')
    name: str

    @strawberry.field
    def tier(self) -> Tier:
        return TIER_NAMES[self.tier]  # type: ignore[return-value,index]

    @strawberry.field
    async def parent(self, info: Info) -> Region | None:
        return await reg.parent(self, info)  # type: ignore[arg-type,return-value]

    @strawberry.field(description="In code order.")
    async def children(self, info: Info) -> list[Region]:
        return await reg.children(self, info)  # type: ignore[arg-type,return-value]

    @strawberry.field(description="From the nation down, excluding this region.")
    async def ancestors(self, info: Info) -> list[Region]:
        return await reg.ancestors(self, info)  # type: ignore[arg-type,return-value]

    @strawberry.field
    async def agencies(self, info: Info, department: Department | None = None) -> list[Agency]:
        return await reg.region_agencies(self, info, department.value if department else None)  # type: ignore

    @strawberry.field(description=(
        "The pool that covers this region for the scheme in the given month (default: the current month); "
        "null when none does."))
    async def pool(self, info: Info, scheme: Scheme, as_of: Month | None = None) -> Pool | None:
        return await pol.region_pool(self, info, scheme.value, as_of)  # type: ignore[arg-type]

    @classmethod
    def is_type_of(cls, obj: object, info: object) -> bool:
        return isinstance(obj, RegionRec)

    @classmethod
    async def resolve_reference(cls, info: Info, code: strawberry.ID) -> Region | None:
        return await reg.region(info, str(code))  # type: ignore[return-value]


@strawberry.federation.type(keys=["code"])
class Agency:
    code: strawberry.ID
    name: str

    @strawberry.field
    def tier(self, info: Info) -> Tier:
        return ctx(info).node.tree.tier_name(self.region_code)  # type: ignore[attr-defined,return-value]

    @strawberry.field
    def department(self) -> Department:
        return DEPARTMENTS[self.department - 1]  # type: ignore[return-value,operator]

    @strawberry.field
    def kind(self) -> AgencyKind:
        return AGENCY_KINDS[self.kind - 1]  # type: ignore[return-value,operator]

    @strawberry.field
    async def region(self, info: Info) -> Region:
        return await reg.agency_region(self, info)  # type: ignore[arg-type,return-value]

    @strawberry.field
    async def parent(self, info: Info) -> Agency | None:
        return await reg.agency_parent(self, info)  # type: ignore[arg-type,return-value]

    @strawberry.field
    async def children(self, info: Info) -> list[Agency]:
        return await reg.agency_children(self, info)  # type: ignore[arg-type,return-value]

    @strawberry.field(description=(
        "True when the agency is managed directly by the agency one tier up (vertical management)."))
    def vertically_managed(self) -> bool:
        return self.vertically_managed  # type: ignore[return-value]

    @classmethod
    def is_type_of(cls, obj: object, info: object) -> bool:
        return isinstance(obj, AgencyRec)

    @classmethod
    async def resolve_reference(cls, info: Info, code: strawberry.ID) -> Agency | None:
        return await reg.agency(info, str(code))  # type: ignore[no-any-return]


@strawberry.federation.type(keys=["id"], description="A fund pooled at one tier for one scheme over one region's subtree.")
class Pool:
    id: strawberry.ID

    @strawberry.field
    def scheme(self) -> Scheme:
        return SCHEMES[self.scheme - 1]  # type: ignore[return-value,operator]

    @strawberry.field(description="The pooling level: the tier of the region the fund is pooled over.")
    def level(self, info: Info) -> Tier:
        return pol.level(self, info)  # type: ignore[arg-type,return-value]

    @strawberry.field
    async def region(self, info: Info) -> Region:
        return await pol.pool_region(self, info)  # type: ignore[arg-type,return-value]

    @strawberry.field
    def opened_from(self) -> Month:
        return self.opened_from  # type: ignore[return-value]

    @strawberry.field(description="Last month the pool covers; null while it is open.")
    def closed_after(self) -> Month | None:
        return self.closed_after  # type: ignore[return-value]

    @strawberry.field(description=(
        "For a pool opened by raisePoolingLevel: the sum of its predecessors' balances at the month before it opened."))
    async def opening_balance(self, info: Info) -> Decimal:
        return await pol.opening_balance(self, info)  # type: ignore[arg-type]

    @strawberry.field(description=(
        "openingBalance plus, over the months from openedFrom to asOf (capped at closedAfter)\n"
        "and the records of the regions it covers, pooled contributions minus benefits paid.\n"
        "Records that arrive late for a month a predecessor covered change that predecessor's\n"
        "balance and, through openingBalance, this one's: no yuan is lost or counted twice."))
    async def balance(self, info: Info, as_of: Month | None = None) -> Decimal:
        return await pol.balance(self, info, as_of)  # type: ignore[arg-type]

    @strawberry.field
    async def predecessors(self, info: Info) -> list[Pool]:
        return await pol.predecessors(self, info)  # type: ignore[arg-type,return-value]

    @strawberry.field(description=(
        "Pooled funds moved into this pool by insurance transfers effective from openedFrom to asOf; part of balance."))
    async def transfers_in(self, info: Info, as_of: Month | None = None) -> Decimal:
        return await trn.pool_transfers(self, info, as_of, "in")  # type: ignore[arg-type]

    @strawberry.field(description=(
        "Pooled funds moved out of this pool by insurance transfers effective from openedFrom to asOf; part of balance."))
    async def transfers_out(self, info: Info, as_of: Month | None = None) -> Decimal:
        return await trn.pool_transfers(self, info, as_of, "out")  # type: ignore[arg-type]

    @strawberry.field(description="The fund's accounts over a period inside the months the pool covers.")
    async def account(self, info: Info, period: PeriodInput
                      ) -> Annotated[FundAccount, strawberry.lazy("tierfed.schema.funds")]:
        return await fun.account(self, info, period.from_, period.to)  # type: ignore[arg-type,return-value]

    @classmethod
    def is_type_of(cls, obj: object, info: object) -> bool:
        return isinstance(obj, PoolRec)

    @classmethod
    async def resolve_reference(cls, info: Info, id: strawberry.ID) -> Pool | None:
        # A gateway's _entities: the rule of Query.pool, as the field applies it.
        await perm.before(perm.FIELDS["Query.pool"], None, info._raw_info, {"id": str(id)})
        return await pol.pool(info, str(id))  # type: ignore[return-value]


@strawberry.type(description="Totals of one scheme over a region's subtree and a period.")
class SchemeTotals:
    scheme: Scheme
    insured: int = strawberry.field(description="Distinct persons with a contribution record in the period's last month.")
    contributor_months: int = strawberry.field(
        description="Number of contribution records in the period (one per person, scheme and month).")
    contribution_employer: Decimal
    contribution_individual: Decimal
    contribution_total: Decimal = strawberry.field(description="contributionEmployer + contributionIndividual.")
    individual_account: Decimal = strawberry.field(description="The part of the contributions credited to individual accounts.")
    pooled: Decimal = strawberry.field(description="contributionTotal - individualAccount: what goes to the pooled fund.")
    benefits_paid: Decimal
    beneficiaries: int = strawberry.field(description="Distinct persons with a benefit payment in the period's last month.")


@strawberry.type
class MonthTotals:
    month: Month
    totals: list[SchemeTotals]


@strawberry.type(description=(
    "Totals over a region's subtree: the records of the region itself and of every\n"
    "descendant, wherever in the federation they are held."))
class Rollup:
    @strawberry.field
    async def region(self, info: Info) -> Region:
        return await rol.rollup_region(self, info)  # type: ignore[arg-type,return-value]

    @strawberry.field
    def period(self) -> Period:
        return Period(from_=self.first, to=self.last)  # type: ignore[attr-defined]

    @strawberry.field(description=(
        "False when part of the subtree could not be reached: the totals then cover the rest, "
        "and missing names what was left out."))
    async def complete(self, info: Info) -> bool:
        return await rol.complete(self, info)  # type: ignore[arg-type]

    @strawberry.field
    async def missing(self, info: Info) -> list[Region]:
        return await rol.missing(self, info)  # type: ignore[arg-type,return-value]

    @strawberry.field(description=(
        "One entry per requested scheme (all schemes when none are named), in Scheme order, zeros included."))
    async def totals(self, info: Info) -> list[SchemeTotals]:
        return await rol.rollup_totals(self, info)  # type: ignore[arg-type,return-value]

    @strawberry.field(description="One rollup per child region, in code order.")
    def by_child(self, info: Info) -> list[Rollup]:
        return rol.by_child(self, info)  # type: ignore[arg-type,return-value]

    @strawberry.field(description="One entry per month of the period, in order.")
    async def by_month(self, info: Info) -> list[MonthTotals]:
        return await rol.by_month(self, info)  # type: ignore[arg-type,return-value]


@strawberry.type
class PersonSchemeYear:
    @strawberry.field
    def scheme(self) -> Scheme:
        return per.scheme_name(self)  # type: ignore[arg-type,return-value]

    months: int = strawberry.field(description="Months with a contribution record.")

    @strawberry.field
    def contribution_employer(self) -> Decimal:
        return self.employer  # type: ignore[attr-defined,no-any-return]

    @strawberry.field
    def contribution_individual(self) -> Decimal:
        return self.individual  # type: ignore[attr-defined,no-any-return]

    individual_account: Decimal
    benefits_paid: Decimal


@strawberry.type(description="The personal rights record (contributions and benefits) of one person for one year.")
class PersonalStatement:
    year: int
    schemes: list[PersonSchemeYear]

    @strawberry.field(description=(
        "False when a node that holds some of this person's records did not answer: the year lacks its months "
        "(see missing and the TIER_UNAVAILABLE error)."))
    def complete(self) -> bool:
        return not self.missing  # type: ignore[attr-defined]

    @strawberry.field(name="missing", description=(
        "Regions of the child nodes that hold some of this person's records and did not answer."))
    async def missing_regions(self, info: Info) -> list[Region]:
        return await per.missing_regions(info, self.missing)  # type: ignore[attr-defined,return-value]


@strawberry.type
class Person:
    @strawberry.field(description=(
        'The 18-character resident ID number; masked (first 6 and last 4 shown, the rest "*") '
        "unless the caller holds PII_READER."))
    def id_number(self, info: Info) -> str:
        return per.id_number(self, info)  # type: ignore[arg-type]

    name: str

    @strawberry.field(description=(
        "Where the person is registered now: of their registrations inside your scope, anywhere in the "
        "federation, the one whose node holds their latest record."))
    async def region(self, info: Info) -> Region:
        return await per.person_region(self, info)  # type: ignore[arg-type,return-value]

    @strawberry.field(description=(
        "The whole year, wherever in the federation its months are held: every node whose part of the "
        "person lies inside your scope, merged month by month."))
    async def statement(self, info: Info, year: int) -> PersonalStatement:
        return await per.statement(self, info, year)  # type: ignore[arg-type,return-value]

    @strawberry.field(description=(
        "False when a node that holds part of this person did not answer: region and statements may lack "
        "its part (see missing and the TIER_UNAVAILABLE error)."))
    def complete(self) -> bool:
        return not self.missing  # type: ignore[attr-defined]

    @strawberry.field(name="missing", description=(
        "Regions of the child nodes that hold part of this person and did not answer."))
    async def missing_regions(self, info: Info) -> list[Region]:
        return await per.missing_regions(info, self.missing)  # type: ignore[attr-defined,return-value]

    @strawberry.field(description="Insurance transfers of this person, oldest first.")
    async def transfers(self, info: Info) -> list[Annotated[InsuranceTransfer, strawberry.lazy("tierfed.schema.transfers")]]:
        return await trn.person_transfers(self, info)  # type: ignore[arg-type,return-value]


@strawberry.type(description="One scheme's contributions paid through one employer over a period.")
class EmployerSchemeTotals:
    scheme: Scheme
    employees: int = strawberry.field(
        description="Distinct persons with a record through this employer in the period's last month.")
    contributor_months: int = strawberry.field(description="Contribution records through this employer in the period.")
    contribution_employer: Decimal
    contribution_individual: Decimal
    average_base: Decimal


@strawberry.type(description="A registered employer (unified social credit code), readable inside the token's scope.")
class Employer:
    credit_code: str
    name: str
    industry_risk_class: int = strawberry.field(description="Work-injury industry risk class, 1 (lowest) to 8.")

    @strawberry.field
    async def region(self, info: Info) -> Region:
        return await emp.employer_region(self, info)  # type: ignore[arg-type,return-value]

    @strawberry.field(description=(
        "The employer's own contribution records summed per scheme, in Scheme order: on every node where it is "
        "registered inside your scope, added up."))
    async def contributions(self, info: Info, period: PeriodInput) -> list[EmployerSchemeTotals]:
        return await emp.contributions(self, info, period.from_, period.to)  # type: ignore[arg-type,return-value]

    @strawberry.field(description=(
        "False when a child node did not answer: the employer's records there are missing from contributions "
        "(see missing and the TIER_UNAVAILABLE error)."))
    def complete(self) -> bool:
        return not self.missing  # type: ignore[attr-defined]

    @strawberry.field(name="missing", description="Regions of the child nodes that did not answer.")
    async def missing_regions(self, info: Info) -> list[Region]:
        return await per.missing_regions(info, self.missing)  # type: ignore[attr-defined,return-value]


@strawberry.type(description="One province's part in the pension central adjustment for a year.")
class ProvinceAdjustment:
    @strawberry.field
    async def region(self, info: Info) -> Region:
        return await ctx(info).loaders.region.load(self.region_code)  # type: ignore[attr-defined,no-any-return]

    insured_workers: int = strawberry.field(description="PENSION insured in the year's December.")
    average_base: Decimal = strawberry.field(description="Mean contribution base of the year's PENSION contribution records.")
    retirees: int = strawberry.field(description="PENSION beneficiaries in the year's December.")
    remittance: Decimal = strawberry.field(description="0.9 x 12 x averageBase x insuredWorkers x ratio, rounded to the fen.")
    allocation: Decimal = strawberry.field(description=(
        "Total remittance shared in proportion to retirees; the allocations add up to the total remittance exactly."))
    net: Decimal = strawberry.field(description="allocation - remittance.")


@strawberry.type
class CentralAdjustment:
    year: int
    ratio: Decimal
    provinces: list[ProvinceAdjustment] = strawberry.field(description="In code order.")
    complete: bool

    @strawberry.field
    async def missing(self, info: Info) -> list[Region]:
        return [r for r in await ctx(info).loaders.region.load_many(self.missing_codes) if r]  # type: ignore


@strawberry.input(description="Internal, node to node: one region and period whose summary a parent node needs.")
class TierSummaryKey:
    region: strawberry.ID
    from_: Month = strawberry.field(name="from")
    to: Month
    compact: bool | None = strawberry.field(default=False, description=(
        "The period added up: per scheme a row for the last month and one for the months before it."))


__all__ = ["JSON", "adj"]


@strawberry.type(description="A person with records of one scheme and month in more than one region (insured, or paid, twice).")
class DuplicateInsurance:
    @strawberry.field(description="The person, as registered where the first listed record was handled.")
    def person(self) -> Person:
        return self.person  # type: ignore[attr-defined,no-any-return]

    scheme: Scheme
    month: Month

    @strawberry.field(description="In code order; two or more.")
    async def regions(self, info: Info) -> list[Region]:
        return await per.missing_regions(info, self.region_codes)  # type: ignore[attr-defined,return-value]
