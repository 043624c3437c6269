"""Node-to-node fields: what a parent node asks its children for."""

from __future__ import annotations

from typing import Any

from strawberry.types import Info
from tierfed.tiers.remote import summary_to_json

from .common import as_month, subtree_region
from .context import ctx


async def tier_summaries(info: Info, keys: list[Any]) -> list[dict[str, Any]]:
    """Full summaries per (region, from, to) of regions in this node's subtree, scope-checked."""
    c = ctx(info)
    parsed = []
    for k in keys:
        code = subtree_region(info, k.region)
        c.access.region(code, "summaries")
        parsed.append((code, as_month(k.from_, "from"), as_month(k.to, "to"), bool(k.compact)))
    return [summary_to_json(s) for s in await c.summary.load_many(parsed)]
