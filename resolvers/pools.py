"""Pools: which fund covers a region, and balances computed from the summaries."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from strawberry.types import Info
from tierfed.tiers.store import PoolRec
from tierfed.tiers.tree import RegionRec
from tierfed.tiers.vocabulary import POOL_ID_EXAMPLE, SCHEME_ID, pool_id_parts

from tierfed import codes
from tierfed.errors import bad_input

from . import changes
from .common import as_month, region_code
from .context import ctx


def parse_pool_id(value: str) -> str:
    """The region of a well-formed pool id."""
    parts = pool_id_parts(value)
    if parts is None:
        raise bad_input(f"pool id {value!r} is malformed: expected REGION-SCHEME-YYYYMM, e.g. {POOL_ID_EXAMPLE}",
                        argument="id")
    return parts[0]


async def pool(info: Info, id: str) -> PoolRec | None:
    """A pool this node holds, by id (also a gateway's _entities: a gateway routes to the holder)."""
    region = parse_pool_id(id)
    c = ctx(info)
    if region_code(info, region, must_exist=False) is None or not c.node.in_subtree(region) \
            or c.node.child_for(region) is not None:
        return None
    return await c.loaders.pool.load(id)  # type: ignore[no-any-return]



async def region_pool(root: RegionRec, info: Info, scheme: str, as_of: object | None) -> Any:
    c = ctx(info)
    if not c.node.in_subtree(root.code):
        return None
    at = as_month(as_of, "asOf") if as_of is not None else codes.current_month()
    rec: PoolRec | None = await c.loaders.pool_covering.load((root.code, SCHEME_ID[scheme], at))
    return rec


def level(root: PoolRec, info: Info) -> str:
    return ctx(info).node.tree.tier_name(root.region_code)


async def pool_region(root: PoolRec, info: Info) -> RegionRec:
    return await ctx(info).loaders.region.load(root.region_code)


async def opening_balance(root: PoolRec, info: Info) -> Decimal:
    if root.virtual:
        return root.opening_balance
    if root.held_by is not None:
        return await changes.remote_opening(info, root)
    local: Decimal = await ctx(info).loaders.pool_opening.load(root.id)
    return local + await changes.opening_beyond_node(info, root)


async def balance(root: PoolRec, info: Info, as_of: object | None) -> Decimal:
    at = as_month(as_of, "asOf") if as_of is not None else codes.current_month()
    return await balance_at(root, info, at)


async def balance_at(root: PoolRec, info: Info, at: date) -> Decimal:
    """The live opening balance plus every flow of the pool's months up to ``at``: pooled
    contributions less benefits, transfers in less out, booked fund flows' income less expenditure."""
    opening = await opening_balance(root, info)
    last = min(at, root.closed_after) if root.closed_after else at
    if last < root.opened_from:
        return opening
    s = await ctx(info).summary.load((root.region_code, root.opened_from, last, True))
    flow = sum((f.fund_flow for (m, sc), f in s.rows.items() if sc == root.scheme), Decimal("0.00"))
    return opening + flow


async def predecessors(root: PoolRec, info: Info) -> list[PoolRec]:
    if root.virtual:
        return list(root.predecessor_recs)
    if root.held_by is not None:
        return []  # asked of the node that holds it: pool(id: ...) { predecessors }
    local: list[PoolRec] = await ctx(info).loaders.pool_predecessors.load(root.id)
    return local + await changes.remote_predecessors(info, root)
