"""Rollups: totals over a region's subtree, wherever in the federation its records are held."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from strawberry.types import Info
from tierfed.tiers.figures import SCHEMES, SchemeTotal, Summary, totals
from tierfed.tiers.tree import RegionRec

from tierfed import codes
from tierfed.errors import bad_input

from .common import as_month
from .context import ctx


@dataclass(frozen=True, slots=True)
class RollupRec:
    region: str
    first: date
    last: date
    schemes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PeriodRec:
    from_: date
    to: date


@dataclass(frozen=True, slots=True)
class MonthTotalsRec:
    month: date
    totals: list[SchemeTotal]


def period_arg(start: object, end: object) -> tuple[date, date]:
    f, t = as_month(start, "period.from"), as_month(end, "period.to")
    if t < f:
        raise bad_input(f"period is empty: 'to' ({codes.month_str(t)}) is before 'from' ({codes.month_str(f)})",
                        argument="period")
    if len(codes.months(f, t)) > 120:
        raise bad_input("period is longer than 120 months: ask for at most ten years", argument="period")
    return f, t


def rollup(info: Info, region: str, start: object, end: object, schemes: list[str] | None) -> RollupRec:
    code = region  # checked by its rule (resolvers/permissions.py)
    f, t = period_arg(start, end)
    wanted = tuple(s for s in SCHEMES if schemes is None or s in schemes) if schemes else SCHEMES
    return RollupRec(code, f, t, wanted)


async def _summary(root: RollupRec, info: Info, compact: bool = True) -> Summary:
    return await ctx(info).summary.load((root.region, root.first, root.last, compact))  # type: ignore[no-any-return]


async def summary_of(root: RollupRec, info: Info) -> Summary:
    return await _summary(root, info)


async def monthly_summary_of(root: RollupRec, info: Info) -> Summary:
    return await _summary(root, info, compact=False)


async def rollup_region(root: RollupRec, info: Info) -> RegionRec:
    return await ctx(info).loaders.region.load(root.region)


async def complete(root: RollupRec, info: Info) -> bool:
    return (await _summary(root, info)).complete


async def missing(root: RollupRec, info: Info) -> list[RegionRec]:
    s = await _summary(root, info)
    return [r for r in await ctx(info).loaders.region.load_many(sorted(s.missing)) if r is not None]


async def rollup_totals(root: RollupRec, info: Info) -> list[SchemeTotal]:
    s = await _summary(root, info)
    return totals(s, [root.first, root.last] if root.first != root.last else [root.last], list(root.schemes))


def by_child(root: RollupRec, info: Info) -> list[RollupRec]:
    kids = ctx(info).node.tree.kids(root.region)
    return [RollupRec(k, root.first, root.last, root.schemes) for k in kids]


async def by_month(root: RollupRec, info: Info) -> list[MonthTotalsRec]:
    s = await _summary(root, info, compact=False)
    return [MonthTotalsRec(m, totals(s, [m], list(root.schemes))) for m in codes.months(root.first, root.last)]
