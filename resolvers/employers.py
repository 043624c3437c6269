"""Employers and their own contribution records: inside the token's scope only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from strawberry.types import Info
from tierfed.tiers.figures import SCHEMES
from tierfed.tiers.store import EmployerRec, EmployerSchemeRow
from tierfed.tiers.tree import RegionRec

from tierfed import codes
from tierfed.errors import bad_input

from .common import held_here_or_below
from .context import ctx
from .rollups import period_arg

Z = Decimal("0.00")


async def employer(info: Info, credit_code: str) -> Any:
    try:
        code = codes.credit_code(credit_code)
    except ValueError as e:
        raise bad_input(str(e), argument="creditCode") from None
    rec: EmployerRec | None = await ctx(info).loaders.employer.load(code)
    return await held_here_or_below(info, rec, rec.region_code if rec else None, "employers")


async def employer_region(root: EmployerRec, info: Info) -> RegionRec:
    return await ctx(info).loaders.region.load(root.region_code)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class EmployerTotalsRec:
    scheme: str
    employees: int
    contributor_months: int
    contribution_employer: Decimal
    contribution_individual: Decimal
    average_base: Decimal


async def contributions(root: EmployerRec, info: Info, start: object, end: object) -> list[EmployerTotalsRec]:
    f, t = period_arg(start, end)
    rows: dict[int, EmployerSchemeRow] = await ctx(info).loaders.employer_totals.load((root.credit_code, f, t))
    out = []
    for i, name in enumerate(SCHEMES):
        r = rows.get(i + 1)
        if r is None:
            out.append(EmployerTotalsRec(name, 0, 0, Z, Z, Z))
        else:
            out.append(EmployerTotalsRec(name, r.employees, r.contributor_months, r.employer, r.individual,
                                         codes.fen(r.base / r.contributor_months)))
    return out


__all__ = ["employer", "employer_region", "contributions", "date"]
