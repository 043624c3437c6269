"""Fund budgets: a pool's budget for a year and its workflow, a region's compiled budget,
and the execution of the budget during the year."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal as PyDecimal
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info
from tierfed.resolvers import budgets as rb
from tierfed.resolvers.regions import region as region_by_code
from tierfed.tiers.budgetstore import BudgetRec, StepRec
from tierfed.tiers.figures import FUND_CATEGORIES, FUND_EXPENDITURE, FUND_INCOME, SCHEMES
from tierfed.tiers.store import PoolRec
from tierfed.tiers.tree import RegionRec

from .funds import FundFlowCategory, category_of
from .scalars import Decimal, Month
from .types import Period, PeriodInput, Scheme, own_period

if TYPE_CHECKING:
    from .types import Pool, Region


LazyRegion = Annotated["Region", strawberry.lazy("tierfed.schema.types")]


class OverRegion(Protocol):
    """A budget compiled over a region, or its execution (CompiledRec, ExecutionRec)."""

    @property
    def region(self) -> str: ...

    @property
    def missing(self) -> Sequence[str]: ...


async def _region(root: strawberry.Parent[OverRegion], info: Info) -> RegionRec | None:
    return await region_by_code(info, root.region)


async def _missing(root: strawberry.Parent[OverRegion], info: Info) -> list[RegionRec | None]:
    return [await region_by_code(info, m) for m in root.missing]


@strawberry.enum(description="Where a budget stands in its workflow.")
class BudgetState(Enum):
    DRAFT = "DRAFT"
    SUBMITTED = "SUBMITTED"
    REVIEWED = "REVIEWED"
    APPROVED = "APPROVED"


@strawberry.enum(description="A step of a budget's history.")
class BudgetAction(Enum):
    STARTED = "STARTED"
    EDITED = "EDITED"
    SUBMITTED = "SUBMITTED"
    REVIEWED = "REVIEWED"
    APPROVED = "APPROVED"
    RETURNED = "RETURNED"


@strawberry.type(description="The amount budgeted for one category.")
class BudgetLine:
    category: FundFlowCategory = strawberry.field(resolver=category_of)
    amount: Decimal


@strawberry.type(description="One stated growth assumption: a category grown by a percentage.")
class BudgetGrowth:
    category: FundFlowCategory = strawberry.field(resolver=category_of)

    @strawberry.field
    @staticmethod
    def percent(root: strawberry.Parent[rb.LineRec]) -> Decimal:
        return root.amount


@strawberry.type(description="How a draft was started from the pool's accounts.")
class BudgetBasis:
    """Read from the basis a budget was started from (Budget.basis): its JSON as stored."""

    @strawberry.field(description="The accounts' months, annualised (amount x 12 / months).")
    @staticmethod
    def period(root: strawberry.Parent[dict[str, Any]]) -> Period:
        return Period(from_=root["from"], to=root["to"])

    @strawberry.field(description="The growth stated per category, in enum order; categories not listed grew by 0%.",
                      graphql_type=list[BudgetGrowth])
    @staticmethod
    def growth(root: strawberry.Parent[dict[str, Any]]) -> list[rb.LineRec]:
        g = root["growth"]
        return [rb.LineRec(c, PyDecimal(g[c])) for c in FUND_CATEGORIES if c in g]

    @strawberry.field(description="The growth applied to the expected headcounts, in percent.")
    @staticmethod
    def headcount_growth(root: strawberry.Parent[dict[str, Any]]) -> Decimal:
        return PyDecimal(root["headcountGrowth"])


@strawberry.type(description="One step of a budget: who took it, when, and what changed.")
class BudgetStep:
    @strawberry.field
    @staticmethod
    def action(root: strawberry.Parent[StepRec]) -> BudgetAction:
        return BudgetAction(root.action)

    @strawberry.field
    @staticmethod
    def from_state(root: strawberry.Parent[StepRec]) -> BudgetState | None:
        return BudgetState(root.from_state) if root.from_state else None

    @strawberry.field
    @staticmethod
    def to_state(root: strawberry.Parent[StepRec]) -> BudgetState:
        return BudgetState(root.to_state)

    @strawberry.field(description="The subject of the token that took the step.")
    @staticmethod
    def by(root: strawberry.Parent[StepRec]) -> str:
        return root.caller

    @strawberry.field(description="The roles that token carried.")
    @staticmethod
    def roles(root: strawberry.Parent[StepRec]) -> list[str]:
        return list(root.roles)

    @strawberry.field(description="When (ISO 8601, UTC).")
    @staticmethod
    def at(root: strawberry.Parent[StepRec]) -> str:
        return root.at.isoformat()

    reason: str | None = strawberry.field(description="Why it was returned; null for other steps.")
    changes: JSON = strawberry.field(description=(
        "What changed: lines as {category: [old, new]}, headcounts as [old, new]; a start also gives its basis."))


@strawberry.type(description=(
    "A pool's budget for one year: amounts per FundFlowCategory and expected headcounts, with its workflow "
    "state and history. Income and expenditure list every category of their side in enum order, zeros included."))
class Budget:
    @strawberry.field
    @staticmethod
    def pool_id(root: strawberry.Parent[BudgetRec]) -> strawberry.ID:
        return strawberry.ID(root.pool_id)

    @strawberry.field(graphql_type=Annotated["Pool", strawberry.lazy("tierfed.schema.types")])
    @staticmethod
    async def pool(root: strawberry.Parent[BudgetRec], info: Info) -> PoolRec:
        return await rb.budget_pool(root, info)

    year: int

    @strawberry.field
    @staticmethod
    def scheme(root: strawberry.Parent[BudgetRec]) -> Scheme:
        return Scheme(SCHEMES[root.scheme - 1])

    @strawberry.field(graphql_type=LazyRegion)
    @staticmethod
    async def region(root: strawberry.Parent[BudgetRec], info: Info) -> RegionRec | None:
        return await region_by_code(info, root.region_code)

    @strawberry.field
    @staticmethod
    def state(root: strawberry.Parent[BudgetRec]) -> BudgetState:
        return BudgetState(root.state)

    @strawberry.field(description="True once APPROVED: nothing about it can change any more.")
    @staticmethod
    def frozen(root: strawberry.Parent[BudgetRec]) -> bool:
        return root.state == "APPROVED"

    @strawberry.field(graphql_type=list[BudgetLine])
    @staticmethod
    def income(root: strawberry.Parent[BudgetRec]) -> list[rb.LineRec]:
        return rb.income(root)

    @strawberry.field(graphql_type=list[BudgetLine])
    @staticmethod
    def expenditure(root: strawberry.Parent[BudgetRec]) -> list[rb.LineRec]:
        return rb.expenditure(root)

    @strawberry.field
    @staticmethod
    def total_income(root: strawberry.Parent[BudgetRec]) -> Decimal:
        return rb.total(root, FUND_INCOME)

    @strawberry.field
    @staticmethod
    def total_expenditure(root: strawberry.Parent[BudgetRec]) -> Decimal:
        return rb.total(root, FUND_EXPENDITURE)

    @strawberry.field(description="totalIncome - totalExpenditure.")
    @staticmethod
    def surplus(root: strawberry.Parent[BudgetRec]) -> Decimal:
        return rb.total(root, FUND_INCOME) - rb.total(root, FUND_EXPENDITURE)

    expected_insured: int
    expected_contributors: int
    expected_beneficiaries: int

    @strawberry.field(description="How the draft was started from accounts; null for a draft started blank.",
                      graphql_type=BudgetBasis | None)
    @staticmethod
    def basis(root: strawberry.Parent[BudgetRec]) -> dict[str, Any] | None:
        return root.basis or None

    returned_reason: str | None = strawberry.field(description=(
        "Why it was last returned to DRAFT; null when it never was or has moved on since."))

    @strawberry.field(description="Every step, oldest first.", graphql_type=list[BudgetStep])
    @staticmethod
    async def history(root: strawberry.Parent[BudgetRec], info: Info) -> list[StepRec]:
        return await rb.history(root, info)

    @classmethod
    def is_type_of(cls, obj: object, info: object) -> bool:
        return isinstance(obj, rb.BudgetRec)  # a child's answer: tiers.layer accepts it


@strawberry.type(description="How far the parts of a compiled budget have come.")
class BudgetStates:
    pools: int = strawberry.field(description="Pools open in the year inside the region (those reached).")
    approved: int = strawberry.field(description="Pools whose budget is APPROVED.")
    waiting: int = strawberry.field(description="Pools whose budget is drafted but not yet approved.")
    not_drafted: int = strawberry.field(description="Pools with no budget for the year yet.")


@strawberry.type(description="One pool's part in a compiled budget.")
class BudgetPart:
    pool_id: strawberry.ID

    @strawberry.field
    @staticmethod
    def scheme(root: strawberry.Parent[rb.PartRec]) -> Scheme:
        return Scheme(root.scheme)

    @strawberry.field(graphql_type=LazyRegion)
    @staticmethod
    async def region(root: strawberry.Parent[rb.PartRec], info: Info) -> RegionRec | None:
        return await region_by_code(info, root.region_code)

    @strawberry.field(description="Its budget's state; null when it has none for the year.")
    @staticmethod
    def state(root: strawberry.Parent[rb.PartRec]) -> BudgetState | None:
        return BudgetState(root.state) if root.state else None


@strawberry.type(description="One scheme's budget compiled over a region: every category summed over its pools.")
class SchemeBudget:
    @strawberry.field
    @staticmethod
    def scheme(root: strawberry.Parent[rb.SchemeBudgetRec]) -> Scheme:
        return Scheme(root.scheme)

    income: list[BudgetLine]
    expenditure: list[BudgetLine]
    total_income: Decimal
    total_expenditure: Decimal
    surplus: Decimal = strawberry.field(description="totalIncome - totalExpenditure.")
    expected_insured: int
    expected_contributors: int
    expected_beneficiaries: int
    states: BudgetStates


@strawberry.type(description=(
    "A region's budget for a year, compiled upward: per scheme and category, the sum over every pool open in the "
    "year inside the region, wherever in the federation it is held, with the state of each part. Like a rollup, "
    "complete is false and missing names the regions whose node did not answer."))
class CompiledBudget:
    region = strawberry.field(resolver=_region, graphql_type=LazyRegion)

    year: int
    only_approved: bool = strawberry.field(description="True when only APPROVED budgets are summed.")
    schemes: list[SchemeBudget] = strawberry.field(description="One entry per requested scheme, in Scheme order.")
    states: BudgetStates
    complete: bool

    missing = strawberry.field(resolver=_missing, graphql_type=list[LazyRegion],
                               description="The regions whose node could not be asked; empty when complete.")

    @strawberry.field(description="The parts, in pool id order; only those in the given states when states is given "
                                  "(NOT_DRAFTED parts have a null state: ask with notDrafted: true).",
                      graphql_type=list[BudgetPart])
    @staticmethod
    def parts(root: strawberry.Parent[rb.CompiledRec], states: list[BudgetState] | None = None,
              not_drafted: bool | None = None) -> list[rb.PartRec]:
        want = {s.value for s in states} if states else None
        return [p for p in root.parts
                if (want is None and not not_drafted) or (p.state is None and not_drafted)
                or (want is not None and p.state in want)]


@strawberry.type(description="Budget against actual for one category, year to date.")
class ExecutionLine:
    category: FundFlowCategory = strawberry.field(resolver=category_of)
    budget: Decimal = strawberry.field(description="The year's budget of the category.")
    actual: Decimal = strawberry.field(description=(
        "From January to the month, from the fund accounts of the pools whose budget is counted."))
    actual_not_budgeted: Decimal = strawberry.field(description=(
        "From January to the month, from the fund accounts of the other pools (no budget counted): "
        "actual + actualNotBudgeted is the accounts of every pool whose region lies in the region. A region "
        "pooled by a pool above it (a city under a provincial pool) has none of its own: ask that pool's region."))
    share: Decimal | None = strawberry.field(description="actual / budget, to four decimals; null when nothing "
                                                          "was budgeted.")


@strawberry.type(description="Budget against actual for one side (income or expenditure), year to date.")
class ExecutionTotal:
    budget: Decimal
    actual: Decimal
    actual_not_budgeted: Decimal
    share: Decimal | None = strawberry.field(description="actual / budget, to four decimals; null when nothing "
                                                         "was budgeted.")


@strawberry.type(description=(
    "A scheme's budget execution over a region: for each category, the actual flows from January to the month "
    "of the pools of the scheme inside the region whose budget is counted) against the year's compiled budget."))
class BudgetExecution:
    region = strawberry.field(resolver=_region, graphql_type=LazyRegion)

    @strawberry.field
    @staticmethod
    def scheme(root: strawberry.Parent[rb.ExecutionRec]) -> Scheme:
        return Scheme(root.scheme)

    month: Month

    period = strawberry.field(resolver=own_period, description="January of the month's year to the month.")

    only_approved: bool = strawberry.field(description="True when only APPROVED budgets are counted as budget.")
    elapsed_share: Decimal = strawberry.field(description="Months elapsed / 12: the share a budget kept to plan "
                                                          "would have executed.")
    income: list[ExecutionLine]
    expenditure: list[ExecutionLine]
    total_income: ExecutionTotal
    total_expenditure: ExecutionTotal
    states: BudgetStates
    complete: bool

    missing = strawberry.field(resolver=_missing, graphql_type=list[LazyRegion],
                               description="The regions whose node could not be asked; empty when complete.")


@strawberry.input(description="An amount for one category.")
class BudgetLineInput:
    category: FundFlowCategory
    amount: Decimal = strawberry.field(description="Yuan, at most two fraction digits, not negative.")


@strawberry.input(description="A growth assumption for one category.")
class BudgetGrowthInput:
    category: FundFlowCategory
    percent: Decimal = strawberry.field(description="Growth over the annualised base, in percent, e.g. \"5.5\"; "
                                                    "at most two fraction digits, -100 to 1000.")


@strawberry.input(description="A new draft budget of a pool for a year.")
class StartBudgetInput:
    pool_id: strawberry.ID = strawberry.field(description="The pool budgeted; it must cover a month of the year.")
    year: int = strawberry.field(description="The budget year.")
    base_period: PeriodInput | None = strawberry.field(default=None, description=(
        "Start from the pool's accounts over these months, annualised; null for a blank draft (zeros)."))
    growth: list[BudgetGrowthInput] | None = strawberry.field(default=None, description=(
        "Stated growth per category over the annualised base; unlisted categories grow by 0%."))
    headcount_growth: Decimal | None = strawberry.field(default=None, description=(
        "Growth of the expected headcounts over the base period's, in percent (default 0)."))


@strawberry.input(description="Changes to a DRAFT budget; what is not given stays as it is.")
class EditBudgetInput:
    pool_id: strawberry.ID
    year: int
    lines: list[BudgetLineInput] | None = strawberry.field(default=None, description=(
        "New amounts of these categories, each category at most once."))
    expected_insured: int | None = None
    expected_contributors: int | None = None
    expected_beneficiaries: int | None = None


@strawberry.type
class BudgetQueries:
    @strawberry.field(description=(
        "A pool's budget for a year, wherever in the federation the pool is held; null when it has none. "
        "FORBIDDEN outside the token's scope."), graphql_type=Budget | None)
    async def budget(self, info: Info, pool_id: strawberry.ID, year: int) -> BudgetRec | None:
        rec: BudgetRec | None = await rb.budget(info, str(pool_id), year)
        return rec

    @strawberry.field(description=(
        "The budget of a region's subtree for a year, compiled from every pool inside it on every node. "
        "FORBIDDEN outside the token's scope."), graphql_type=CompiledBudget)
    async def compiled_budget(self, info: Info, region: strawberry.ID, year: int, schemes: list[Scheme] | None = None,
                              only_approved: bool = False) -> rb.CompiledRec:
        return await rb.compiled_budget(info, str(region), year,
                                        [s.value for s in schemes] if schemes else None, only_approved)

    @strawberry.field(description=(
        "Actual against budget for a region, a scheme and a month: by category, year to date, and the share "
        "executed. FORBIDDEN outside the token's scope."), graphql_type=BudgetExecution)
    async def budget_execution(self, info: Info, region: strawberry.ID, scheme: Scheme, month: Month,
                               only_approved: bool = False) -> rb.ExecutionRec:
        return await rb.budget_execution(info, str(region), scheme.value, month,
                                         only_approved)


@strawberry.type
class BudgetMutations:
    @strawberry.mutation(description=(
        "Start a pool's DRAFT budget for a year, blank or from the accounts of a base period with stated growth. "
        "Needs OPERATOR over the pool's region; sent to the node holding the pool."), graphql_type=Budget)
    async def start_budget(self, info: Info, input: StartBudgetInput) -> BudgetRec:
        bp = input.base_period
        return await rb.start(info, str(input.pool_id), input.year,
                              bp.from_ if bp else None, bp.to if bp else None,
                              [(g.category, g.percent) for g in input.growth or []], input.headcount_growth)

    @strawberry.mutation(description="Change a DRAFT budget's amounts or headcounts. Needs OPERATOR.",
                         graphql_type=Budget)
    async def edit_budget(self, info: Info, input: EditBudgetInput) -> BudgetRec:
        return await rb.edit(info, str(input.pool_id), input.year,
                             [(x.category, x.amount) for x in input.lines or []],
                             (input.expected_insured, input.expected_contributors, input.expected_beneficiaries))

    @strawberry.mutation(description="DRAFT to SUBMITTED, by the agency. Needs OPERATOR.", graphql_type=Budget)
    async def submit_budget(self, info: Info, pool_id: strawberry.ID, year: int) -> BudgetRec:
        return await rb.step(info, str(pool_id), year, "SUBMITTED")

    @strawberry.mutation(description="SUBMITTED to REVIEWED, by the department. Needs BUDGET_REVIEWER.",
                         graphql_type=Budget)
    async def review_budget(self, info: Info, pool_id: strawberry.ID, year: int) -> BudgetRec:
        return await rb.step(info, str(pool_id), year, "REVIEWED")

    @strawberry.mutation(description="REVIEWED to APPROVED, by finance; the budget is then frozen. "
                                     "Needs BUDGET_APPROVER.", graphql_type=Budget)
    async def approve_budget(self, info: Info, pool_id: strawberry.ID, year: int) -> BudgetRec:
        return await rb.step(info, str(pool_id), year, "APPROVED")

    @strawberry.mutation(description=(
        "Back to DRAFT with a reason: a SUBMITTED budget by BUDGET_REVIEWER, a REVIEWED one by BUDGET_APPROVER."),
        graphql_type=Budget)
    async def return_budget(self, info: Info, pool_id: strawberry.ID, year: int, reason: str) -> BudgetRec:
        return await rb.give_back(info, str(pool_id), year, reason)


__all__ = ["BudgetQueries", "BudgetMutations", "JSON"]
