"""Who is registered in a region, wherever in the federation: ID numbers in order, a page at a
time, each with the region of their registration there (``tierfed statements`` reads them).

A node answers for its subtree: its own ``person`` rows inside the region, merged with the
pages of the children whose part of the tree meets the region; each page is the first
``first`` ID numbers after ``after`` of the union, so paging never skips or repeats one.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from .node import Node
from .person_store import REGISTERED_PAGE
from .remote import RemoteCalls, ask_children


async def registered(node: Node, pool: asyncpg.Pool, remote: RemoteCalls, region: str, after: str,
                     first: int) -> tuple[list[list[str]], list[str], bool]:
    """The page (``[id_number, region]`` pairs), the regions of children that did not answer, and
    whether this is a planning pass (the page is then empty)."""
    owner = node.child_for(region)
    if owner is not None:  # the region lies inside one child's part of the tree
        asked, local = [(owner, region)], []
    else:  # each child whose whole part lies inside the region is asked for that part
        asked = [(c, c.region) for c in node.children_within(region)]
        local = [[r["id_number"], r["region_code"]] for r in await pool.fetch(REGISTERED_PAGE, region, after, first)]
    got = await asyncio.gather(*(ask_children(remote, [c], "registered", {"region": r, "after": after,
                                                                          "first": first}) for c, r in asked))
    answers = [a for one in got for a in one[0]]
    failed = [f for one in got for f in one[1]]
    if any(one[2] for one in got):
        return [], failed, True
    failed = [*failed, *(str(m) for a in answers for m in a.get("missing", []) if m not in failed)]
    merged: dict[str, str] = {}
    for idn, reg in [*local, *(pair for a in answers for pair in a["ids"])]:
        if idn not in merged or reg < merged[idn]:
            merged[str(idn)] = str(reg)
    return [[i, merged[i]] for i in sorted(merged)[:first]], failed, False


def page_json(page: list[list[str]], failed: list[str]) -> dict[str, Any]:
    return {"ids": page, "missing": failed}
