"""raisePoolingLevel, the pooling overview and the audit of pooling changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from strawberry.types import Info
from tierfed.tiers import pooling as tp
from tierfed.tiers.figures import SCHEME_ID, SCHEMES
from tierfed.tiers.remote import ask_children
from tierfed.tiers.store import PoolRec
from tierfed.tiers.vocabulary import TIER_NAMES

from tierfed import codes
from tierfed.errors import bad_input

from . import changes as cross
from .common import as_month
from .context import ctx


async def raise_pooling_level(info: Info, scheme: str, region: str, effective_from: object,
                              idempotency_key: str, dry_run: bool, vertical_management: bool) -> tp.RaiseOutcome:
    c = ctx(info)
    code = region  # checked by its rule (resolvers/permissions.py)
    if not idempotency_key or len(idempotency_key) > 200:
        raise bad_input("idempotencyKey must be 1 to 200 characters", argument="idempotencyKey")
    eff = as_month(effective_from, "effectiveFrom")
    owner = c.node.child_for(code)
    if owner is not None:
        raise bad_input(f"region {code} is held by node '{owner.name}', not by this node '{c.node.name}': "
                        f"send the raise to {owner.url}", nodes=[owner.name])
    inp = tp.RaiseInput(SCHEME_ID[scheme], code, eff, idempotency_key, dry_run, vertical_management)
    if not c.node.holds_whole(code):
        # The subtree spans child nodes: this node coordinates a change across them.
        return await cross.raise_across(info, inp)
    return await tp.raise_level(c.store.pool, c.node.tree, inp, c.caller.sub)


@dataclass(frozen=True)
class LevelCount:
    level: str
    count: int
    region_codes: list[str]


@dataclass(frozen=True)
class SchemeOverview:
    scheme: str
    levels: list[LevelCount]


async def pools_at(info: Info, as_of: date) -> list[dict[str, Any]]:
    """Pool rows open at ``as_of``, this node's and every child's, inside the caller's scope."""
    c = ctx(info)
    rows = [{"id": p.id, "scheme": SCHEMES[p.scheme - 1], "region": p.region_code}
            for p in await c.store.pools_at(as_of)]
    answers, failed, _ = await ask_children(c.remote, c.node.children, "pools", {"asOf": codes.month_str(as_of)})
    if failed:
        raise c.remote.failure_of(failed[0])  # no partial overview: the field fails, naming the child
    for got in answers:
        rows.extend(got)
    return [r for r in rows if c.access.may(r["region"])]


async def overview(info: Info, as_of: object | None) -> list[SchemeOverview]:
    at = as_month(as_of, "asOf") if as_of is not None else codes.current_month()
    rows = await pools_at(info, at)
    tree = ctx(info).node.tree
    out = []
    for s in SCHEMES:
        per_level: dict[str, list[str]] = {}
        for r in rows:
            if r["scheme"] == s:
                per_level.setdefault(tree.tier_name(r["region"]), []).append(r["region"])
        levels = [LevelCount(lv, len(per_level.get(lv, [])), sorted(per_level.get(lv, [])))
                  for lv in TIER_NAMES]
        out.append(SchemeOverview(s, levels))
    return out


async def changes(info: Info, region: str | None, limit: int) -> list[tp.ChangeRec]:
    c = ctx(info)
    code = region or c.caller.scope  # checked by its rule (resolvers/permissions.py)
    if not 1 <= limit <= 1000:
        raise bad_input("limit must be 1 to 1000", argument="limit")
    return await tp.changes(c.store.pool, code, limit)


__all__ = ["PoolRec", "raise_pooling_level", "overview", "changes"]
