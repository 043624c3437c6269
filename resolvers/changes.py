"""Changes across nodes as the API shows them: raises over subtrees spanning child
nodes, pools whose predecessors live on child nodes, and the ``changes`` list."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from strawberry.types import Info
from tierfed.tiers import changestore as cs
from tierfed.tiers import pooling as tp
from tierfed.tiers.remote import ChildFailed, unavailable
from tierfed.tiers.store import PoolRec

from tierfed import codes
from tierfed.errors import Code, TierfedError, bad_input

from .common import as_month
from .context import ctx

STATES = ("PENDING", "COMMITTED", "ABORTED")


async def raise_across(info: Info, inp: tp.RaiseInput) -> tp.RaiseOutcome:
    """raisePoolingLevel over a subtree that spans child nodes: this node coordinates."""
    from . import pools

    c = ctx(info)

    async def balances(recs: list[PoolRec], at: date) -> dict[str, tuple[Decimal, Decimal]]:
        async def one(p: PoolRec) -> tuple[Decimal, Decimal]:
            return await pools.opening_balance(p, info), await pools.balance(p, info, at)

        got = await asyncio.gather(*(one(p) for p in recs))
        return {p.id: g for p, g in zip(recs, got)}

    return await c.runtime.changes.raise_across(inp, c.caller.sub, balances)  # type: ignore[no-any-return]


def _flow(summary: Any, scheme: int) -> Decimal:
    return sum((f.fund_flow for (_, sc), f in summary.rows.items() if sc == scheme), Decimal("0.00"))


# The figures the internal call ``pool`` can compute beside the pool itself: each costs the
# child summary loads (and, for a chain spanning nodes, calls of its own), so a caller names
# the ones it reads (none: the pool alone). A call without ``want`` (an older node's) gets both.
POOL_FIGURES = ("openingBalance", "predecessors")


async def _child_pool(info: Info, region: str, pool_id: str, as_of: date | None = None,
                      want: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """A pool held by the child node whose subtree holds ``region``, as that child answers the
    internal call ``pool`` (below), with the figures in ``want`` and its balance at ``as_of``
    (when given): None while the operation is planned. The child checks the caller's scope for
    the pool's region, as its ``Query.pool`` would."""
    c = ctx(info)
    owner = c.node.child_for(region)
    if owner is None:
        raise TierfedError(Code.TIER_UNAVAILABLE, f"pool {pool_id}'s region {region} is held by no child node")
    arg: dict[str, Any] = {"id": pool_id, "want": list(want)}
    if as_of is not None:
        arg["asOf"] = codes.month_str(as_of)
    try:
        return await c.remote.call(owner, "pool", arg, missing=f"does not know pool {pool_id}")  # type: ignore[no-any-return]
    except ChildFailed as e:
        raise unavailable(e.child, str(e)) from None


def _held_pool(pid: str, scheme: int, region: str, got: dict[str, Any], node: str,
               successor: str | None = None) -> PoolRec:
    """A pool a child node holds, from that child's answer to the internal call ``pool`` (its
    months): its figures are asked of the child as they are read (``held_by``)."""
    return PoolRec(pid, scheme, region, codes.month(got["openedFrom"]),
                   codes.month(got["closedAfter"]) if got["closedAfter"] else None, Decimal("0.00"), successor,
                   held_by=node)


async def answer_pool_calls(info: Info, args: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The internal call ``pool``: a pool of this node's subtree by id, with the figures named in
    ``want`` (its live opening balance, its predecessors; both when the call has no ``want``) and its
    balance at ``asOf`` (when asked); an empty object for a pool that does not exist (the answers
    of ``_tierCall`` are never null). A pool held further down is asked of the child holding it in turn."""
    from . import pools
    from .permissions import call_region

    c = ctx(info)
    asked: list[tuple[str, str, date | None, set[str]]] = []  # every call checked before any is answered
    for a in args:
        if "want" in a and not (isinstance(a["want"], list) and set(a["want"]) <= set(POOL_FIGURES)):
            raise bad_input(f"pool's want lists figures among {', '.join(POOL_FIGURES)}", argument="args")
        pid = str(a.get("id", ""))
        region = call_region(info, pools.parse_pool_id(pid), "pools")
        at = as_month(a["asOf"], "asOf") if a.get("asOf") is not None else None
        asked.append((pid, region, at, set(a["want"]) if "want" in a else set(POOL_FIGURES)))

    async def one(pid: str, region: str, at: date | None, want: set[str]) -> dict[str, Any]:
        owner = c.node.child_for(region)
        if owner is None:
            rec: PoolRec | None = await c.loaders.pool.load(pid)
        else:  # the pool itself; its figures are asked of the child below as they are computed
            got = await _child_pool(info, region, pid)
            rec = None if got is None else _held_pool(pid, int(got["scheme"]), region, got, owner.name)
        if rec is None:
            return {}
        return {
            "scheme": rec.scheme, "openedFrom": codes.month_str(rec.opened_from),
            "closedAfter": codes.month_str(rec.closed_after) if rec.closed_after else None,
            "openingBalance": str(await pools.opening_balance(rec, info)) if "openingBalance" in want else None,
            "balance": str(await pools.balance_at(rec, info, at)) if at is not None else None,
            "predecessors": [{"id": p.id, "region": p.region_code, "openedFrom": codes.month_str(p.opened_from),
                              "closedAfter": codes.month_str(p.closed_after) if p.closed_after else None}
                             for p in await pools.predecessors(rec, info)] if "predecessors" in want else None,
        }

    # together, so that the loaders read the pools (and their summaries) in one batch, not one by one
    return list(await asyncio.gather(*(one(*x) for x in asked)))


async def remote_opening(info: Info, root: PoolRec) -> Decimal:
    """The live opening balance of a pool held by a child node, asked of that node."""
    got = await _child_pool(info, root.region_code, root.id, want=("openingBalance",))
    return Decimal(got["openingBalance"]) if got else Decimal("0.00")


async def opening_beyond_node(info: Info, root: PoolRec) -> Decimal:
    """What a pool's opening balance holds beyond this node's own records: its chain's
    predecessors held by child nodes (their balances at closing, asked of the child),
    and the children's flows under local predecessors whose region spans child nodes."""
    c = ctx(info)
    if not c.node.children:
        return Decimal("0.00")
    members: list[cs.ChainMember] = await c.loaders.pool_chain.load(root.id)

    async def part(m: cs.ChainMember) -> Decimal:
        if m.remote:
            got = await _child_pool(info, m.region_code, m.id, m.closed_after, want=())
            return Decimal(got["balance"]) if got else Decimal("0.00")
        kids = c.node.children_within(m.region_code)
        sums = await asyncio.gather(*(c.summary.load((ch.region, m.opened_from, m.closed_after, True)) for ch in kids))
        return sum((_flow(s, m.scheme) for s in sums), Decimal("0.00"))

    return sum(await asyncio.gather(*(part(m) for m in members)), Decimal("0.00"))


async def child_pool_predecessors(info: Info, root: PoolRec) -> list[PoolRec]:
    """The predecessors of a pool held by a child node, asked of that node (with the caller's
    token, so the child applies the caller's scope): each is held in the child's subtree, and
    its own figures and predecessors are asked of the child in turn."""
    c = ctx(info)
    got = await _child_pool(info, root.region_code, root.id, want=("predecessors",))
    out = []
    for p in (got or {}).get("predecessors") or []:
        owner = c.node.child_for(p["region"])
        out.append(_held_pool(p["id"], root.scheme, p["region"], p, owner.name if owner is not None else c.node.name,
                              successor=root.id))
    return sorted(out, key=lambda p: p.id)


async def remote_predecessors(info: Info, root: PoolRec) -> list[PoolRec]:
    c = ctx(info)
    if not c.node.children:
        return []
    return await c.loaders.pool_remote_predecessors.load(root.id)  # type: ignore[no-any-return]


# ---------------------------------------------------------------- changes(state:, first:)

@dataclass(frozen=True)
class ParticipantView:
    node: str
    region_code: str
    state: str


@dataclass(frozen=True)
class ChangeView:
    id: str
    kind: str
    state: str
    idempotency_key: str
    started_at: str
    decided_at: str | None
    participants: list[ParticipantView]


async def changes(info: Info, state: str | None, first: int) -> list[ChangeView]:
    """Changes this node coordinates or takes part in, newest first (OPERATOR or AUDITOR)."""
    c = ctx(info)
    if not 1 <= first <= 1000:
        raise bad_input("first must be 1 to 1000", argument="first")
    if state is not None and state not in STATES:
        raise bad_input(f"state must be one of {', '.join(STATES)}", argument="state")
    pool = c.runtime.changes.pool
    rows = await cs.listing(pool, state, first)
    parts: dict[str, list[ParticipantView]] = {}
    for p in await cs.participants(pool, [r.id for r in rows]):
        parts.setdefault(p.change_id, []).append(ParticipantView(p.node, p.region, p.state))
    out = []
    for r in rows:
        here = ParticipantView(c.node.name, c.node.region, r.state)
        out.append(ChangeView(r.id, r.kind, r.state, r.idempotency_key, r.started_at.isoformat(),
                              r.decided_at.isoformat() if r.decided_at else None, [here, *parts.get(r.id, [])]))
    return out
