"""Persons and their personal rights records, wherever in the federation their months are
held (``tiers.persons``): inside the token's scope only; ID numbers masked unless the
caller holds PII_READER, and every unmasked read audited."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strawberry.types import Info
from tierfed.tiers.figures import SCHEMES
from tierfed.tiers.persons import Found, YearParts, statement_rows
from tierfed.tiers.store import StatementRow
from tierfed.tiers.tree import RegionRec

from tierfed import codes
from tierfed.errors import bad_input, forbidden

from .common import year_arg
from .context import ctx


@dataclass(frozen=True, slots=True)
class PersonView:
    """A person as the caller may see them: the registration where their latest record is,
    and the regions of the child nodes that hold part of them and did not answer."""

    id_number: str
    name: str
    region_code: str
    missing: tuple[str, ...] = ()
    transfers: tuple[Any, ...] = ()  # tiers.transferstore.TransferRec, oldest first


@dataclass(frozen=True, slots=True)
class StatementRec:
    year: int
    schemes: list[StatementRow]
    missing: tuple[str, ...] = ()


def scheme_name(row: StatementRow) -> str:
    return SCHEMES[row.scheme - 1]


def id_arg(id_number: str, argument: str = "idNumber") -> str:
    try:
        return codes.id_number(id_number)
    except ValueError as e:
        raise bad_input(str(e), argument=argument) from None


def view(info: Info, idn: str, found: Found | None) -> PersonView | None:
    """The person from what the subtree knows; FORBIDDEN when registered only outside the scope."""
    c = ctx(info)
    if found is None:
        # Planning a query whose answer depends on children: a stand-in, so that the
        # fields below it say what they will need.
        return PersonView(idn, "", c.node.region)
    if found.best is None:
        if found.hidden:
            raise forbidden(f"person {codes.mask_id(idn)} is registered outside your token's scope "
                            f"{c.caller.scope}", scope=c.caller.scope)
        return None
    moved = found.ordered_transfers()
    now = found.region_now() or found.best.region_code
    region = now if c.access.may(now) else found.best.region_code
    return PersonView(idn, found.best.name, region, tuple(found.missing), tuple(moved))


async def person(info: Info, id_number: str) -> Any:
    idn = id_arg(id_number)
    return view(info, idn, await ctx(info).persons.person.load(idn))


def id_number(root: PersonView, info: Info) -> str:
    c = ctx(info)
    if c.access.pii:
        c.pii_reads.append((root.id_number, c.operation_name or "anonymous"))
        return root.id_number
    return codes.mask_id(root.id_number)


def directory_region(info: Info, code: str) -> RegionRec:
    """A region of the division tree every node holds in memory: for the regions a person or a
    duplicate names, no SQL (the tree is reloaded when the directory changes)."""
    return ctx(info).node.tree.by_code[code]


async def person_region(root: PersonView, info: Info) -> RegionRec:
    return directory_region(info, root.region_code)


async def missing_regions(info: Info, missing: tuple[str, ...]) -> list[RegionRec]:
    return [directory_region(info, code) for code in missing]


async def statement(root: PersonView, info: Info, year: int) -> StatementRec:
    year_arg(year)
    y = await ctx(info).persons.year.load((root.id_number, year))
    y = y or YearParts()  # None while planning
    return StatementRec(year, statement_rows(y, len(SCHEMES)), tuple(y.missing))
