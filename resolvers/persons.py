"""Persons and their personal rights records: inside the token's scope only; ID numbers
masked unless the caller holds PII_READER, and every unmasked read audited."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from strawberry.types import Info
from tierfed.tiers.figures import SCHEMES
from tierfed.tiers.store import PersonRec, StatementRow
from tierfed.tiers.tree import RegionRec

from tierfed import codes
from tierfed.errors import bad_input

from .common import held_here_or_below, year_arg
from .context import ctx

Z = Decimal("0.00")


@dataclass(frozen=True, slots=True)
class StatementRec:
    year: int
    schemes: list[StatementRow]


def scheme_name(row: StatementRow) -> str:
    return SCHEMES[row.scheme - 1]


async def person(info: Info, id_number: str) -> Any:
    try:
        idn = codes.id_number(id_number)
    except ValueError as e:
        raise bad_input(str(e), argument="idNumber") from None
    rec: PersonRec | None = await ctx(info).loaders.person.load(idn)
    return await held_here_or_below(info, rec, rec.region_code if rec else None, "persons")


def id_number(root: PersonRec, info: Info) -> str:
    c = ctx(info)
    if c.access.pii:
        c.pii_reads.append((root.id_number, c.operation_name or "anonymous"))
        return root.id_number
    return codes.mask_id(root.id_number)


async def person_region(root: PersonRec, info: Info) -> RegionRec:
    return await ctx(info).loaders.region.load(root.region_code)


async def statement(root: PersonRec, info: Info, year: int) -> StatementRec:
    year_arg(year)
    rows: dict[int, StatementRow] = await ctx(info).loaders.statement.load((root.id_number, year))
    return StatementRec(year, [rows.get(i + 1) or StatementRow(i + 1, 0, Z, Z, Z, Z) for i in range(len(SCHEMES))])

