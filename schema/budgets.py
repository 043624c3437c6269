"""Fund budgets: a pool's budget for a year and its workflow, a region's compiled budget,
and the execution of the budget during the year."""

from __future__ import annotations

from decimal import Decimal as PyDecimal
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info
from tierfed.resolvers import budgets as rb
from tierfed.resolvers.regions import region as region_by_code
from tierfed.tiers.figures import FUND_CATEGORIES, FUND_EXPENDITURE, FUND_INCOME, SCHEMES
from tierfed.tiers.remote import Forwarded

from .funds import FundFlowCategory
from .scalars import Decimal, Month
from .types import Period, PeriodInput, Scheme

if TYPE_CHECKING:
    from .types import Pool, Region


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


def _category(self: object) -> FundFlowCategory:  # type: ignore[valid-type]
    return FundFlowCategory[self.category]  # type: ignore[attr-defined,no-any-return,misc]


@strawberry.type(description="The amount budgeted for one category.")
class BudgetLine:
    category: FundFlowCategory = strawberry.field(resolver=_category)  # type: ignore[valid-type]
    amount: Decimal


@strawberry.type(description="One stated growth assumption: a category grown by a percentage.")
class BudgetGrowth:
    category: FundFlowCategory = strawberry.field(resolver=_category)  # type: ignore[valid-type]

    @strawberry.field
    def percent(self) -> Decimal:
        return self.amount  # type: ignore[attr-defined,no-any-return]


@strawberry.type(description="How a draft was started from the pool's accounts.")
class BudgetBasis:
    @strawberry.field(description="The accounts' months, annualised (amount x 12 / months).")
    def period(self) -> Period:
        b = self.basis  # type: ignore[attr-defined]
        return Period(from_=b["from"], to=b["to"])  # type: ignore[arg-type]

    @strawberry.field(description="The growth stated per category, in enum order; categories not listed grew by 0%.")
    def growth(self) -> list[BudgetGrowth]:
        g = self.basis["growth"]  # type: ignore[attr-defined]
        return [rb.LineRec(c, PyDecimal(g[c])) for c in FUND_CATEGORIES if c in g]  # type: ignore[misc]

    @strawberry.field(description="The growth applied to the expected headcounts, in percent.")
    def headcount_growth(self) -> Decimal:
        return PyDecimal(self.basis["headcountGrowth"])  # type: ignore[attr-defined]


@strawberry.type(description="One step of a budget: who took it, when, and what changed.")
class BudgetStep:
    @strawberry.field
    def action(self) -> BudgetAction:
        return BudgetAction(self.action)  # type: ignore[attr-defined]

    @strawberry.field
    def from_state(self) -> BudgetState | None:
        return BudgetState(self.from_state) if self.from_state else None  # type: ignore[attr-defined]

    @strawberry.field
    def to_state(self) -> BudgetState:
        return BudgetState(self.to_state)  # type: ignore[attr-defined]

    @strawberry.field(description="The subject of the token that took the step.")
    def by(self) -> str:
        return self.caller  # type: ignore[attr-defined,no-any-return]

    @strawberry.field(description="The roles that token carried.")
    def roles(self) -> list[str]:
        return list(self.roles)

    @strawberry.field(description="When (ISO 8601, UTC).")
    def at(self) -> str:
        return self.at.isoformat()  # type: ignore[attr-defined,no-any-return]

    reason: str | None = strawberry.field(description="Why it was returned; null for other steps.")
    changes: JSON = strawberry.field(description=(
        "What changed: lines as {category: [old, new]}, headcounts as [old, new]; a start also gives its basis."))


@strawberry.type(description=(
    "A pool's budget for one year: amounts per FundFlowCategory and expected headcounts, with its workflow "
    "state and history. Income and expenditure list every category of their side in enum order, zeros included."))
class Budget:
    @strawberry.field
    def pool_id(self) -> strawberry.ID:
        return strawberry.ID(self.pool_id)  # type: ignore[attr-defined,arg-type]

    @strawberry.field
    async def pool(self, info: Info) -> Annotated[Pool, strawberry.lazy("tierfed.schema.types")]:
        return await rb.budget_pool(self, info)  # type: ignore[arg-type,return-value]

    year: int

    @strawberry.field
    def scheme(self) -> Scheme:
        return Scheme[SCHEMES[self.scheme - 1]]  # type: ignore[attr-defined,operator]

    @strawberry.field
    async def region(self, info: Info) -> Annotated[Region, strawberry.lazy("tierfed.schema.types")]:
        return await region_by_code(info, self.region_code)  # type: ignore[attr-defined,return-value]

    @strawberry.field
    def state(self) -> BudgetState:
        return BudgetState(self.state)  # type: ignore[attr-defined]

    @strawberry.field(description="True once APPROVED: nothing about it can change any more.")
    def frozen(self) -> bool:
        return self.state == "APPROVED"  # type: ignore[attr-defined,no-any-return]

    @strawberry.field
    def income(self) -> list[BudgetLine]:
        return rb.income(self)  # type: ignore[arg-type,return-value]

    @strawberry.field
    def expenditure(self) -> list[BudgetLine]:
        return rb.expenditure(self)  # type: ignore[arg-type,return-value]

    @strawberry.field
    def total_income(self) -> Decimal:
        return rb.total(self, FUND_INCOME)  # type: ignore[arg-type]

    @strawberry.field
    def total_expenditure(self) -> Decimal:
        return rb.total(self, FUND_EXPENDITURE)  # type: ignore[arg-type]

    @strawberry.field(description="totalIncome - totalExpenditure.")
    def surplus(self) -> Decimal:
        return rb.total(self, FUND_INCOME) - rb.total(self, FUND_EXPENDITURE)  # type: ignore[arg-type]

    expected_insured: int
    expected_contributors: int
    expected_beneficiaries: int

    @strawberry.field(description="How the draft was started from accounts; null for a draft started blank.")
    def basis(self) -> BudgetBasis | None:
        return self if self.basis else None  # type: ignore[attr-defined,return-value]

    returned_reason: str | None = strawberry.field(description=(
        "Why it was last returned to DRAFT; null when it never was or has moved on since."))

    @strawberry.field(description="Every step, oldest first.")
    async def history(self, info: Info) -> list[BudgetStep]:
        return await rb.history(self, info)  # type: ignore[arg-type,return-value]

    @classmethod
    def is_type_of(cls, obj: object, info: object) -> bool:
        return isinstance(obj, (rb.BudgetRec, Forwarded))


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
    def scheme(self) -> Scheme:
        return Scheme[self.scheme]  # type: ignore[misc]


    @strawberry.field
    async def region(self, info: Info) -> Annotated[Region, strawberry.lazy("tierfed.schema.types")]:
        return await region_by_code(info, self.region_code)  # type: ignore[attr-defined,return-value]

    @strawberry.field(description="Its budget's state; null when it has none for the year.")
    def state(self) -> BudgetState | None:
        return BudgetState(self.state) if self.state else None  # type: ignore[attr-defined]


@strawberry.type(description="One scheme's budget compiled over a region: every category summed over its pools.")
class SchemeBudget:
    @strawberry.field
    def scheme(self) -> Scheme:
        return Scheme[self.scheme]  # type: ignore[misc]

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
    @strawberry.field
    async def region(self, info: Info) -> Annotated[Region, strawberry.lazy("tierfed.schema.types")]:
        return await region_by_code(info, self.region)  # type: ignore[attr-defined,return-value]

    year: int
    only_approved: bool = strawberry.field(description="True when only APPROVED budgets are summed.")
    schemes: list[SchemeBudget] = strawberry.field(description="One entry per requested scheme, in Scheme order.")
    states: BudgetStates
    complete: bool

    @strawberry.field(description="The regions whose node could not be asked; empty when complete.")
    async def missing(self, info: Info) -> list[Annotated[Region, strawberry.lazy("tierfed.schema.types")]]:
        return [await region_by_code(info, m) for m in self.missing]  # type: ignore[attr-defined,misc]

    @strawberry.field(description="The parts, in pool id order; only those in the given states when states is given "
                                  "(NOT_DRAFTED parts have a null state: ask with notDrafted: true).")
    def parts(self, states: list[BudgetState] | None = None, not_drafted: bool | None = None) -> list[BudgetPart]:
        want = {s.value for s in states} if states else None
        return [p for p in self.parts  # type: ignore[attr-defined,misc]
                if (want is None and not not_drafted) or (p.state is None and not_drafted)
                or (want is not None and p.state in want)]


@strawberry.type(description="Budget against actual for one category, year to date.")
class ExecutionLine:
    category: FundFlowCategory = strawberry.field(resolver=_category)  # type: ignore[valid-type]
    budget: Decimal = strawberry.field(description="The year's budget of the category.")
    actual: Decimal = strawberry.field(description=(
        "From January to the month, from the fund accounts of the pools whose budget is counted."))
    actual_not_budgeted: Decimal = strawberry.field(description=(
        "From January to the month, from the fund accounts of the other pools (no budget counted): "
        "actual + actualNotBudgeted is the whole region's."))
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
    @strawberry.field
    async def region(self, info: Info) -> Annotated[Region, strawberry.lazy("tierfed.schema.types")]:
        return await region_by_code(info, self.region)  # type: ignore[attr-defined,return-value]

    @strawberry.field
    def scheme(self) -> Scheme:
        return Scheme[self.scheme]  # type: ignore[misc]

    month: Month

    @strawberry.field(description="January of the month's year to the month.")
    def period(self) -> Period:
        return Period(from_=self.period.from_, to=self.period.to)  # type: ignore[attr-defined]

    only_approved: bool = strawberry.field(description="True when only APPROVED budgets are counted as budget.")
    elapsed_share: Decimal = strawberry.field(description="Months elapsed / 12: the share a budget kept to plan "
                                                          "would have executed.")
    income: list[ExecutionLine]
    expenditure: list[ExecutionLine]
    total_income: ExecutionTotal
    total_expenditure: ExecutionTotal
    states: BudgetStates
    complete: bool

    @strawberry.field(description="The regions whose node could not be asked; empty when complete.")
    async def missing(self, info: Info) -> list[Annotated[Region, strawberry.lazy("tierfed.schema.types")]]:
        return [await region_by_code(info, m) for m in self.missing]  # type: ignore[attr-defined,misc]


@strawberry.input(description="An amount for one category.")
class BudgetLineInput:
    category: FundFlowCategory  # type: ignore[valid-type]
    amount: Decimal = strawberry.field(description="Yuan, at most two fraction digits, not negative.")


@strawberry.input(description="A growth assumption for one category.")
class BudgetGrowthInput:
    category: FundFlowCategory  # type: ignore[valid-type]
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
        "FORBIDDEN outside the token's scope."))
    async def budget(self, info: Info, pool_id: strawberry.ID, year: int) -> Budget | None:
        return await rb.budget(info, str(pool_id), year)  # type: ignore[no-any-return]

    @strawberry.field(description=(
        "The budget of a region's subtree for a year, compiled from every pool inside it on every node. "
        "FORBIDDEN outside the token's scope."))
    async def compiled_budget(self, info: Info, region: strawberry.ID, year: int, schemes: list[Scheme] | None = None,
                              only_approved: bool = False) -> CompiledBudget:
        return await rb.compiled_budget(info, str(region), year,  # type: ignore[return-value]
                                        [s.value for s in schemes] if schemes else None, only_approved)

    @strawberry.field(description=(
        "Actual against budget for a region, a scheme and a month: by category, year to date, and the share "
        "executed. FORBIDDEN outside the token's scope."))
    async def budget_execution(self, info: Info, region: strawberry.ID, scheme: Scheme, month: Month,
                               only_approved: bool = False) -> BudgetExecution:
        return await rb.budget_execution(info, str(region), scheme.value, month,  # type: ignore[return-value]
                                         only_approved)


@strawberry.type
class BudgetMutations:
    @strawberry.mutation(description=(
        "Start a pool's DRAFT budget for a year, blank or from the accounts of a base period with stated growth. "
        "Needs OPERATOR over the pool's region; sent to the node holding the pool."))
    async def start_budget(self, info: Info, input: StartBudgetInput) -> Budget:
        bp = input.base_period
        return await rb.start(info, str(input.pool_id), input.year,  # type: ignore[return-value]
                              bp.from_ if bp else None, bp.to if bp else None,
                              [(g.category, g.percent) for g in input.growth or []], input.headcount_growth)

    @strawberry.mutation(description="Change a DRAFT budget's amounts or headcounts. Needs OPERATOR.")
    async def edit_budget(self, info: Info, input: EditBudgetInput) -> Budget:
        return await rb.edit(info, str(input.pool_id), input.year,  # type: ignore[return-value]
                             [(x.category, x.amount) for x in input.lines or []],
                             (input.expected_insured, input.expected_contributors, input.expected_beneficiaries))

    @strawberry.mutation(description="DRAFT to SUBMITTED, by the agency. Needs OPERATOR.")
    async def submit_budget(self, info: Info, pool_id: strawberry.ID, year: int) -> Budget:
        return await rb.step(info, str(pool_id), year, "SUBMITTED")  # type: ignore[return-value]

    @strawberry.mutation(description="SUBMITTED to REVIEWED, by the department. Needs BUDGET_REVIEWER.")
    async def review_budget(self, info: Info, pool_id: strawberry.ID, year: int) -> Budget:
        return await rb.step(info, str(pool_id), year, "REVIEWED")  # type: ignore[return-value]

    @strawberry.mutation(description="REVIEWED to APPROVED, by finance; the budget is then frozen. "
                                     "Needs BUDGET_APPROVER.")
    async def approve_budget(self, info: Info, pool_id: strawberry.ID, year: int) -> Budget:
        return await rb.step(info, str(pool_id), year, "APPROVED")  # type: ignore[return-value]

    @strawberry.mutation(description=(
        "Back to DRAFT with a reason: a SUBMITTED budget by BUDGET_REVIEWER, a REVIEWED one by BUDGET_APPROVER."))
    async def return_budget(self, info: Info, pool_id: strawberry.ID, year: int, reason: str) -> Budget:
        return await rb.give_back(info, str(pool_id), year, reason)  # type: ignore[return-value]


__all__ = ["BudgetQueries", "BudgetMutations", "JSON"]
