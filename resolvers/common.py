"""Argument checks shared by the resolvers."""

from __future__ import annotations

from datetime import date
from typing import Any

from strawberry.types import Info

from tierfed import codes
from tierfed.errors import bad_input

from .context import ctx


def region_code(info: Info, code: str, *, must_exist: bool = True) -> str | None:
    """A well-formed code inside this node's subtree; None for a well-formed unknown code when allowed."""
    try:
        codes.region_code(code)
    except ValueError as e:
        raise bad_input(str(e), argument="region") from None
    node = ctx(info).node
    if code not in node.tree:
        if must_exist:
            raise bad_input(f"region {code} names no region in the division tree", argument="region")
        return None
    return code


def subtree_region(info: Info, code: str) -> str:
    """A known region inside the subtree this node answers for."""
    region_code(info, code)
    node = ctx(info).node
    if not node.in_subtree(code):
        raise bad_input(f"region {code} is outside this node's subtree {node.region}: ask the node that holds it",
                        argument="region")
    return code


def as_month(value: Any, argument: str) -> date:
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise bad_input(f"{argument} must be a month written YYYY-MM", argument=argument)
    try:
        return codes.month(value)
    except ValueError as e:
        raise bad_input(str(e), argument=argument) from None


def year_arg(year: int) -> int:
    if not 1990 <= year <= 2100:
        raise bad_input(f"year {year} is out of range: expected 1990 to 2100", argument="year")
    return year


def int_arg(args: dict[str, Any], key: str) -> int:
    """An integer field of an internal call's JSON argument."""
    value = args.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_input(f"{key} must be an integer", argument="args")
    return value
