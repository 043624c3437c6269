"""One employer across the federation: its registrations and the contributions paid
through it, on this node and on every child node, merged exactly.

An employer with branches in several provinces is registered on each node that
handles its employees' records. A lookup asks every child (no index: employers
are few and a lookup is rare), each once per operation; scope is applied by each
node to its own registration, as for persons (``tiers.persons``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from tierfed.codes import month_str

from .loading import Loader
from .node import Node
from .remote import RemoteCalls, ask_children
from .store import EmployerRec, EmployerSchemeRow, Store, employer_totals, employers


@dataclass
class EmployerFound:
    best: EmployerRec | None = None
    hidden: bool = False
    missing: list[str] = field(default_factory=list)

    def add(self, other: EmployerFound) -> None:
        # The registration with the lowest region code stands for the employer: the same
        # whichever node is asked.
        if other.best is not None and (self.best is None or other.best.region_code < self.best.region_code):
            self.best = other.best
        self.hidden = self.hidden or other.hidden
        self.missing.extend(m for m in other.missing if m not in self.missing)

    def to_json(self) -> dict[str, Any]:
        b = self.best
        return {"best": None if b is None else [b.credit_code, b.name, b.region_code, b.industry_risk_class],
                "hidden": self.hidden, "missing": self.missing}

    @staticmethod
    def from_json(v: dict[str, Any]) -> EmployerFound:
        b = v["best"]
        return EmployerFound(None if b is None else EmployerRec(str(b[0]), str(b[1]), str(b[2]), int(b[3])),
                             bool(v["hidden"]), [str(m) for m in v["missing"]])


@dataclass
class EmployerTotals:
    rows: dict[int, EmployerSchemeRow] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    def add_row(self, r: EmployerSchemeRow) -> None:
        cur = self.rows.get(r.scheme)
        self.rows[r.scheme] = r if cur is None else EmployerSchemeRow(
            r.scheme, cur.employees + r.employees, cur.contributor_months + r.contributor_months,
            cur.employer + r.employer, cur.individual + r.individual, cur.base + r.base)

    def add(self, other: EmployerTotals) -> None:
        for r in other.rows.values():
            self.add_row(r)
        self.missing.extend(m for m in other.missing if m not in self.missing)

    def to_json(self) -> dict[str, Any]:
        return {"rows": [[r.scheme, r.employees, r.contributor_months, str(r.employer), str(r.individual), str(r.base)]
                         for _, r in sorted(self.rows.items())], "missing": self.missing}

    @staticmethod
    def from_json(v: dict[str, Any]) -> EmployerTotals:
        out = EmployerTotals(missing=[str(m) for m in v["missing"]])
        for s, emp, months, e, i, b in v["rows"]:
            out.add_row(EmployerSchemeRow(int(s), int(emp), int(months), Decimal(e), Decimal(i), Decimal(b)))
        return out


class EmployerReads:
    """This node's own reads for employers, made once per operation and shared by its passes."""

    def __init__(self, store: Store) -> None:
        pool = store.pool

        async def registered(codes: list[str]) -> list[EmployerRec | None]:
            found = await employers(pool, codes)
            return [found.get(c) for c in codes]

        async def totals(keys: list[tuple[str, date, date]]) -> list[dict[int, EmployerSchemeRow]]:
            return await employer_totals(pool, keys)

        self.registered = Loader(registered, max_batch_size=5000)
        self.totals = Loader(totals, max_batch_size=5000)


class EmployerParts:
    """The loaders of one pass for employers across the federation; None while planning."""

    def __init__(self, node: Node, reads: EmployerReads, remote: RemoteCalls, may_see: Callable[[str], bool]) -> None:
        self.node = node
        self.reads = reads
        self.remote = remote
        self.may_see = may_see
        self.employer = Loader(self._employer_batch, max_batch_size=5000)
        self.totals = Loader(self._totals_batch, max_batch_size=5000)

    async def _employer_batch(self, codes: list[str]) -> list[EmployerFound | None]:
        local = await self.reads.registered.load_many(codes)
        out: list[EmployerFound | None] = []
        for code, rec in zip(codes, local):
            f = EmployerFound()
            if rec is not None:
                if self.may_see(rec.region_code):
                    f.best = rec
                else:
                    f.hidden = True
            answers, failed, planning = await ask_children(self.remote, self.node.children, "employer", {"code": code})
            for a in answers:
                f.add(EmployerFound.from_json(a))
            f.missing.extend(failed)
            out.append(None if planning else f)
        return out

    async def _totals_batch(self, keys: list[tuple[str, date, date]]) -> list[EmployerTotals | None]:
        local = await self.reads.registered.load_many([k[0] for k in keys])
        visible = [i for i, rec in enumerate(local) if rec is not None and self.may_see(rec.region_code)]
        rows = await self.reads.totals.load_many([keys[i] for i in visible]) if visible else []
        by_key = dict(zip(visible, rows))
        out: list[EmployerTotals | None] = []
        for n, (code, first, last) in enumerate(keys):
            t = EmployerTotals()
            for r in by_key.get(n, {}).values():
                t.add_row(r)
            arg = {"code": code, "from": month_str(first), "to": month_str(last)}
            answers, failed, planning = await ask_children(self.remote, self.node.children, "employer_totals", arg)
            for a in answers:
                t.add(EmployerTotals.from_json(a))
            t.missing.extend(failed)
            out.append(None if planning else t)
        return out


async def answer_calls(parts: EmployerParts, kind: str, args: Sequence[dict[str, Any]],
                       month: Callable[[Any, str], date]) -> list[dict[str, Any]]:
    """This node's answers to a parent's employer calls (its whole subtree's parts)."""
    if kind == "employer":
        found = await parts.employer.load_many([str(a["code"]) for a in args])
        return [(f or EmployerFound()).to_json() for f in found]
    keys = [(str(a["code"]), month(a.get("from"), "from"), month(a.get("to"), "to")) for a in args]
    return [(t or EmployerTotals()).to_json() for t in await parts.totals.load_many(keys)]
