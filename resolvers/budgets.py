"""Fund budgets: drafts, the workflow's steps, the compiled budget of a region and its execution.

Every step goes to the node holding the pool (a parent answers with that node's
address, as for raisePoolingLevel); reads are answered anywhere above it (``budget`` is a
held field: the federation layer asks the child holding the pool). Who may take a step is
each field's rule in ``permissions.py``; a return's role depends on the stored state and
is asked there too (``permissions.step_role``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from strawberry.types import Info
from tierfed.tiers import budgetflow as flow
from tierfed.tiers import budgets as tb
from tierfed.tiers.budgetstore import BudgetRec, StepRec
from tierfed.tiers.figures import FUND_CATEGORIES, FUND_EXPENDITURE, FUND_INCOME, SCHEME_ID, SCHEMES, ZERO
from tierfed.tiers.store import PoolRec

from tierfed import codes
from tierfed.errors import Code, TierfedError, bad_input

from . import funds, permissions
from .common import as_month, int_arg, region_code, subtree_region, year_arg
from .context import ctx
from .pools import parse_pool_id
from .rollups import PeriodRec, period_arg

MAX_AMOUNT = Decimal("100000000000000")  # numeric(16, 2)
SHARE = Decimal("0.0001")


# ------------------------------------------------------------------ arguments


def amount_arg(value: Decimal, what: str) -> Decimal:
    """Yuan, fen exact: at most two fraction digits, not negative, within numeric(16, 2)."""
    if not isinstance(value, Decimal) or not value.is_finite():
        raise bad_input(f"{what} must be an amount such as \"1234.50\"", argument=what)
    exp = value.as_tuple().exponent
    if isinstance(exp, int) and exp < -2:
        raise bad_input(f"{what} {value} has {-exp} fraction digits: budget amounts are in yuan to the fen, "
                        f"at most two fraction digits", argument=what)
    if value < 0:
        raise bad_input(f"{what} {value} is negative: amounts are booked on their side (income or expenditure)",
                        argument=what)
    if value >= MAX_AMOUNT:
        raise bad_input(f"{what} {value} is too large: at most 99999999999999.99", argument=what)
    return value.quantize(Decimal("0.01"))


def percent_arg(value: Decimal, what: str) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise bad_input(f"{what} must be a percentage such as \"5.5\"", argument=what)
    exp = value.as_tuple().exponent
    if isinstance(exp, int) and exp < -2:
        raise bad_input(f"{what} {value} has more than two fraction digits", argument=what)
    if not Decimal(-100) <= value <= Decimal(1000):
        raise bad_input(f"{what} {value} is out of range: a growth between -100 and 1000 percent", argument=what)
    return value


def count_arg(value: int | None, what: str) -> int | None:
    if value is not None and not 0 <= value <= 2_000_000_000:
        raise bad_input(f"{what} must be between 0 and 2000000000, got {value}", argument=what)
    return value


def category_name(cat: Any) -> str:
    """A FundFlowCategory (the enum, or its name from a child's JSON)."""
    name = getattr(cat, "value", cat)
    if name not in FUND_CATEGORIES:
        raise bad_input(f"category {name!r} is not a FundFlowCategory: one of {', '.join(FUND_CATEGORIES)}",
                        argument="category")
    return str(name)


def lines_arg(lines: list[tuple[Any, Decimal]], what: str) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for cat, amount in lines:
        name = category_name(cat)
        if name in out:
            raise bad_input(f"{what}: category {name} is given twice", argument=what)
        out[name] = amount_arg(amount, f"{what} {name}")
    return out


@dataclass(frozen=True)
class Target:
    pool_id: str
    region: str
    year: int


def target(info: Info, pool_id: str, year: int, action: str) -> Target:
    """The budget a step acts on (its role and scope already checked by the field's rule, before
    any SQL): a budget held by a child node is changed there."""
    c = ctx(info)
    region = subtree_region(info, parse_pool_id(pool_id))
    year_arg(year)
    owner = c.node.child_for(region)
    if owner is not None:
        raise bad_input(f"pool {pool_id} is held by node '{owner.name}', not by this node '{c.node.name}': "
                        f"send {action} to {owner.url}", nodes=[owner.name])
    return Target(pool_id, region, year)


# ------------------------------------------------------------------ reads


async def budget(info: Info, pool_id: str, year: int) -> Any:
    """A budget of a pool this node holds (the layer asks the child holding any other)."""
    region = parse_pool_id(pool_id)
    c = ctx(info)
    year_arg(year)
    if region_code(info, region, must_exist=False) is None or not c.node.in_subtree(region):
        return None
    return await c.loaders.budget.load((pool_id, year))


async def history(root: BudgetRec, info: Info) -> list[StepRec]:
    return await ctx(info).loaders.budget_steps.load((root.pool_id, root.year))  # type: ignore[no-any-return]


async def budget_pool(root: BudgetRec, info: Info) -> PoolRec:
    return await ctx(info).loaders.pool.load(root.pool_id)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class LineRec:
    category: str
    amount: Decimal


def income(root: BudgetRec) -> list[LineRec]:
    return [LineRec(c, root.amount(c)) for c in FUND_INCOME]


def expenditure(root: BudgetRec) -> list[LineRec]:
    return [LineRec(c, root.amount(c)) for c in FUND_EXPENDITURE]


def total(root: BudgetRec, side: tuple[str, ...]) -> Decimal:
    return sum((root.amount(c) for c in side), ZERO)


# ------------------------------------------------------------------ compiled budgets


@dataclass(frozen=True, slots=True)
class PartRec:
    pool_id: str
    scheme: str
    region_code: str
    state: str | None


@dataclass(frozen=True, slots=True)
class StatesRec:
    """How far the parts have come: approved, waiting (drafted, not yet approved), not drafted."""

    pools: int
    approved: int
    waiting: int
    not_drafted: int


def states(parts: list[tb.Part]) -> StatesRec:
    return StatesRec(len(parts), sum(p.state == tb.FROZEN for p in parts),
                     sum(p.state in tb.WAITING for p in parts), sum(p.state is None for p in parts))


@dataclass(frozen=True, slots=True)
class SchemeBudgetRec:
    scheme: str
    income: list[LineRec]
    expenditure: list[LineRec]
    expected_insured: int
    expected_contributors: int
    expected_beneficiaries: int
    states: StatesRec

    @property
    def total_income(self) -> Decimal:
        return sum((x.amount for x in self.income), ZERO)

    @property
    def total_expenditure(self) -> Decimal:
        return sum((x.amount for x in self.expenditure), ZERO)

    @property
    def surplus(self) -> Decimal:
        return self.total_income - self.total_expenditure


@dataclass(frozen=True, slots=True)
class CompiledRec:
    region: str
    year: int
    only_approved: bool
    schemes: list[SchemeBudgetRec]
    states: StatesRec
    parts: list[PartRec]
    complete: bool
    missing: list[str]


def counted(p: tb.Part, only_approved: bool) -> bool:
    return p.state is not None and (p.state == tb.FROZEN or not only_approved)


def sum_lines(parts: list[tb.Part], cats: tuple[str, ...], only_approved: bool) -> list[LineRec]:
    return [LineRec(c, sum((p.lines.get(c, ZERO) for p in parts if counted(p, only_approved)), ZERO)) for c in cats]


async def _compile(info: Info, code: str, year: int, through: date | None, scheme: int | None = None) -> tb.Compiled:
    c = ctx(info)
    return await tb.compile_region(c.node, lambda r, y: c.loaders.budget_parts.load((r, y)), c.summary.load_many,
                                   c.remote, code, year, through, scheme)


async def compiled_budget(info: Info, region: str, year: int, schemes: list[str] | None,
                          only_approved: bool) -> CompiledRec:
    code = subtree_region(info, region)
    year_arg(year)
    got = await _compile(info, code, year, None)
    wanted = [s for s in SCHEMES if not schemes or s in schemes]
    parts = sorted((p for p in got.parts if SCHEMES[p.scheme - 1] in wanted), key=lambda p: p.pool_id)
    out = []
    for s in wanted:
        mine = [p for p in parts if p.scheme == SCHEME_ID[s]]
        kept = [p for p in mine if counted(p, only_approved)]
        out.append(SchemeBudgetRec(s, sum_lines(mine, FUND_INCOME, only_approved),
                                   sum_lines(mine, FUND_EXPENDITURE, only_approved),
                                   sum(p.expected[0] for p in kept), sum(p.expected[1] for p in kept),
                                   sum(p.expected[2] for p in kept), states(mine)))
    return CompiledRec(code, year, only_approved, out, states(parts),
                       [PartRec(p.pool_id, SCHEMES[p.scheme - 1], p.region_code, p.state) for p in parts],
                       got.complete, sorted(got.missing))


# ------------------------------------------------------------------ execution


@dataclass(frozen=True, slots=True)
class ExecutionLineRec:
    category: str
    budget: Decimal
    actual: Decimal
    actual_not_budgeted: Decimal

    @property
    def share(self) -> str | None:
        return share(self.actual, self.budget)


@dataclass(frozen=True, slots=True)
class ExecutionTotalRec:
    budget: Decimal
    actual: Decimal
    actual_not_budgeted: Decimal

    @property
    def share(self) -> str | None:
        return share(self.actual, self.budget)


def share(actual: Decimal, budget: Decimal) -> str | None:
    """actual / budget to four decimals, written with all four (the Decimal scalar writes a value
    that is a whole number of fen with two: "0.50"); None when nothing was budgeted."""
    return None if budget == 0 else f"{(actual / budget).quantize(SHARE, rounding=ROUND_HALF_UP):f}"


@dataclass(frozen=True, slots=True)
class ExecutionRec:
    region: str
    scheme: str
    month: date
    period: PeriodRec
    only_approved: bool
    income: list[ExecutionLineRec]
    expenditure: list[ExecutionLineRec]
    states: StatesRec
    complete: bool
    missing: list[str]

    @property
    def elapsed_share(self) -> str:
        return f"{(Decimal(self.month.month) / 12).quantize(SHARE, rounding=ROUND_HALF_UP):f}"  # as share()

    @property
    def total_income(self) -> ExecutionTotalRec:
        return _total(self.income)

    @property
    def total_expenditure(self) -> ExecutionTotalRec:
        return _total(self.expenditure)


def _total(lines: list[ExecutionLineRec]) -> ExecutionTotalRec:
    return ExecutionTotalRec(sum((x.budget for x in lines), ZERO), sum((x.actual for x in lines), ZERO),
                             sum((x.actual_not_budgeted for x in lines), ZERO))


async def budget_execution(info: Info, region: str, scheme: str, month: object, only_approved: bool) -> ExecutionRec:
    """Actual flows of the year to ``month`` against the year's budget, by category, over the
    pools of the scheme inside the region: the actual of the pools whose budget is counted against
    that budget, and apart, the actual of the pools without one (so a missing draft never
    inflates the share executed)."""
    code = subtree_region(info, region)
    at = as_month(month, "month")
    year = year_arg(at.year)
    got = await _compile(info, code, year, at, SCHEME_ID[scheme])
    mine = [p for p in got.parts if p.scheme == SCHEME_ID[scheme]]

    def line(cat: str) -> ExecutionLineRec:
        budgeted = sum((p.lines.get(cat, ZERO) for p in mine if counted(p, only_approved)), ZERO)
        actual = sum(((p.actual or {}).get(cat, ZERO) for p in mine if counted(p, only_approved)), ZERO)
        rest = sum(((p.actual or {}).get(cat, ZERO) for p in mine if not counted(p, only_approved)), ZERO)
        return ExecutionLineRec(cat, budgeted, actual, rest)

    return ExecutionRec(code, scheme, at, PeriodRec(date(year, 1, 1), at), only_approved,
                        [line(x) for x in FUND_INCOME], [line(x) for x in FUND_EXPENDITURE], states(mine),
                        got.complete, sorted(got.missing))


async def answer_calls(info: Info, args: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A parent's budget calls, for this node's subtree (each region's scope checked as an
    internal call's region is, ``permissions.call_region``)."""
    out = []
    for a in args:
        code = permissions.call_region(info, a.get("region", ""), "budgets")
        year = year_arg(int_arg(a, "year"))
        through = a.get("through")
        at = as_month(through, "through") if through is not None else None
        if at is not None and at.year != year:
            raise bad_input("through must be a month of the year", argument="args")
        scheme = a.get("scheme")
        if scheme is not None and (not isinstance(scheme, int) or isinstance(scheme, bool) or not 1 <= scheme <= 5):
            raise bad_input("scheme must be 1 to 5 or null", argument="args")
        out.append((await _compile(info, code, year, at, scheme)).to_json())
    return out


# ------------------------------------------------------------------ the workflow


async def _pool_open_in(info: Info, t: Target) -> PoolRec:
    """The pool a new draft starts from, refused early when it does not cover the year (before
    its accounts are read); every step checks again in its transaction, under the pool's row
    lock (``budgetflow``), as a raise may close the pool meanwhile."""
    pool: PoolRec | None = await ctx(info).loaders.pool.load(t.pool_id)
    if pool is None:
        raise bad_input(f"pool {t.pool_id} does not exist on this node", argument="poolId")
    if not tb.covers(pool.opened_from, pool.closed_after, t.year):
        raise bad_input(tb.not_covered(t.pool_id, pool.opened_from, pool.closed_after, t.year), argument="year")
    return pool


async def start(info: Info, pool_id: str, year: int, base_from: object | None, base_to: object | None,
                growth: list[tuple[Any, Decimal]], headcount_growth: Decimal | None) -> BudgetRec:
    """A new draft: zeros, or the base period's accounts annualised, each category grown by its
    stated percentage (fen, half up); expected headcounts from the base period's last month."""
    t = target(info, pool_id, year, "startBudget")
    grow = {name: percent_arg(p, f"growth {name}") for name, p in
            ((category_name(cat), p) for cat, p in growth)}
    if len(grow) != len(growth):
        raise bad_input("growth: a category is given twice", argument="growth")
    hc = percent_arg(headcount_growth, "headcountGrowth") if headcount_growth is not None else Decimal(0)
    if (base_from is None) != (base_to is None):
        raise bad_input("basePeriod needs both from and to", argument="basePeriod")
    if base_from is None and (grow or headcount_growth is not None):
        raise bad_input("growth assumptions apply to a basePeriod's accounts: give basePeriod too",
                        argument="growth")
    pool = await _pool_open_in(info, t)
    lines: dict[str, Decimal] = {}
    expected = (0, 0, 0)
    basis: dict[str, Any] | None = None
    if base_from is not None:
        first, last = period_arg(base_from, base_to)
        account = await funds.account(pool, info, first, last)
        months = len(codes.months(first, last))
        for f in (*account.income, *account.expenditure):
            yearly = f.amount * 12 / months * (1 + grow.get(f.category, Decimal(0)) / 100)
            lines[f.category] = codes.fen(yearly)
        s = await ctx(info).summary.load((pool.region_code, first, last, True))
        if not s.complete:
            # A base missing a child node's records would be a wrong draft: write none.
            raise TierfedError(Code.TIER_UNAVAILABLE, f"the accounts of pool {t.pool_id} over the base period "
                               f"could not be read whole (no answer for {', '.join(sorted(s.missing))}): "
                               "nothing was written; try again when the node is back", regions=sorted(s.missing))
        lastf = s.rows.get((last, pool.scheme))
        total_months = sum((f.contributions for (m, sc), f in s.rows.items() if sc == pool.scheme), 0)
        factor = 1 + hc / 100

        def grown(n: Decimal) -> int:
            return int((n * factor).quantize(Decimal(1), rounding=ROUND_HALF_UP))

        expected = (grown(Decimal(lastf.contributions if lastf else 0)), grown(Decimal(total_months) / months),
                    grown(Decimal(lastf.benefits if lastf else 0)))
        basis = {"from": codes.month_str(first), "to": codes.month_str(last),
                 "growth": {k: str(v) for k, v in grow.items()}, "headcountGrowth": str(hc)}
    rec = BudgetRec(t.pool_id, t.year, pool.scheme, pool.region_code, "DRAFT", *expected, basis, None,
                    {k: v for k, v in lines.items() if v != 0})
    return _written(info, await flow.create(ctx(info).store.pool, rec, _who(info)))


async def edit(info: Info, pool_id: str, year: int, lines: list[tuple[Any, Decimal]],
               expected: tuple[int | None, int | None, int | None]) -> BudgetRec:
    """New amounts for the categories given (others unchanged) and headcounts; only a DRAFT."""
    t = target(info, pool_id, year, "editBudget")
    new = lines_arg(lines, "lines")
    for n, v in zip(flow.HEADCOUNTS, expected):
        count_arg(v, n)
    if not new and all(v is None for v in expected):
        raise bad_input("editBudget changes nothing: give lines or expected headcounts", argument="input")
    return _written(info, await flow.edit(ctx(info).store.pool, t.pool_id, t.year, new, expected, _who(info)))


async def step(info: Info, pool_id: str, year: int, to: str) -> BudgetRec:
    """SUBMITTED, REVIEWED or APPROVED: the next state, by its role, from the state before it."""
    action = {"SUBMITTED": "submitBudget", "REVIEWED": "reviewBudget", "APPROVED": "approveBudget"}[to]
    t = target(info, pool_id, year, action)
    return _written(info, await flow.advance(ctx(info).store.pool, t.pool_id, t.year, to, action, _who(info)))


async def give_back(info: Info, pool_id: str, year: int, reason: str) -> BudgetRec:
    """RETURNED to DRAFT with a reason: a SUBMITTED budget by its reviewer, a REVIEWED one by its approver."""
    t = target(info, pool_id, year, "returnBudget")
    why = (reason or "").strip()
    if not why or len(why) > 2000:
        raise bad_input("reason must say why, in 1 to 2000 characters", argument="reason")
    return _written(info, await flow.give_back(ctx(info).store.pool, t.pool_id, t.year, why, _who(info),
                                               lambda role, action: permissions.step_role(info, role, action)))


def _written(info: Info, rec: BudgetRec) -> BudgetRec:
    """A step was written: this request's loaders forget the budget and its history, so that a
    later field of the same request (mutations run one after another) reads them anew."""
    loaders = ctx(info).loaders
    for name in ("budget", "budget_steps"):
        getattr(loaders, name).clear((rec.pool_id, rec.year))
    return rec


def _who(info: Info) -> flow.Who:
    c = ctx(info)
    return flow.Who(c.caller.sub, sorted(c.caller.roles))

