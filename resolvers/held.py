"""Which fields are answered where a region's records live: the one declaration the
federation layer (``tiers.layer``) reads. A field listed here is asked of the child node
holding the region its ``where`` names; its resolver runs only for regions this node holds.

To make a field of a region answered by the child that holds the region, add it here;
the types below it read the child's answer by themselves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from graphql import GraphQLResolveInfo
from tierfed.tiers.figures import SCHEMES
from tierfed.tiers.layer import ANY_CHILD, AnyChild, Held, Where

from tierfed import codes
from tierfed.errors import bad_input

from . import report, rollups
from .pools import parse_pool_id


async def root_region(root: Any, info: GraphQLResolveInfo, args: dict[str, Any]) -> str:
    """The region object the field hangs below."""
    return str(root.code)


RegionOf = Callable[[Any, GraphQLResolveInfo, dict[str, Any]], Awaitable["str | None"]]


def pool_region_of(argument: str) -> RegionOf:
    """The region the pool id of argument ``argument`` names, when inside this node's subtree
    (checked: a malformed id is the caller's error); None otherwise (the field answers null)."""

    async def where(root: Any, info: GraphQLResolveInfo, args: dict[str, Any]) -> str | None:
        region = parse_pool_id(args[argument])
        node = info.context.node
        return region if region in node.tree and node.in_subtree(region) else None

    return where


pool_region = pool_region_of("id")


def region_arg(argument: str) -> Where:
    """The region argument ``argument`` names (checked by the field's permission rule first)."""

    async def where(root: Any, info: GraphQLResolveInfo, args: dict[str, Any]) -> str | None:
        return str(args[argument])

    return where


async def budget_region(root: Any, info: GraphQLResolveInfo, args: dict[str, Any]) -> str | None:
    """The region of the pool a budget belongs to (checked as pool_region)."""
    return await pool_region(root, info, {"id": args["poolId"]})


async def agency_region(root: Any, info: GraphQLResolveInfo, args: dict[str, Any]) -> str | AnyChild | None:
    """The region of an agency this node's directory knows; any child's, when it knows none."""
    try:
        codes.agency_code(args["code"])
    except ValueError as e:
        raise bad_input(str(e), argument="code") from None
    rec = await info.context.loaders.agency.load(args["code"])
    return ANY_CHILD if rec is None else rec.region_code


def moved_region(attribute: str) -> Where:
    """A transfer's origin or destination region (``attribute`` of the scheme moved), when the
    caller may see it; otherwise the field answers here (null)."""

    async def where(root: Any, info: GraphQLResolveInfo, args: dict[str, Any]) -> str | None:
        region = str(getattr(root, attribute))
        c = info.context
        return region if c.node.in_subtree(region) and c.access.may(region) else None

    return where


def pool_of_moved(root: Any, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The pool a transfer's pooled fund left or entered: the region's pool of the scheme in the
    transfer's first month."""
    return "pool", {"scheme": SCHEMES[root.scheme - 1], "asOf": codes.month_str(root.month)}


# Figures computed from summaries, which the planning pass only loads (so that the children's
# parts are asked for) without computing them twice.
DEFERRED = {"Rollup.totals": rollups.summary_of, "Rollup.byMonth": rollups.monthly_summary_of}

HELD: dict[str, Held] = {
    "Region.pool": Held(root_region, on_region=True),
    "Region.agencies": Held(root_region, on_region=True),
    "Query.pool": Held(pool_region),
    "Query.agency": Held(agency_region),
    "Query.budget": Held(budget_region),
    "Query.fundReport": Held(region_arg("region"), unavailable=report.unavailable_report),
    "TransferredScheme.fromPool": Held(moved_region("from_region"), on_region=True, as_region_field=pool_of_moved,
                                       refused_as_null=True),
    "TransferredScheme.toPool": Held(moved_region("to_region"), on_region=True, as_region_field=pool_of_moved,
                                       refused_as_null=True),
}

# A gateway's _entities: the entity types whose references a child may hold, each with the held
# root field that finds one and its key (a pool is Query.pool's answer, wherever it is held).
ENTITIES: dict[str, tuple[str, str]] = {"Pool": ("Query.pool", "id")}
