"""Argument checks and forwarding shared by the resolvers."""

from __future__ import annotations

from datetime import date
from typing import Any

from graphql import GraphQLList, GraphQLNonNull
from strawberry.types import Info
from tierfed.tiers.forward import field_piece
from tierfed.tiers.node import Child
from tierfed.tiers.remote import PLAN, Forwarded, wrap

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


async def forward(info: Info, child: Child, on_region: str | None = None) -> Any:
    """Ask ``child`` for the current field: a root field, or a field of region ``on_region``."""
    raw = info._raw_info
    text, used = field_piece(raw, keep_alias=on_region is not None)
    c = ctx(info)
    piece = f'region(code: "{on_region}") {{ {text} }}' if on_region else text
    data = await c.remote.forward(child, piece, used)
    if data is None and c.remote.mode == PLAN:
        return [] if _is_list(raw.return_type) else None
    if on_region is None or data is None:
        return data
    assert isinstance(data, Forwarded)
    return wrap(data.data.get(raw.path.key))


def _is_list(t: Any) -> bool:
    if isinstance(t, GraphQLNonNull):
        t = t.of_type
    return isinstance(t, GraphQLList)


async def first_found(info: Info, children: list[Child]) -> Any:
    """Ask every child for a root field whose holder is unknown; the first non-null answer wins."""
    for ch in children:
        got = await forward(info, ch)
        if got is not None:
            return got
    return None


def int_arg(args: dict[str, Any], key: str) -> int:
    """An integer field of an internal call's JSON argument."""
    value = args.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_input(f"{key} must be an integer", argument="args")
    return value
