"""Employers and their own contribution records, wherever in the federation they are
registered (``tiers.employers``): inside the token's scope only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from strawberry.types import Info
from tierfed.tiers.employers import EmployerFound, EmployerTotals
from tierfed.tiers.figures import SCHEMES
from tierfed.tiers.store import EmployerRec
from tierfed.tiers.tree import RegionRec

from tierfed import codes
from tierfed.errors import bad_input, forbidden

from .context import ctx
from .rollups import period_arg

Z = Decimal("0.00")


@dataclass(frozen=True, slots=True)
class EmployerView:
    credit_code: str
    name: str
    region_code: str
    industry_risk_class: int
    missing: tuple[str, ...] = ()


async def employer(info: Info, credit_code: str) -> Any:
    try:
        code = codes.credit_code(credit_code)
    except ValueError as e:
        raise bad_input(str(e), argument="creditCode") from None
    c = ctx(info)
    found: EmployerFound | None = await c.employers.employer.load(code)
    if found is None:  # planning: a stand-in, so that the fields below say what they need
        return EmployerView(code, "", c.node.region, 1)
    if found.best is None:
        if found.hidden:
            raise forbidden(f"employer {code} is registered outside your token's scope {c.caller.scope}",
                            scope=c.caller.scope)
        return None
    b: EmployerRec = found.best
    return EmployerView(b.credit_code, b.name, b.region_code, b.industry_risk_class, tuple(found.missing))


async def employer_region(root: EmployerView, info: Info) -> RegionRec:
    return await ctx(info).loaders.region.load(root.region_code)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class EmployerTotalsRec:
    scheme: str
    employees: int
    contributor_months: int
    contribution_employer: Decimal
    contribution_individual: Decimal
    average_base: Decimal


async def contributions(root: EmployerView, info: Info, start: object, end: object) -> list[EmployerTotalsRec]:
    f, t = period_arg(start, end)
    totals: EmployerTotals = await ctx(info).employers.totals.load((root.credit_code, f, t)) or EmployerTotals()
    out = []
    for i, name in enumerate(SCHEMES):
        r = totals.rows.get(i + 1)
        if r is None:
            out.append(EmployerTotalsRec(name, 0, 0, Z, Z, Z))
        else:
            out.append(EmployerTotalsRec(name, r.employees, r.contributor_months, r.employer, r.individual,
                                         codes.fen(r.base / r.contributor_months)))
    return out


__all__ = ["employer", "employer_region", "contributions", "date"]
