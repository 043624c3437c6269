"""Fund accounts: the categories of a pooled fund's income and expenditure, and one pool's account."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Annotated, Protocol

import strawberry
from tierfed.resolvers import funds as fun
from tierfed.resolvers.funds import AccountRec, FlowRec
from tierfed.resolvers.report import CATEGORY_LABELS
from tierfed.tiers.figures import FUND_CATEGORIES
from tierfed.tiers.store import PoolRec

from .scalars import Decimal
from .types import own_period

if TYPE_CHECKING:
    from .types import Pool

if TYPE_CHECKING:
    class FundFlowCategory(Enum):
        """Its members are made at run time, from FUND_CATEGORIES."""
else:
    # Values from the one vocabulary (tiers/figures.py); their descriptions are in descriptions.py.
    FundFlowCategory = strawberry.enum(Enum("FundFlowCategory", {c: c for c in FUND_CATEGORIES}), description=(
        "Categories of a pooled fund's income and expenditure, as fund accounting books them."))


class Categorised(Protocol):
    """A record of one category (FlowRec, and the budgets' lines), stored by its name."""

    @property
    def category(self) -> str: ...


def category_of(root: strawberry.Parent[Categorised]) -> FundFlowCategory:
    """The resolver of a ``category`` field read from such a record."""
    return FundFlowCategory[root.category]


@strawberry.type
class FundFlow:
    @strawberry.field
    @staticmethod
    def category(root: strawberry.Parent[FlowRec]) -> FundFlowCategory:
        return category_of(root)

    amount: Decimal

    @strawberry.field(description="The category's name in Chinese, as the public fund report prints it.")
    @staticmethod
    def label(root: strawberry.Parent[FlowRec]) -> str:
        return CATEGORY_LABELS[root.category]


@strawberry.type(description=(
    "A pool's accounts over a period. Income and expenditure list every category of\n"
    "their side in enum order (CONTRIBUTIONS to OTHER_INCOME, BENEFITS to\n"
    "OTHER_EXPENDITURE), zeros included. closingBalance equals the pool's\n"
    "balance(asOf: period.to)."))
class FundAccount:
    @strawberry.field(graphql_type=Annotated["Pool", strawberry.lazy("tierfed.schema.types")])
    @staticmethod
    def pool(root: strawberry.Parent[AccountRec]) -> PoolRec:
        return root.pool

    period = strawberry.field(resolver=own_period)

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
