"""Fund accounts: the categories of a pooled fund's income and expenditure, and one pool's account."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry
from tierfed.resolvers import funds as fun
from tierfed.tiers.figures import FUND_CATEGORIES

from .scalars import Decimal
from .types import Period

if TYPE_CHECKING:
    from .types import Pool

# Values from the one vocabulary (tiers/figures.py); their descriptions are in descriptions.py.
_CATEGORIES = Enum("FundFlowCategory", {c: c for c in FUND_CATEGORIES})  # type: ignore[misc]
FundFlowCategory = strawberry.enum(_CATEGORIES, description=(  # type: ignore[call-overload]
    "Categories of a pooled fund's income and expenditure, as fund accounting books them."))


@strawberry.type
class FundFlow:
    @strawberry.field
    def category(self) -> FundFlowCategory:  # type: ignore[valid-type]
        return FundFlowCategory[self.category]  # type: ignore[attr-defined,no-any-return,misc]

    amount: Decimal


@strawberry.type(description=(
    "A pool's accounts over a period. Income and expenditure list every category of\n"
    "their side in enum order (CONTRIBUTIONS to OTHER_INCOME, BENEFITS to\n"
    "OTHER_EXPENDITURE), zeros included. closingBalance equals the pool's\n"
    "balance(asOf: period.to)."))
class FundAccount:
    @strawberry.field
    def pool(self) -> Annotated[Pool, strawberry.lazy("tierfed.schema.types")]:
        return self.pool  # type: ignore[return-value]

    @strawberry.field
    def period(self) -> Period:
        return Period(from_=self.period.from_, to=self.period.to)  # type: ignore[attr-defined]

    opening_balance: Decimal = strawberry.field(description=(
        "The balance at the end of the month before period.from (the pool's openingBalance when it opened in "
        "the period)."))
    income: list[FundFlow]
    expenditure: list[FundFlow]
    total_income: Decimal
    total_expenditure: Decimal
    surplus: Decimal = strawberry.field(description="totalIncome - totalExpenditure.")
    closing_balance: Decimal
    months_of_payment: Decimal | None = strawberry.field(description=(
        "closingBalance / (totalExpenditure / months of the period), to two decimals; null when nothing was spent."))

    @classmethod
    def is_type_of(cls, obj: object, info: object) -> bool:
        return isinstance(obj, fun.AccountRec)
