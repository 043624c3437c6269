"""Rankings: the regions of one tier inside a subtree, ordered by a figure of one scheme.

Each node ranks the regions it holds (one statement over its summaries); a parent
asks each child that holds regions of the tier for its part after the cursor, at
most ``first`` entries, and merges the sorted parts (a k-way merge): the first
``first`` entries after the cursor of the whole ranking are among them, so no node
sends more than a page. Each part also says how many of its entries it ranks and
how many come before the cursor, so the page's ranks are positions in the whole.

Order: by the value as the API shows it (counts as integers, amounts and ratios to
two decimals, half up), then by region code, ascending whatever the direction;
regions whose value is undefined (a ratio over zero) come last, by code.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import heapq
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from tierfed.codes import month_str

from .figures import SCHEMES, SchemeTotal, Summary, totals
from .node import Child, Node
from .remote import ChildFailed, RemoteCalls
from .store import Store

CENT = Decimal("0.01")
MAX_FIRST = 500

# RankBy: how each figure is read from a region's totals (None: undefined, ranks last).
COUNTS = ("INSURED", "BENEFICIARIES")


def _ratio(num: Decimal | int, den: Decimal | int) -> Decimal | None:
    if not den:
        return None
    return (Decimal(num) / Decimal(den)).quantize(CENT, rounding=ROUND_HALF_UP)


RANK_BY: dict[str, Any] = {
    "INSURED": lambda t: Decimal(t.insured),
    "CONTRIBUTION_TOTAL": lambda t: t.contribution_total,
    "POOLED": lambda t: t.pooled,
    "BENEFITS_PAID": lambda t: t.benefits_paid,
    "BENEFICIARIES": lambda t: Decimal(t.beneficiaries),
    "DEPENDENCY_RATIO": lambda t: _ratio(t.insured, t.beneficiaries),
    "INCOME_EXPENDITURE_RATIO": lambda t: _ratio(t.pooled, t.benefits_paid),
}


def value_of(by: str, t: SchemeTotal) -> Decimal | None:
    return RANK_BY[by](t)  # type: ignore[no-any-return]


def value_str(by: str, v: Decimal | None) -> str | None:
    if v is None:
        return None
    return str(int(v)) if by in COUNTS else str(v.quantize(CENT))


SortKey = tuple[int, Decimal, str]


def sort_key(v: Decimal | None, code: str, descending: bool) -> SortKey:
    if v is None:
        return (1, Decimal(0), code)
    return (0, -v if descending else v, code)


@dataclass(frozen=True, slots=True)
class Question:
    """One ranking asked of a node: the regions of ``tier`` (an index of TIER_NAMES) in ``region``'s subtree."""

    region: str
    tier: int
    first_month: date
    last_month: date
    scheme: str
    by: str
    descending: bool
    first: int
    after: SortKey | None = None

    def fingerprint(self) -> str:
        """What a cursor belongs to: the ranking, not the page."""
        text = f"{self.region}|{self.tier}|{month_str(self.first_month)}|{month_str(self.last_month)}|" \
               f"{self.scheme}|{self.by}|{self.descending}"
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def to_json(self, region: str | None = None) -> dict[str, Any]:
        after = None
        if self.after is not None:
            undefined, v, code = self.after
            after = [None if undefined else str(-v if self.descending else v), code]
        return {"region": region or self.region, "tier": self.tier, "from": month_str(self.first_month),
                "to": month_str(self.last_month), "scheme": self.scheme, "by": self.by,
                "descending": self.descending, "first": self.first, "after": after}


@dataclass(frozen=True, slots=True)
class Entry:
    code: str
    value: Decimal | None
    totals: SchemeTotal

    def to_json(self) -> list[Any]:
        t = self.totals
        return [self.code, None if self.value is None else str(self.value), t.insured, t.contributor_months,
                str(t.contribution_employer), str(t.contribution_individual), str(t.individual_account),
                str(t.benefits_paid), t.beneficiaries, str(t.base)]

    @staticmethod
    def from_json(v: list[Any], scheme: str) -> Entry:
        code, value, insured, months, emp, ind, acc, paid, bens, base = v
        return Entry(str(code), None if value is None else Decimal(value),
                     SchemeTotal(scheme, int(insured), int(months), Decimal(emp), Decimal(ind), Decimal(acc),
                                 Decimal(paid), int(bens), Decimal(base)))


@dataclass(slots=True)
class Part:
    """A node's part of a ranking: how many it ranks, how many of those come before the
    cursor, and its first entries after the cursor, in order."""

    count: int = 0
    before: int = 0
    entries: list[Entry] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "before": self.before, "entries": [e.to_json() for e in self.entries],
                "missing": self.missing}

    @staticmethod
    def from_json(v: dict[str, Any], scheme: str) -> Part:
        return Part(int(v["count"]), int(v["before"]), [Entry.from_json(e, scheme) for e in v["entries"]],
                    [str(m) for m in v["missing"]])


def encode_cursor(q: Question, e: Entry) -> str:
    raw = json.dumps([q.fingerprint(), None if e.value is None else str(e.value), e.code], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def cursor_value(value: object) -> Decimal:
    """A cursor's figure: a finite decimal no larger than any figure of a ranking (its negation,
    for a descending order, cannot overflow); ValueError otherwise."""
    v = Decimal(value) if isinstance(value, str) else None
    if v is None or not v.is_finite() or v.adjusted() > 30 or v.adjusted() < -30:
        raise ValueError("not a figure of a ranking")
    return v


def decode_cursor(q: Question, cursor: str) -> SortKey:
    """The sort key a cursor stands for; ValueError saying what is wrong with it."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        fp, value, code = json.loads(raw)
        v = None if value is None else cursor_value(value)
        if not isinstance(fp, str) or not isinstance(code, str):
            raise ValueError
    except (ValueError, TypeError, ArithmeticError, UnicodeDecodeError, RecursionError):
        raise ValueError("after is not a cursor of a ranking: pass an entry's cursor as it was given") from None
    if fp != q.fingerprint():
        raise ValueError("after is a cursor of another ranking (region, tier, period, scheme, by or descending "
                         "differ): page with the same arguments")
    return sort_key(v, code, q.descending)


def merge_parts(parts: Iterable[Part], q: Question) -> Part:
    """The parts of disjoint sets of regions as one part: counts added, entries merged in order."""
    parts = list(parts)
    out = Part(sum(p.count for p in parts), sum(p.before for p in parts))
    streams = [((sort_key(e.value, e.code, q.descending), i, e) for i, e in enumerate(p.entries)) for p in parts]
    for _, _, e in heapq.merge(*streams, key=lambda x: x[0]):
        if len(out.entries) == q.first:
            break
        out.entries.append(e)
    for p in parts:
        out.missing.extend(m for m in p.missing if m not in out.missing)
    return out


def rank_local(q: Question, totals: dict[str, SchemeTotal]) -> Part:
    """This node's part from its regions' totals."""
    keyed = sorted(((sort_key(v, code, q.descending), Entry(code, v, t))
                    for code, t in totals.items() for v in [value_of(q.by, t)]), key=lambda x: x[0])
    before = 0 if q.after is None else sum(1 for k, _ in keyed if k <= q.after)
    return Part(len(keyed), before, [e for _, e in keyed[before:before + q.first]])


class Ranker:
    """One pass's ranking for one node; ``rank`` gives None while planning."""

    def __init__(self, node: Node, store: Store, remote: RemoteCalls) -> None:
        self.node = node
        self.store = store
        self.remote = remote

    def layout(self, q: Question) -> tuple[list[str], list[Child], dict[str, list[Child]]]:
        """The regions of the tier this node ranks itself, the children that rank their own,
        and per region ranked here the children holding part of it."""
        tree = self.node.tree
        local, asked, straddling = [], [], {}
        seen_children: set[str] = set()
        for code in tree.subtree(q.region):
            rec = tree.by_code[code]
            owner = self.node.child_for(code)
            if rec.tier != q.tier:
                continue
            if owner is not None:
                if owner.name not in seen_children and tree.by_code[owner.region].tier <= q.tier:
                    seen_children.add(owner.name)
                    asked.append(owner)
                continue
            local.append(code)
            inside = self.node.children_within(code)
            if inside:
                straddling[code] = inside
        return local, asked, straddling

    async def rank(self, q: Question) -> Part | None:
        owner = self.node.child_for(q.region)
        if owner is not None:
            return await self._ask(owner, q, q.region)
        local, asked, straddling = self.layout(q)
        scheme_no = SCHEMES.index(q.scheme) + 1
        parts_below = asyncio.gather(*(self._ask(c, q, c.region) for c in asked))
        # A region ranked here with child nodes inside it (a city holding a county node):
        # the children's summaries of their regions are added to it.
        inside = [(code, c) for code, cs in straddling.items() for c in cs]
        key = (q.first_month, q.last_month, True)
        summaries = asyncio.gather(*(self.remote.summaries(c, [(c.region, *key)]) for _, c in inside))
        answers, child_summaries = await asyncio.gather(parts_below, summaries)
        if self.remote.planning and (asked or inside):
            return None  # the children's parts come with the second pass
        # (Nothing to ask a child: answered now, the planning pass may be the only one.)
        figures = await self.store.rank_figures(local, scheme_no, q.first_month, q.last_month)
        missing: list[str] = []
        for (code, _), (s,) in zip(inside, child_summaries):
            missing.extend(m for m in s.missing if m not in missing)
            figures[code] = _add(figures.get(code), _totals_of(s, q), q.scheme)
        zero = Decimal("0.00")
        own = rank_local(q, {code: figures.get(code) or SchemeTotal(q.scheme, 0, 0, zero, zero, zero, zero, 0, zero)
                             for code in local})
        own.missing = missing
        return merge_parts([own, *(a for a in answers if a is not None)], q)

    async def _ask(self, child: Child, q: Question, region: str) -> Part | None:
        try:
            got = await self.remote.call(child, "ranking", q.to_json(region))
        except ChildFailed:
            return Part(missing=[child.region])
        return None if got is None else Part.from_json(got, q.scheme)


def _totals_of(s: Summary, q: Question) -> SchemeTotal:
    months = [q.first_month, q.last_month] if q.first_month != q.last_month else [q.last_month]
    return totals(s, months, [q.scheme])[0]


def _add(a: SchemeTotal | None, b: SchemeTotal, scheme: str) -> SchemeTotal:
    if a is None:
        return b
    return SchemeTotal(scheme, a.insured + b.insured, a.contributor_months + b.contributor_months,
                       a.contribution_employer + b.contribution_employer,
                       a.contribution_individual + b.contribution_individual,
                       a.individual_account + b.individual_account, a.benefits_paid + b.benefits_paid,
                       a.beneficiaries + b.beneficiaries, a.base + b.base)
