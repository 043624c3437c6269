"""The contract's types. Roots are the store's records; fields delegate to ``resolvers``.

A field that reads the record it is served from takes it as ``strawberry.Parent[TheRecord]``
(a staticmethod, or a shared resolver typed by a Protocol such as ``InRegion``), and is
annotated with what it really returns: a record, the GraphQL type given by ``graphql_type=``.
So the type checker sees the records as they are, and the schema is what it declares."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Annotated, Protocol

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
from tierfed.resolvers.duplicates import DuplicateRec
from tierfed.resolvers.employers import EmployerTotalsRec, EmployerView
from tierfed.resolvers.funds import AccountRec
from tierfed.resolvers.persons import PersonView, StatementRec
from tierfed.resolvers.rollups import MonthTotalsRec, PeriodRec, RollupRec
from tierfed.tiers.figures import SchemeTotal
from tierfed.tiers.store import AgencyRec, PoolRec, StatementRow
from tierfed.tiers.transferstore import TransferRec
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


class InRegion(Protocol):
    """A record of one region, named by its code."""

    @property
    def region_code(self) -> str: ...


class Incomplete(Protocol):
    """A record that names the regions whose node did not answer."""

    @property
    def missing_codes(self) -> Sequence[str]: ...


async def regions_of(info: Info, codes: Sequence[str]) -> list[RegionRec]:
    """The regions of these codes, from the directory, in order; a code it lacks is left out."""
    return [r for r in await ctx(info).loaders.region.load_many(codes) if r]


async def region_of(root: strawberry.Parent[InRegion], info: Info) -> RegionRec | None:
    """The resolver of a record's ``region``."""
    return await ctx(info).loaders.region.load(root.region_code)


async def missing_of(root: strawberry.Parent[Incomplete], info: Info) -> list[RegionRec]:
    """The resolver of a record's ``missing``: the regions whose node did not answer."""
    return await regions_of(info, root.missing_codes)


@strawberry.input(description="Inclusive range of months.")
class PeriodInput:
    from_: Month = strawberry.field(name="from")
    to: Month


@strawberry.type
class Period:
    from_: Month = strawberry.field(name="from")
    to: Month


class Spanning(Protocol):
    """A record over the months first to last."""

    @property
    def first(self) -> date: ...

    @property
    def last(self) -> date: ...


class OverPeriod(Protocol):
    """A record over a period of months."""

    @property
    def period(self) -> PeriodRec: ...


def period_of(root: strawberry.Parent[Spanning]) -> Period:
    """The resolver of a ``period`` read from such a record's first and last months."""
    return Period(from_=root.first, to=root.last)


def own_period(root: strawberry.Parent[OverPeriod]) -> Period:
    """The resolver of a ``period`` read from such a record's own."""
    return Period(from_=root.period.from_, to=root.period.to)


@strawberry.federation.type(keys=["code"], description=(
    "An administrative division. The tree is ragged: a county's parent is a city or,\n"
    "for municipalities and province-administered units, a province; a few cities\n"
    "have no counties."))
class Region:
    code: strawberry.ID = strawberry.field(description='6-digit division code (GB/T 2260); the nation is "000000".')
    name: str

    @strawberry.field
    @staticmethod
    def tier(root: strawberry.Parent[RegionRec]) -> Tier:
        return Tier(TIER_NAMES[root.tier])

    @strawberry.field(graphql_type="Region | None")
    @staticmethod
    async def parent(root: strawberry.Parent[RegionRec], info: Info) -> RegionRec | None:
        return await reg.parent(root, info)

    @strawberry.field(description="In code order.", graphql_type="list[Region]")
    @staticmethod
    async def children(root: strawberry.Parent[RegionRec], info: Info) -> list[RegionRec]:
        return await reg.children(root, info)

    @strawberry.field(description="From the nation down, excluding this region.", graphql_type="list[Region]")
    @staticmethod
    async def ancestors(root: strawberry.Parent[RegionRec], info: Info) -> list[RegionRec]:
        return await reg.ancestors(root, info)

    @strawberry.field(graphql_type="list[Agency]")
    @staticmethod
    async def agencies(root: strawberry.Parent[RegionRec], info: Info,
                       department: Department | None = None) -> list[AgencyRec]:
        recs: list[AgencyRec] = await reg.region_agencies(root, info, department.value if department else None)
        return recs

    @strawberry.field(description=(
        "The pool that covers this region for the scheme in the given month (default: the current month); "
        "null when none does."), graphql_type="Pool | None")
    @staticmethod
    async def pool(root: strawberry.Parent[RegionRec], info: Info, scheme: Scheme,
                   as_of: Month | None = None) -> PoolRec | None:
        rec: PoolRec | None = await pol.region_pool(root, info, scheme.value, as_of)
        return rec

    @classmethod
    def is_type_of(cls, obj: object, info: object) -> bool:
        return isinstance(obj, RegionRec)

    @classmethod
    async def resolve_reference(cls, info: Info, code: strawberry.ID) -> RegionRec | None:
        return await reg.region(info, str(code))


@strawberry.federation.type(keys=["code"])
class Agency:
    code: strawberry.ID
    name: str

    @strawberry.field
    @staticmethod
    def tier(root: strawberry.Parent[AgencyRec], info: Info) -> Tier:
        return Tier(ctx(info).node.tree.tier_name(root.region_code))

    @strawberry.field
    @staticmethod
    def department(root: strawberry.Parent[AgencyRec]) -> Department:
        return Department(DEPARTMENTS[root.department - 1])

    @strawberry.field
    @staticmethod
    def kind(root: strawberry.Parent[AgencyRec]) -> AgencyKind:
        return AgencyKind(AGENCY_KINDS[root.kind - 1])

    @strawberry.field(graphql_type=Region)
    @staticmethod
    async def region(root: strawberry.Parent[AgencyRec], info: Info) -> RegionRec:
        return await reg.agency_region(root, info)

    @strawberry.field(graphql_type="Agency | None")
    @staticmethod
    async def parent(root: strawberry.Parent[AgencyRec], info: Info) -> AgencyRec | None:
        return await reg.agency_parent(root, info)

    @strawberry.field(graphql_type="list[Agency]")
    @staticmethod
    async def children(root: strawberry.Parent[AgencyRec], info: Info) -> list[AgencyRec]:
        return await reg.agency_children(root, info)

    @strawberry.field(description=(
        "True when the agency is managed directly by the agency one tier up (vertical management)."))
    @staticmethod
    def vertically_managed(root: strawberry.Parent[AgencyRec]) -> bool:
        return root.vertically_managed

    @classmethod
    def is_type_of(cls, obj: object, info: object) -> bool:
        return isinstance(obj, AgencyRec)

    @classmethod
    async def resolve_reference(cls, info: Info, code: strawberry.ID) -> AgencyRec | None:
        return await reg.agency(info, str(code))


@strawberry.federation.type(keys=["id"], description="A fund pooled at one tier for one scheme over one region's subtree.")
class Pool:
    id: strawberry.ID

    @strawberry.field
    @staticmethod
    def scheme(root: strawberry.Parent[PoolRec]) -> Scheme:
        return Scheme(SCHEMES[root.scheme - 1])

    @strawberry.field(description="The pooling level: the tier of the region the fund is pooled over.")
    @staticmethod
    def level(root: strawberry.Parent[PoolRec], info: Info) -> Tier:
        return Tier(pol.level(root, info))

    @strawberry.field(graphql_type=Region)
    @staticmethod
    async def region(root: strawberry.Parent[PoolRec], info: Info) -> RegionRec:
        return await pol.pool_region(root, info)

    @strawberry.field
    @staticmethod
    def opened_from(root: strawberry.Parent[PoolRec]) -> Month:
        return root.opened_from

    @strawberry.field(description="Last month the pool covers; null while it is open.")
    @staticmethod
    def closed_after(root: strawberry.Parent[PoolRec]) -> Month | None:
        return root.closed_after

    @strawberry.field(description=(
        "For a pool opened by raisePoolingLevel: the sum of its predecessors' balances at the month before it opened."))
    @staticmethod
    async def opening_balance(root: strawberry.Parent[PoolRec], info: Info) -> Decimal:
        return await pol.opening_balance(root, info)

    @strawberry.field(description=(
        "openingBalance plus, over the months from openedFrom to asOf (capped at closedAfter)\n"
        "and the records of the regions it covers, pooled contributions minus benefits paid,\n"
        "plus transfersIn minus transfersOut, plus the other income and minus the other\n"
        "expenditure booked as fund flows (see FundAccount).\n"
        "Records that arrive late for a month a predecessor covered change that predecessor's\n"
        "balance and, through openingBalance, this one's: no yuan is lost or counted twice."))
    @staticmethod
    async def balance(root: strawberry.Parent[PoolRec], info: Info, as_of: Month | None = None) -> Decimal:
        return await pol.balance(root, info, as_of)

    @strawberry.field(graphql_type="list[Pool]")
    @staticmethod
    async def predecessors(root: strawberry.Parent[PoolRec], info: Info) -> list[PoolRec]:
        return await pol.predecessors(root, info)

    @strawberry.field(description=(
        "Pooled funds moved into this pool by insurance transfers effective from openedFrom to asOf; part of balance."))
    @staticmethod
    async def transfers_in(root: strawberry.Parent[PoolRec], info: Info, as_of: Month | None = None) -> Decimal:
        return await trn.pool_transfers(root, info, as_of, "in")

    @strawberry.field(description=(
        "Pooled funds moved out of this pool by insurance transfers effective from openedFrom to asOf; part of balance."))
    @staticmethod
    async def transfers_out(root: strawberry.Parent[PoolRec], info: Info, as_of: Month | None = None) -> Decimal:
        return await trn.pool_transfers(root, info, as_of, "out")

    @strawberry.field(description="The fund's accounts over a period inside the months the pool covers.",
                      graphql_type=Annotated["FundAccount", strawberry.lazy("tierfed.schema.funds")])
    @staticmethod
    async def account(root: strawberry.Parent[PoolRec], info: Info, period: PeriodInput) -> AccountRec:
        return await fun.account(root, info, period.from_, period.to)

    @classmethod
    def is_type_of(cls, obj: object, info: object) -> bool:
        return isinstance(obj, PoolRec)

    @classmethod
    async def resolve_reference(cls, info: Info, id: strawberry.ID) -> PoolRec | None:
        # A gateway's _entities: the rule of Query.pool, as the field applies it.
        await perm.before(perm.FIELDS["Query.pool"], None, info._raw_info, {"id": str(id)})
        return await pol.pool(info, str(id))


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
    @strawberry.field(graphql_type=Region)
    @staticmethod
    async def region(root: strawberry.Parent[RollupRec], info: Info) -> RegionRec:
        return await rol.rollup_region(root, info)

    period = strawberry.field(resolver=period_of)

    @strawberry.field(description=(
        "False when part of the subtree could not be reached: the totals then cover the rest, "
        "and missing names what was left out."))
    @staticmethod
    async def complete(root: strawberry.Parent[RollupRec], info: Info) -> bool:
        return await rol.complete(root, info)

    @strawberry.field(graphql_type=list[Region])
    @staticmethod
    async def missing(root: strawberry.Parent[RollupRec], info: Info) -> list[RegionRec]:
        return await rol.missing(root, info)

    @strawberry.field(description=(
        "One entry per requested scheme (all schemes when none are named), in Scheme order, zeros included."),
        graphql_type=list[SchemeTotals])
    @staticmethod
    async def totals(root: strawberry.Parent[RollupRec], info: Info) -> list[SchemeTotal]:
        return await rol.rollup_totals(root, info)

    @strawberry.field(description="One rollup per child region, in code order.", graphql_type="list[Rollup]")
    @staticmethod
    def by_child(root: strawberry.Parent[RollupRec], info: Info) -> list[RollupRec]:
        return rol.by_child(root, info)

    @strawberry.field(description="One entry per month of the period, in order.", graphql_type=list[MonthTotals])
    @staticmethod
    async def by_month(root: strawberry.Parent[RollupRec], info: Info) -> list[MonthTotalsRec]:
        return await rol.by_month(root, info)


@strawberry.type
class PersonSchemeYear:
    @strawberry.field
    @staticmethod
    def scheme(root: strawberry.Parent[StatementRow]) -> Scheme:
        return Scheme(per.scheme_name(root))

    months: int = strawberry.field(description="Months with a contribution record.")

    @strawberry.field
    @staticmethod
    def contribution_employer(root: strawberry.Parent[StatementRow]) -> Decimal:
        return root.employer

    @strawberry.field
    @staticmethod
    def contribution_individual(root: strawberry.Parent[StatementRow]) -> Decimal:
        return root.individual

    individual_account: Decimal
    benefits_paid: Decimal


@strawberry.type(description="The personal rights record (contributions and benefits) of one person for one year.")
class PersonalStatement:
    year: int
    schemes: list[PersonSchemeYear]

    @strawberry.field(description=(
        "False when a node that holds some of this person's records did not answer: the year lacks its months "
        "(see missing and the TIER_UNAVAILABLE error)."))
    @staticmethod
    def complete(root: strawberry.Parent[StatementRec]) -> bool:
        return not root.missing

    @strawberry.field(name="missing", description=(
        "Regions of the child nodes that hold some of this person's records and did not answer."),
        graphql_type=list[Region])
    @staticmethod
    async def missing_regions(root: strawberry.Parent[StatementRec], info: Info) -> list[RegionRec]:
        return await per.missing_regions(info, root.missing)


@strawberry.type
class Person:
    @strawberry.field(description=(
        'The 18-character resident ID number; masked (first 6 and last 4 shown, the rest "*") '
        "unless the caller holds PII_READER."))
    @staticmethod
    def id_number(root: strawberry.Parent[PersonView], info: Info) -> str:
        return per.id_number(root, info)

    name: str

    @strawberry.field(description=(
        "Where the person is registered now: of their registrations inside your scope, anywhere in the "
        "federation, the one whose node holds their latest record."), graphql_type=Region)
    @staticmethod
    async def region(root: strawberry.Parent[PersonView], info: Info) -> RegionRec:
        return await per.person_region(root, info)

    @strawberry.field(description=(
        "The whole year, wherever in the federation its months are held: every node whose part of the "
        "person lies inside your scope, merged month by month."), graphql_type=PersonalStatement)
    @staticmethod
    async def statement(root: strawberry.Parent[PersonView], info: Info, year: int) -> StatementRec:
        return await per.statement(root, info, year)

    @strawberry.field(description=(
        "False when a node that holds part of this person did not answer: region and statements may lack "
        "its part (see missing and the TIER_UNAVAILABLE error)."))
    @staticmethod
    def complete(root: strawberry.Parent[PersonView]) -> bool:
        return not root.missing

    @strawberry.field(name="missing", description=(
        "Regions of the child nodes that hold part of this person and did not answer."), graphql_type=list[Region])
    @staticmethod
    async def missing_regions(root: strawberry.Parent[PersonView], info: Info) -> list[RegionRec]:
        return await per.missing_regions(info, root.missing)

    @strawberry.field(description="Insurance transfers of this person, oldest first.",
                      graphql_type=list[Annotated["InsuranceTransfer", strawberry.lazy("tierfed.schema.transfers")]])
    @staticmethod
    async def transfers(root: strawberry.Parent[PersonView], info: Info) -> list[TransferRec]:
        return await trn.person_transfers(root, info)


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

    @strawberry.field(graphql_type=Region)
    @staticmethod
    async def region(root: strawberry.Parent[EmployerView], info: Info) -> RegionRec:
        return await emp.employer_region(root, info)

    @strawberry.field(description=(
        "The employer's own contribution records summed per scheme, in Scheme order: on every node where it is "
        "registered inside your scope, added up."), graphql_type=list[EmployerSchemeTotals])
    @staticmethod
    async def contributions(root: strawberry.Parent[EmployerView], info: Info,
                            period: PeriodInput) -> list[EmployerTotalsRec]:
        return await emp.contributions(root, info, period.from_, period.to)

    @strawberry.field(description=(
        "False when a child node did not answer: the employer's records there are missing from contributions "
        "(see missing and the TIER_UNAVAILABLE error)."))
    @staticmethod
    def complete(root: strawberry.Parent[EmployerView]) -> bool:
        return not root.missing

    @strawberry.field(name="missing", description="Regions of the child nodes that did not answer.",
                      graphql_type=list[Region])
    @staticmethod
    async def missing_regions(root: strawberry.Parent[EmployerView], info: Info) -> list[RegionRec]:
        return await per.missing_regions(info, root.missing)


@strawberry.type(description="One province's part in the pension central adjustment for a year.")
class ProvinceAdjustment:
    region = strawberry.field(resolver=region_of, graphql_type=Region)

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

    missing = strawberry.field(resolver=missing_of, graphql_type=list[Region])


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
    @strawberry.field(description="The person, as registered where the first listed record was handled.",
                      graphql_type=Person)
    @staticmethod
    def person(root: strawberry.Parent[DuplicateRec]) -> PersonView:
        return root.person

    scheme: Scheme
    month: Month

    @strawberry.field(description="In code order; two or more.", graphql_type=list[Region])
    @staticmethod
    async def regions(root: strawberry.Parent[DuplicateRec], info: Info) -> list[RegionRec]:
        return await per.missing_regions(info, root.region_codes)
