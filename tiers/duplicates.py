"""Insurance paid twice: persons with contribution records of one scheme and month in two
or more regions of a subtree, wherever in the federation those records are held.

Within one node a person has at most one record per scheme and month, so a
duplicate always spans two parts of the federation. No record moves to find
them: the person index already knows who is held by two or more parts of a
node's subtree (its own database, its children). Only for those candidates does
each part send, per scheme and region, the months it holds; a child adds the
duplicates found inside its own subtree, the same way, one level down. Each
child is asked once per operation.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from tierfed.codes import month_str

from . import person_store
from .figures import SCHEMES
from .node import Child, Node
from .remote import ChildFailed, RemoteCalls
from .store import Store


@dataclass(frozen=True, slots=True)
class Duplicate:
    id_number: str
    name: str
    scheme: int
    month: date
    regions: tuple[str, ...]


@dataclass
class Found:
    duplicates: list[Duplicate] = field(default_factory=list)
    # months held per candidate ID number asked by the parent
    months: list[person_store.RecordMonths] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "duplicates": [[d.id_number, d.name, d.scheme, month_str(d.month), list(d.regions)] for d in self.duplicates],
            "months": [[m.id_number, m.name, m.scheme, m.region_code, [month_str(x) for x in m.months]]
                       for m in self.months],
            "missing": self.missing,
        }

    @staticmethod
    def from_json(v: dict[str, Any]) -> Found:
        def month(s: str) -> date:
            return date(int(s[:4]), int(s[5:7]), 1)

        return Found(
            [Duplicate(str(i), str(n), int(s), month(m), tuple(str(r) for r in rs)) for i, n, s, m, rs in v["duplicates"]],
            [person_store.RecordMonths(str(i), str(n), int(s), str(r), tuple(month(x) for x in ms))
             for i, n, s, r, ms in v["months"]],
            [str(m) for m in v["missing"]],
        )


def merge(found: Iterable[Duplicate], limit: int) -> list[Duplicate]:
    """Duplicates by (person, scheme, month), regions united, in that order, at most ``limit``."""
    by_key: dict[tuple[str, int, date], Duplicate] = {}
    for d in found:
        key = (d.id_number, d.scheme, d.month)
        cur = by_key.get(key)
        regions = tuple(sorted(set(d.regions) | set(cur.regions if cur else ())))
        by_key[key] = Duplicate(d.id_number, cur.name if cur else d.name, d.scheme, d.month, regions)
    return [by_key[k] for k in sorted(by_key)][:limit]


def crossing(months: Iterable[person_store.RecordMonths]) -> list[Duplicate]:
    """The (person, scheme, month) keys held in two or more regions."""
    regions: dict[tuple[str, int, date], set[str]] = defaultdict(set)
    names: dict[str, str] = {}
    for m in months:
        names.setdefault(m.id_number, m.name)
        for x in m.months:
            regions[(m.id_number, m.scheme, x)].add(m.region_code)
    return [Duplicate(i, names[i], s, x, tuple(sorted(rs))) for (i, s, x), rs in regions.items() if len(rs) > 1]


class Duplicates:
    """One pass's search for duplicates; None while planning."""

    def __init__(self, node: Node, store: Store, remote: RemoteCalls, index_current: Any) -> None:
        self.node = node
        self.pool = store.pool
        self.remote = remote
        self.index_current = index_current

    async def find(self, region: str, first: date, last: date, limit: int,
                   asked: tuple[str, ...] = ()) -> Found | None:
        """Duplicates in ``region``'s subtree (at most ``limit``), and the months held there
        of the ID numbers ``asked`` by a parent."""
        owner = self.node.child_for(region)
        if owner is not None:
            return await self._ask(owner, region, first, last, limit, asked)
        kids = self.node.children_within(region)
        own = await person_store.candidates(self.pool, [k.name for k in kids], True)
        held = await person_store.holders(self.pool, list(asked)) if asked and kids else {}
        answers = await asyncio.gather(*(
            self._ask(k, k.region, first, last, limit,
                      tuple(sorted({c.id_number for c in own if k.name in c.children or not self.index_current(k.name)}
                                   | {i for i in asked if k.name in held.get(i, ()) or not self.index_current(k.name)})))
            for k in kids))
        if any(a is None for a in answers):
            return None
        local = await person_store.record_months(self.pool, sorted({c.id_number for c in own} | set(asked)),
                                                 first, last, region)
        out = Found(missing=[m for a in answers if a for m in a.missing])
        months = [*local, *(m for a in answers if a for m in a.months)]
        own_ids = {c.id_number for c in own}
        out.duplicates = merge([*(d for a in answers if a for d in a.duplicates),
                                *(d for d in crossing(m for m in months if m.id_number in own_ids))], limit)
        wanted = set(asked)
        out.months = [m for m in months if m.id_number in wanted]
        return out

    async def _ask(self, child: Any, region: str, first: date, last: date, limit: int,
                   asked: tuple[str, ...]) -> Found | None:
        arg = {"region": region, "from": month_str(first), "to": month_str(last), "first": limit, "ids": list(asked)}
        try:
            got = await self.remote.call(child, "duplicates", arg)
        except ChildFailed:
            return Found(missing=[child.region])
        return None if got is None else Found.from_json(got)


async def outside_child(node: Node, store: Store, remote: RemoteCalls, child: Child, first: date, last: date,
                        above: list[person_store.RecordMonths]) -> list[person_store.RecordMonths]:
    """The months held outside ``child``'s subtree of the persons ``child`` shares with another
    part of the federation: in this node's database, in its other children, and (``above``,
    what the parent answered for this node) outside this node's subtree. ``remote`` is
    live: this runs once, as this node, for a child's import."""
    shared = await person_store.shared_with(store.pool, child.name)
    held = await person_store.holders(store.pool, shared) if shared else {}
    finder = Duplicates(node, store, remote, lambda _name: True)
    asks = []
    for k in node.children:
        ids = tuple(i for i in shared if k.name in held.get(i, ())) if k.name != child.name else ()
        if ids:
            asks.append(finder._ask(k, k.region, first, last, 1, ids))
    answers = await asyncio.gather(*asks)
    months = [*await person_store.record_months(store.pool, shared, first, last, node.region),
              *(m for a in answers if a for m in a.months)]
    if above:
        mine = await person_store.held_by(store.pool, child.name, sorted({m.id_number for m in above}))
        months.extend(m for m in above if m.id_number in mine)
    return months


def months_to_json(months: Iterable[person_store.RecordMonths]) -> list[list[Any]]:
    return Found(months=list(months)).to_json()["months"]  # type: ignore[no-any-return]


def months_from_json(rows: list[Any]) -> list[person_store.RecordMonths]:
    return Found.from_json({"duplicates": [], "months": rows, "missing": []}).months


def warnings(own: Iterable[tuple[str, int, date, str]], elsewhere: Iterable[person_store.RecordMonths],
             mask: Any) -> list[str]:
    """One line per own record whose person, scheme and month is also held in another region."""
    held: dict[tuple[str, int, date], set[str]] = defaultdict(set)
    for m in elsewhere:
        for x in m.months:
            held[(m.id_number, m.scheme, x)].add(m.region_code)
    out = []
    for idn, scheme, month, region in own:
        other = sorted(held.get((idn, scheme, month), set()) - {region})
        if other:
            out.append(f"person {mask(idn)} has a {SCHEMES[scheme - 1]} record for {month_str(month)} here "
                       f"({region}) and also in {', '.join(other)}: insured twice?")
    return out
