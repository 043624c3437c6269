"""Region, Agency and the directory queries: open to any valid token."""

from __future__ import annotations

from typing import Any

from strawberry.types import Info
from tierfed.tiers.store import AgencyRec
from tierfed.tiers.tree import NATION, RegionRec
from tierfed.tiers.vocabulary import DEPARTMENT_ID

from tierfed import codes
from tierfed.errors import bad_input

from .common import region_code
from .context import ctx


async def nation(info: Info) -> RegionRec:
    return await ctx(info).loaders.region.load(NATION)


async def region(info: Info, code: str) -> RegionRec | None:
    if region_code(info, code, must_exist=False) is None:
        return None
    return await ctx(info).loaders.region.load(code)


async def parent(root: RegionRec, info: Info) -> RegionRec | None:
    return None if root.parent_code is None else await ctx(info).loaders.region.load(root.parent_code)


async def children(root: RegionRec, info: Info) -> list[RegionRec]:
    c = ctx(info)
    return [r for r in await c.loaders.region.load_many(list(c.node.tree.kids(root.code))) if r is not None]


async def ancestors(root: RegionRec, info: Info) -> list[RegionRec]:
    return [r for r in await ctx(info).loaders.region.load_many(list(root.ancestors)) if r is not None]


async def region_agencies(root: RegionRec, info: Info, department: str | None) -> Any:
    recs = await ctx(info).loaders.agencies_by_region.load(root.code)
    if department is None:
        return recs
    return [a for a in recs if a.department == DEPARTMENT_ID[department]]


async def agency(info: Info, code: str) -> AgencyRec | None:
    """An agency by code, from the directory this node holds (checked): also a gateway's _entities."""
    try:
        codes.agency_code(code)
    except ValueError as e:
        raise bad_input(str(e), argument="code") from None
    return await ctx(info).loaders.agency.load(code)  # type: ignore[no-any-return]



async def agency_region(root: AgencyRec, info: Info) -> RegionRec:
    return await ctx(info).loaders.region.load(root.region_code)


async def agency_parent(root: AgencyRec, info: Info) -> AgencyRec | None:
    return None if root.parent_code is None else await ctx(info).loaders.agency.load(root.parent_code)


async def agency_children(root: AgencyRec, info: Info) -> list[AgencyRec]:
    return await ctx(info).loaders.agencies_by_parent.load(root.code)
