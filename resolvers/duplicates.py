"""Insurance paid twice (``tiers.duplicates``): inside the token's scope; persons as for
``person`` (masked ID numbers unless PII_READER, unmasked reads audited)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from strawberry.types import Info
from tierfed.tiers.duplicates import Duplicates
from tierfed.tiers.figures import SCHEMES

from tierfed.errors import bad_input

from .common import int_arg
from .context import ctx
from .permissions import call_region
from .persons import PersonView
from .rollups import period_arg

MAX_FIRST = 1000


@dataclass(frozen=True, slots=True)
class DuplicateRec:
    person: PersonView
    scheme: str
    month: date
    region_codes: tuple[str, ...]


def finder(info: Info) -> Duplicates:
    c = ctx(info)
    return Duplicates(c.node, c.store, c.remote, c.runtime.index.is_current)


def first_arg(first: int) -> int:
    if not 1 <= first <= MAX_FIRST:
        raise bad_input(f"first must be between 1 and {MAX_FIRST}, got {first}", argument="first")
    return first


async def duplicate_insurance(info: Info, region: str, start: object, end: object, first: int) -> list[DuplicateRec]:
    code = region  # checked by its rule (resolvers/permissions.py)
    f, t = period_arg(start, end)
    found = await finder(info).find(code, f, t, first_arg(first))
    if found is None:  # planning
        return []
    # The person as registered where the first listed record was handled.
    return [DuplicateRec(PersonView(d.id_number, d.name, d.regions[0], tuple(found.missing)), SCHEMES[d.scheme - 1],
                         d.month, d.regions) for d in found.duplicates]


async def answer_calls(info: Info, args: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A parent's duplicate calls, for this node's subtree."""
    from .persons import id_arg

    calls = []
    for a in args:
        code = call_region(info, a.get("region", ""), "duplicate insurance records")
        f, t = period_arg(a.get("from"), a.get("to"))
        ids = a.get("ids")
        if not isinstance(ids, list):
            raise bad_input("duplicates needs ids, a list of ID numbers", argument="args")
        calls.append((code, f, t, first_arg(int_arg(a, "first")), tuple(id_arg(str(i), "args") for i in ids)))
        # The answer names persons by their whole ID numbers: only for the node above, which
        # merges them with its other parts' and masks and audits them for its caller.
        ctx(info).access.from_node_above(ctx(info).node.name, code, "the duplicates internal call")
    out = []
    for code, f, t, first, ids in calls:
        found = await finder(info).find(code, f, t, first, ids)
        out.append(found.to_json() if found else {"duplicates": [], "months": [], "missing": []})
    return out
