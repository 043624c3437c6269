"""The contract's scalars. Months are ``date`` (first of the month) inside; money is
``Decimal`` from CSV to SQL numeric to the GraphQL string, never a float."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as PyDecimal
from typing import TYPE_CHECKING, Any, NewType

import strawberry

from tierfed import codes


def _serialize_month(value: Any) -> str:
    if isinstance(value, date):
        return codes.month_str(value)
    if isinstance(value, str):  # a child node's answer, already serialised
        return value
    raise TypeError(f"not a month: {value!r}")


def _serialize_decimal(value: Any) -> str:
    if isinstance(value, PyDecimal):
        return codes.format_amount(value)
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return codes.format_amount(PyDecimal(value))
    raise TypeError(f"not a decimal: {value!r}")


def _parse_decimal(value: Any) -> PyDecimal:
    if not isinstance(value, str):
        raise ValueError("Decimal must be a string such as \"0.045\" or \"1234.50\", never a float")
    return codes.decimal(value)


if TYPE_CHECKING:  # to a type checker the scalars are the Python values they carry
    Month = date
    Decimal = PyDecimal
else:
    Month = strawberry.scalar(
        NewType("Month", date),
        name="Month",
        description='A calendar month, "YYYY-MM".',
        serialize=_serialize_month,
        parse_value=codes.month,
    )

    Decimal = strawberry.scalar(
        NewType("Decimal", PyDecimal),
        name="Decimal",
        description='An amount of yuan as a decimal string with exactly two fraction digits, e.g. "1234.50". Never a float.',
        serialize=_serialize_decimal,
        parse_value=_parse_decimal,
    )
