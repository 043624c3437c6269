"""Fund accounts: a pool's income and expenditure by category over a period, read from
the same summaries as its balance (records, insurance transfers and booked fund flows)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from strawberry.types import Info
from tierfed.tiers.figures import FUND_EXPENDITURE, FUND_INCOME, ZERO, Figures
from tierfed.tiers.store import PoolRec

from tierfed import codes
from tierfed.errors import bad_input

from . import pools
from .context import ctx
from .rollups import PeriodRec, period_arg

CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class FlowRec:
    category: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class AccountRec:
    pool: PoolRec
    period: PeriodRec
    opening_balance: Decimal
    income: list[FlowRec]
    expenditure: list[FlowRec]
    closing_balance: Decimal
    months: int

    @property
    def total_income(self) -> Decimal:
        return sum((f.amount for f in self.income), ZERO)

    @property
    def total_expenditure(self) -> Decimal:
        return sum((f.amount for f in self.expenditure), ZERO)

    @property
    def surplus(self) -> Decimal:
        return self.total_income - self.total_expenditure

    @property
    def months_of_payment(self) -> Decimal | None:
        """closingBalance / (totalExpenditure / months), to two decimals; None when nothing was spent."""
        spent = self.total_expenditure
        if spent == 0:
            return None
        return (self.closing_balance * self.months / spent).quantize(CENT, rounding=ROUND_HALF_UP)


def within_pool(root: PoolRec, first: date, last: date) -> None:
    """BAD_USER_INPUT unless the period lies inside the months the pool covers."""
    end = root.closed_after or codes.current_month()
    if first < root.opened_from or last > end:
        raise bad_input(f"period {codes.month_str(first)}..{codes.month_str(last)} is not inside the months pool "
                        f"{root.id} covers ({codes.month_str(root.opened_from)}..{codes.month_str(end)})",
                        argument="period")


async def account(root: PoolRec, info: Info, start: object, end: object) -> AccountRec:
    """The pool's account over a period: the opening balance at the month before it, the period's
    flows by category from the pool region's summaries, and the balance at its last month."""
    first, last = period_arg(start, end)
    within_pool(root, first, last)
    opening = await pools.balance_at(root, info, codes.add_months(first, -1))
    s = await ctx(info).summary.load((root.region_code, first, last, True))
    acc = Figures()
    for (_, scheme), f in s.rows.items():
        if scheme == root.scheme:
            acc.add(f)
    closing = await pools.balance_at(root, info, last)
    return AccountRec(root, PeriodRec(first, last), opening,
                      [FlowRec(c, acc.category(c)) for c in FUND_INCOME],
                      [FlowRec(c, acc.category(c)) for c in FUND_EXPENDITURE],
                      closing, len(codes.months(first, last)))
