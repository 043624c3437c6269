"""Node-to-node fields: what a parent node asks its children for."""

from __future__ import annotations

from typing import Any

from strawberry.types import Info
from tierfed.tiers import person_store
from tierfed.tiers.duplicates import months_to_json, outside_child
from tierfed.tiers.employers import answer_calls as employer_calls
from tierfed.tiers.persons import answer_calls
from tierfed.tiers.registered import page_json, registered
from tierfed.tiers.remote import LIVE, RemoteCalls, summary_to_json

from tierfed import codes
from tierfed.errors import Code, TierfedError, bad_input, forbidden

from . import budgets, changes, duplicates, pooling, ranking
from .common import as_month, int_arg, subtree_region, year_arg
from .context import ctx
from .persons import id_arg
from .rollups import period_arg


async def tier_summaries(info: Info, keys: list[Any]) -> list[dict[str, Any]]:
    """Full summaries per (region, from, to) of regions in this node's subtree, scope-checked."""
    c = ctx(info)
    parsed = []
    for k in keys:
        code = subtree_region(info, k.region)
        c.access.region(code, "summaries")
        parsed.append((code, as_month(k.from_, "from"), as_month(k.to, "to"), bool(k.compact)))
    return [summary_to_json(s) for s in await c.summary.load_many(parsed)]


async def tier_call(info: Info, kind: str, args: list[Any]) -> list[Any]:
    """A parent's internal calls of one kind, answered for this node's whole subtree."""
    c = ctx(info)
    if not all(isinstance(a, dict) for a in args):
        raise bad_input("_tierCall args must be JSON objects", argument="args")
    if kind in ("person", "statement"):
        for a in args:
            id_arg(str(a.get("id", "")), "args")
            if kind == "statement":
                year_arg(int_arg(a, "year"))
        return await answer_calls(c.persons, kind, args)
    if kind in ("employer", "employer_totals"):
        for a in args:
            try:
                codes.credit_code(str(a.get("code", "")))
            except ValueError as e:
                raise bad_input(str(e), argument="args") from None
        return await employer_calls(c.employers, kind, args, as_month)
    if kind == "duplicates":
        return await duplicates.answer_calls(info, args)
    if kind == "budgets":
        return await budgets.answer_calls(info, args)
    if kind == "ranking":
        return await ranking.answer_calls(info, args)
    if kind == "elsewhere":
        return await elsewhere(info, args)
    if kind == "pool":
        return await changes.answer_pool_calls(info, args)
    if kind == "pools":
        return [await pooling.pools_at(info, as_month(a.get("asOf"), "asOf")) for a in args]
    if kind == "registered":  # who is registered in a region (tierfed statements): nodes only
        node_caller(info)
        out = []
        for a in args:
            region, after, first = a.get("region"), a.get("after", ""), a.get("first")
            if not isinstance(region, str) or not codes.REGION_RE.match(region) or not isinstance(after, str) \
                    or not isinstance(first, int) or not 0 < first <= 10_000:
                raise bad_input("registered needs a region code, after (an ID number or \"\") and "
                                "0 < first <= 10000", argument="args")
            subtree_region(info, region)
            page, failed, _ = await registered(c.node, c.store.pool, c.remote, region, after, first)
            out.append(page_json(page, failed))
        return out
    if kind == "presence":
        node_caller(info)
        pages: list[Any] = []
        for a in args:
            since, first = a.get("since"), a.get("first")
            if not isinstance(since, int) or not isinstance(first, int) or since < 0 or not 0 < first <= 10_000:
                raise bad_input("presence needs since >= 0 and 0 < first <= 10000", argument="args")
            seen = await person_store.presence_since(c.store.pool, since, first)
            pages.append({"ids": [i for i, _ in seen], "seq": seen[-1][1] if seen else since})
        return pages
    raise bad_input(f"unknown internal call kind {kind!r}", argument="kind")


def node_caller(info: Info) -> None:
    """Node-to-node work without a caller: a NODE token whose scope covers this node, signed for it."""
    c = ctx(info)
    c.access.role("NODE", "this internal call")
    if not c.access.may(c.node.region):
        raise forbidden(f"node token of {c.caller.scope} does not cover this node's region {c.node.region}")
    if not c.access.node_above(c.node.name, c.node.region):
        raise forbidden(f"node token of {c.caller.scope} was signed for {c.caller.to or 'no node'}, not for this "
                        f"node '{c.node.name}'")
    # Node to node all the way down: this node asks its own children as itself, each with a
    # token signed for it (the one it was sent names this node, which its children refuse).
    index = c.runtime.index
    c.remote.token = lambda child: index.node_token(child) or ""


async def persons_changed(info: Info) -> bool:
    """A child tells this node its person feed moved: read it, then tell our own parent."""
    c = ctx(info)
    index = c.runtime.index
    child = index.child_of_caller(c.caller.scope)
    if child is None:
        raise forbidden(f"{c.caller.scope} is not a child node of this node")
    try:
        await index.sync_child(child)
    except Exception as e:  # noqa: BLE001 - the child is told why
        raise TierfedError(Code.TIER_UNAVAILABLE, f"could not read child node '{child.name}': {type(e).__name__}",
                           node=child.name) from None
    problem = await index.tell_parent()
    if problem:
        raise TierfedError(Code.TIER_UNAVAILABLE, problem, node=c.node.name)
    return True


async def elsewhere(info: Info, args: list[Any]) -> list[Any]:
    """For a child's import: the months held outside its subtree of the persons it shares with
    the rest of the federation, asked of this node's other parts and of its own parent."""
    c = ctx(info)
    c.access.role("NODE", "this internal call")
    rt = c.runtime
    child = rt.index.child_of_caller(c.caller.scope)
    if child is None:
        raise forbidden(f"{c.caller.scope} is not a child node of this node")
    out = []
    for a in args:
        f, t = period_arg(a.get("from"), a.get("to"))
        above, problem = await rt.index.held_elsewhere(f, t)
        if problem:
            raise TierfedError(Code.TIER_UNAVAILABLE, problem, node=c.node.name)
        live = RemoteCalls(rt.clients, rt.index.node_token() or "", {}, {}, LIVE)
        months = await outside_child(c.node, c.store, live, child, f, t, above)
        if live.errors:
            raise live.errors[0]
        out.append(months_to_json(months))
    return out
