"""One person across the federation: a person's parts on this node and on the child
nodes that hold them, merged exactly.

A person may be registered, and hold records, on several nodes (workers move
between provinces). Each node answers for its subtree: its own part from its
database, and the parts of the children that the person index says hold the
person (``tiers.personindex``), asked through internal calls. Children whose
index this node could not read yet are asked too, so an answer is never
missing a part silently: a child that does not answer is named in ``missing``.

Scope: a node's part is visible when the person's registration there lies
inside the caller's scope; every node applies that to its own part with the
caller's token. A person registered only outside the scope is FORBIDDEN.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from tierfed.codes import month_str

from . import person_store, transferstore
from .loading import Loader
from .node import Child, Node
from .remote import RemoteCalls, ask_children
from .store import StatementRow, Store

Z = Decimal("0.00")


@dataclass(frozen=True, slots=True)
class Registration:
    name: str
    region_code: str
    last_month: date | None

    def newer_than(self, other: Registration | None) -> bool:
        """The registration where the person's latest record is: where they are insured now."""
        if other is None:
            return True
        mine, theirs = self.last_month or date.min, other.last_month or date.min
        return mine > theirs or (mine == theirs and self.region_code < other.region_code)


@dataclass
class Found:
    """What a subtree knows of one person: the visible registration where the latest record
    is, whether a registration outside the caller's scope exists, the regions of the child
    nodes that hold part of the person and did not answer, and the person's insurance
    transfers (each recorded at its origin and its destination: one entry per id)."""

    best: Registration | None = None
    hidden: bool = False
    missing: list[str] = field(default_factory=list)
    transfers: dict[str, transferstore.TransferRec] = field(default_factory=dict)

    def add(self, other: Found) -> None:
        if other.best is not None and other.best.newer_than(self.best):
            self.best = other.best
        self.hidden = self.hidden or other.hidden
        self.missing.extend(m for m in other.missing if m not in self.missing)
        for t in other.transfers.values():
            self.transfers.setdefault(t.id, t)

    def ordered_transfers(self) -> list[transferstore.TransferRec]:
        return sorted(self.transfers.values(), key=lambda t: (t.effective_from, t.id))

    def region_now(self) -> str | None:
        """Where the person is registered now: the destination of the last transfer, unless a
        later record shows them elsewhere; else the registration holding the latest record."""
        moved = self.ordered_transfers()
        if moved and (self.best is None or (self.best.last_month or date.min) < moved[-1].effective_from):
            return moved[-1].to_region
        return self.best.region_code if self.best else None

    def to_json(self) -> dict[str, Any]:
        b = self.best
        return {"best": None if b is None else {"name": b.name, "region": b.region_code,
                                                 "last": month_str(b.last_month) if b.last_month else None},
                "hidden": self.hidden, "missing": self.missing,
                "transfers": [[t.id, t.id_number, t.name, t.from_region, t.to_region, month_str(t.effective_from),
                               t.schemes] for t in self.ordered_transfers()]}

    @staticmethod
    def from_json(v: dict[str, Any]) -> Found:
        b = v["best"]
        best = None
        if b is not None:
            last = date.fromisoformat(b["last"] + "-01") if b["last"] else None
            best = Registration(str(b["name"]), str(b["region"]), last)
        moved = {str(t[0]): transferstore.TransferRec(str(t[0]), str(t[1]), str(t[2]), str(t[3]), str(t[4]),
                                                      date.fromisoformat(str(t[5]) + "-01"), list(t[6]))
                 for t in v.get("transfers", [])}
        return Found(best, bool(v["hidden"]), [str(m) for m in v["missing"]], moved)


@dataclass
class YearParts:
    """One person's records of one year in a subtree, per scheme: the months with a
    contribution record as a bit mask (bit 0 = January) and the sums."""

    rows: dict[int, StatementRow] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    def add_row(self, r: StatementRow) -> None:
        cur = self.rows.get(r.scheme)
        if cur is None:
            self.rows[r.scheme] = r
            return
        mask = cur.mask | r.mask
        self.rows[r.scheme] = StatementRow(r.scheme, bin(mask).count("1"), cur.employer + r.employer,
                                           cur.individual + r.individual,
                                           cur.individual_account + r.individual_account,
                                           cur.benefits_paid + r.benefits_paid, mask)

    def add(self, other: YearParts) -> None:
        for r in other.rows.values():
            self.add_row(r)
        self.missing.extend(m for m in other.missing if m not in self.missing)

    def to_json(self) -> dict[str, Any]:
        return {"rows": [[r.scheme, r.mask, str(r.employer), str(r.individual), str(r.individual_account),
                          str(r.benefits_paid)] for _, r in sorted(self.rows.items())],
                "missing": self.missing}

    @staticmethod
    def from_json(v: dict[str, Any]) -> YearParts:
        out = YearParts(missing=[str(m) for m in v["missing"]])
        for scheme, mask, e, i, a, b in v["rows"]:
            out.add_row(StatementRow(int(scheme), bin(int(mask)).count("1"), Decimal(e), Decimal(i), Decimal(a),
                                     Decimal(b), int(mask)))
        return out


class PersonReads:
    """This node's own reads for persons, one statement a batch, made once per operation and
    shared by its passes (a query with children runs twice; the database is read once)."""

    def __init__(self, store: Store) -> None:
        pool = store.pool

        async def part(ids: list[str]) -> list[person_store.PersonPart | None]:
            found = await person_store.person_parts(pool, ids)
            return [found.get(i) for i in ids]

        async def held(ids: list[str]) -> list[tuple[str, ...]]:
            found = await person_store.holders(pool, ids)
            return [found.get(i, ()) for i in ids]

        async def transfers(ids: list[str]) -> list[list[transferstore.TransferRec]]:
            found = await transferstore.of_persons(pool, ids)
            return [found.get(i, []) for i in ids]

        self.part = Loader(part, max_batch_size=5000)
        self.held = Loader(held, max_batch_size=5000)
        self.transfers = Loader(transfers, max_batch_size=5000)
        self.year = Loader(store.statements, max_batch_size=5000)


class PersonParts:
    """The loaders of one pass of one operation for persons across the federation."""

    def __init__(self, node: Node, reads: PersonReads, remote: RemoteCalls, may_see: Callable[[str], bool],
                 index_current: Callable[[str], bool]) -> None:
        self.node = node
        self.reads = reads
        self.remote = remote
        self.may_see = may_see
        self.index_current = index_current
        self.person = Loader(self._person_batch, max_batch_size=5000)
        self.year = Loader(self._year_batch, max_batch_size=5000)

    async def _holders(self, ids: list[str]) -> list[list[Child]]:
        """Per ID number, the children to ask: those the index names, and those whose index is not read yet."""
        if not self.node.children:
            return [[] for _ in ids]
        held = await self.reads.held.load_many(ids)
        return [[c for c in self.node.children if c.name in h or not self.index_current(c.name)] for h in held]

    async def _person_batch(self, ids: list[str]) -> list[Found | None]:
        """None only while planning a query whose answer depends on children."""
        local = await self.reads.part.load_many(ids)
        moved = await self.reads.transfers.load_many(ids)
        holders = await self._holders(ids)
        out: list[Found | None] = []
        for idn, part, transfers, cs in zip(ids, local, moved, holders):
            f = Found()
            if part is not None:
                if self.may_see(part.region_code):
                    f.best = Registration(part.name, part.region_code, part.last_month)
                else:
                    f.hidden = True
            f.transfers = {t.id: t for t in transfers if self.may_see(t.to_region) or self.may_see(t.from_region)}
            answers, failed, planning = await ask_children(self.remote, cs, "person", {"id": idn})
            for a in answers:
                f.add(Found.from_json(a))
            f.missing.extend(failed)
            out.append(None if planning else f)
        return out

    async def _year_batch(self, keys: list[tuple[str, int]]) -> list[YearParts | None]:
        local = await self.reads.part.load_many([k[0] for k in keys])
        visible = [i for i, part in enumerate(local) if part is not None and self.may_see(part.region_code)]
        rows = await self.reads.year.load_many([keys[i] for i in visible]) if visible else []
        local_rows = dict(zip(visible, rows))
        holders = await self._holders([k[0] for k in keys])
        out: list[YearParts | None] = []
        for n, ((idn, year), cs) in enumerate(zip(keys, holders)):
            y = YearParts()
            for r in local_rows.get(n, {}).values():
                y.add_row(r)
            answers, failed, planning = await ask_children(self.remote, cs, "statement", {"id": idn, "year": year})
            for a in answers:
                y.add(YearParts.from_json(a))
            y.missing.extend(failed)
            out.append(None if planning else y)
        return out


def statement_rows(y: YearParts, schemes: int) -> list[StatementRow]:
    """One row per scheme in Scheme order, zeros where the person has none."""
    return [y.rows.get(s) or StatementRow(s, 0, Z, Z, Z, Z, 0) for s in range(1, schemes + 1)]


async def answer_calls(parts: PersonParts, kind: str, args: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """This node's answers to a parent's person calls (its whole subtree's parts)."""
    if kind == "person":
        found = await parts.person.load_many([str(a["id"]) for a in args])
        return [(f or Found()).to_json() for f in found]
    years = await parts.year.load_many([(str(a["id"]), int(a["year"])) for a in args])
    return [(y or YearParts()).to_json() for y in years]
