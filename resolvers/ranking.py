"""Rankings (``tiers.ranking``): arguments checked here, inside the token's scope; a parent's
ranking calls answered for this node's subtree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strawberry.types import Info
from tierfed.tiers.figures import SCHEMES, SchemeTotal
from tierfed.tiers.ranking import (
    MAX_FIRST,
    RANK_BY,
    Part,
    Question,
    Ranker,
    cursor_value,
    decode_cursor,
    encode_cursor,
    sort_key,
    value_str,
)
from tierfed.tiers.tree import TIER_NAMES

from tierfed.errors import bad_input

from .common import int_arg, subtree_region
from .context import ctx
from .permissions import call_region
from .rollups import period_arg


@dataclass(frozen=True, slots=True)
class RankEntryRec:
    rank: int
    region_code: str
    value: str | None
    totals: SchemeTotal
    cursor: str


@dataclass(frozen=True, slots=True)
class RankingRec:
    count: int
    entries: list[RankEntryRec]
    missing_codes: list[str]

    @property
    def complete(self) -> bool:
        return not self.missing_codes


def question(info: Info, region: str, tier: str, start: object, end: object, scheme: str, by: str,
             descending: bool, first: int, after: str | None, *, whole: bool = False) -> Question:
    """The arguments checked: BAD_USER_INPUT saying what to fix, before anything is read.
    ``whole``: a parent's call, where the region may itself be the one region of the tier ranked
    (a child node whose region is a city, in a ranking of cities)."""
    # The caller's scope: Query.ranking's rule, or for a parent's call, call_region in answer_calls.
    code = subtree_region(info, region)
    f, t = period_arg(start, end)
    tree = ctx(info).node.tree
    if tier not in TIER_NAMES:
        raise bad_input(f"tier must be one of {', '.join(TIER_NAMES)}", argument="tier")
    level = TIER_NAMES.index(tier)
    own = tree.by_code[code].tier
    if level < own or (level == own and not whole):
        below = ", ".join(TIER_NAMES[own + 1:]) or "none: it is a county"
        raise bad_input(f"tier {tier} is not below region {code} ({TIER_NAMES[own]}): rank a tier below it "
                        f"({below})", argument="tier")
    if scheme not in SCHEMES:
        raise bad_input(f"scheme must be one of {', '.join(SCHEMES)}", argument="scheme")
    if by not in RANK_BY:
        raise bad_input(f"by must be one of {', '.join(RANK_BY)}", argument="by")
    if not 0 <= first <= MAX_FIRST:
        raise bad_input(f"first must be between 0 and {MAX_FIRST}, got {first}: page with after", argument="first")
    q = Question(code, level, f, t, scheme, by, bool(descending), first)
    if after is None:
        return q
    try:
        key = decode_cursor(q, after)
    except ValueError as e:
        raise bad_input(str(e), argument="after") from None
    return Question(code, level, f, t, scheme, by, bool(descending), first, key)


def ranker(info: Info) -> Ranker:
    c = ctx(info)
    return Ranker(c.node, c.store, c.remote)


async def ranking(info: Info, region: str, tier: str, start: object, end: object, scheme: str, by: str,
                  descending: bool, first: int, after: str | None) -> RankingRec:
    q = question(info, region, tier, start, end, scheme, by, descending, first, after)
    part = await ranker(info).rank(q)
    if part is None:  # planning
        return RankingRec(0, [], [])
    entries = [RankEntryRec(part.before + i + 1, e.code, value_str(q.by, e.value), e.totals, encode_cursor(q, e))
               for i, e in enumerate(part.entries)]
    return RankingRec(part.count, entries, sorted(part.missing))


async def answer_calls(info: Info, args: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A parent's ranking calls, for this node's subtree: each a part, after the parent's cursor key."""
    out = []
    for a in args:
        tier = a.get("tier")
        if not isinstance(tier, int) or not 0 <= tier < len(TIER_NAMES):
            raise bad_input("ranking needs tier, an index of a tier", argument="args")
        q = question(info, call_region(info, a.get("region", ""), "rankings"), TIER_NAMES[tier], a.get("from"), a.get("to"),
                     str(a.get("scheme")), str(a.get("by")), bool(a.get("descending")), int_arg(a, "first"), None,
                     whole=True)
        after = a.get("after")
        if after is not None:
            if not (isinstance(after, list) and len(after) == 2 and isinstance(after[1], str)
                    and (after[0] is None or isinstance(after[0], str))):
                raise bad_input("ranking's after must be [value or null, region code]", argument="args")
            try:
                v = None if after[0] is None else cursor_value(after[0])
            except (ValueError, ArithmeticError):
                raise bad_input("ranking's after value must be a finite decimal", argument="args") from None
            q = Question(q.region, q.tier, q.first_month, q.last_month, q.scheme, q.by, q.descending, q.first,
                         sort_key(v, after[1], q.descending))
        part = await ranker(info).rank(q)
        out.append((part or Part()).to_json())
    return out
