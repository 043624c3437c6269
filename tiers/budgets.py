"""Budgets compiled up the tree: the workflow's rules, and a region's budget summed over
every pool inside it wherever in the federation the pool is held.

A node answers for the pools it holds inside the region (from its database) and asks
each child node holding part of the region for the child's part, with one internal call
(``budgets``) per child batched into the operation's one request to it; a child answers
the same way for its own subtree. With ``through`` (a month of the year), each part
also carries its pool's actual flows from January to that month, read from the pool
region's summaries (the fund accounts), so the node holding a pool computes its actual.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from tierfed.codes import month_str

from .budgetstore import PartRow
from .figures import FUND_CATEGORIES, ZERO, Figures, Summary
from .node import Child, Node
from .remote import ChildFailed, RemoteCalls

# step -> (the state it starts from, the state it leads to, the role that takes it)
STEPS: dict[str, tuple[str, str, str]] = {
    "SUBMITTED": ("DRAFT", "SUBMITTED", "OPERATOR"),
    "REVIEWED": ("SUBMITTED", "REVIEWED", "BUDGET_REVIEWER"),
    "APPROVED": ("REVIEWED", "APPROVED", "BUDGET_APPROVER"),
}
# Returning with a reason: from SUBMITTED by the reviewer, from REVIEWED by the approver.
RETURNERS = {"SUBMITTED": "BUDGET_REVIEWER", "REVIEWED": "BUDGET_APPROVER"}
EDITABLE = "DRAFT"
FROZEN = "APPROVED"
WAITING = ("DRAFT", "SUBMITTED", "REVIEWED")


def covers(opened_from: date, closed_after: date | None, year: int) -> bool:
    """Whether a pool open from ``opened_from`` to ``closed_after`` (None: still open) covers a
    month of ``year``: only such a pool's budget of the year counts anywhere."""
    return opened_from <= date(year, 12, 1) and (closed_after is None or closed_after >= date(year, 1, 1))


def not_covered(pool_id: str, opened_from: date, closed_after: date | None, year: int) -> str:
    end = month_str(closed_after) if closed_after else "now"
    return (f"pool {pool_id} covers {month_str(opened_from)}..{end}, no month of {year}: "
            "budget the pool that covers the year")


@dataclass(slots=True)
class Part:
    """One pool open in the year, its budget's state (None: no budget yet), amounts and,
    when asked, its actual flows of the year to date."""

    pool_id: str
    scheme: int
    region_code: str
    state: str | None
    expected: tuple[int, int, int]
    lines: dict[str, Decimal]
    actual: dict[str, Decimal] | None = None

    def to_json(self) -> list[Any]:
        return [self.pool_id, self.scheme, self.region_code, self.state, list(self.expected),
                [str(self.lines.get(c, ZERO)) for c in FUND_CATEGORIES],
                None if self.actual is None else [str(self.actual.get(c, ZERO)) for c in FUND_CATEGORIES]]

    @staticmethod
    def from_json(v: list[Any]) -> Part:
        pid, scheme, region, state, expected, lines, actual = v
        return Part(str(pid), int(scheme), str(region), None if state is None else str(state),
                    (int(expected[0]), int(expected[1]), int(expected[2])),
                    {c: Decimal(a) for c, a in zip(FUND_CATEGORIES, lines, strict=True) if Decimal(a) != 0},
                    None if actual is None else {c: Decimal(a) for c, a in zip(FUND_CATEGORIES, actual, strict=True)})


@dataclass(slots=True)
class Compiled:
    """Every part found, and the regions whose node could not be asked."""

    parts: list[Part] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing

    def to_json(self) -> dict[str, Any]:
        return {"parts": [p.to_json() for p in self.parts], "missing": list(self.missing)}

    @staticmethod
    def from_json(v: dict[str, Any]) -> Compiled:
        return Compiled([Part.from_json(p) for p in v["parts"]], [str(m) for m in v["missing"]])

    def merge(self, other: Compiled) -> None:
        self.parts.extend(other.parts)
        for m in other.missing:
            if m not in self.missing:
                self.missing.append(m)


def actual_period(row: PartRow, year: int, through: date) -> tuple[date, date] | None:
    """The months from January to ``through`` that the pool covers; None when it covers none."""
    first = max(date(year, 1, 1), row.opened_from)
    last = min(through, row.closed_after) if row.closed_after else through
    return (first, last) if first <= last else None


def actual_of(summary: Summary, scheme: int) -> dict[str, Decimal]:
    """A pool's flows by category from its region's summary over the period."""
    acc = Figures()
    for (_, sc), f in summary.rows.items():
        if sc == scheme:
            acc.add(f)
    return {c: acc.category(c) for c in FUND_CATEGORIES}


async def compile_region(node: Node, local_parts: Callable[[str, int], Any], summaries: Callable[[list[Any]], Any],
                         remote: RemoteCalls, region: str, year: int, through: date | None,
                         scheme: int | None = None) -> Compiled:
    """The parts of ``region``'s budget for ``year`` held on this node and on its children.

    ``local_parts(region, year)`` gives this node's PartRows (a per-request loader, read once
    for both passes of a query); ``summaries(keys)`` full summaries (this node's records
    and its children's). Only ``scheme``'s pools when given (execution reads one scheme's
    accounts, not every pool's). Children that give no answer leave their region in ``missing``."""
    owner = node.child_for(region)
    asks: list[tuple[Child, str]] = [(owner, region)] if owner is not None else \
        [(ch, ch.region) for ch in node.children_within(region)]
    out = Compiled()
    if owner is None:
        rows = [r for r in await local_parts(region, year)
                if node.child_for(r.region_code) is None and scheme in (None, r.scheme)]
        parts = [Part(r.pool_id, r.scheme, r.region_code, r.state, r.expected, dict(r.lines)) for r in rows]
        if through is not None:
            wanted = [(i, actual_period(r, year, through)) for i, r in enumerate(rows)]
            keyed = [(i, (rows[i].region_code, p[0], p[1], True)) for i, p in wanted if p is not None]
            got = await summaries([k for _, k in keyed])
            for p in parts:
                p.actual = {c: ZERO for c in FUND_CATEGORIES}
            for (i, _), s in zip(keyed, got):
                parts[i].actual = actual_of(s, rows[i].scheme)
                if not s.complete:
                    for m in s.missing:
                        if m not in out.missing:
                            out.missing.append(m)
        out.parts.extend(parts)

    async def ask(child: Child, code: str) -> Compiled | None:
        arg = {"region": code, "year": year, "through": month_str(through) if through else None, "scheme": scheme}
        try:
            got = await remote.call(child, "budgets", arg)
        except ChildFailed:
            return Compiled(missing=[code])
        return None if got is None else Compiled.from_json(got)

    for got in await asyncio.gather(*(ask(ch, code) for ch, code in asks)):
        if got is not None:
            out.merge(got)
    return out
