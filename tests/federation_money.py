"""The conservation law across a federation, checked from outside: the pools open at a
month, read through the top node, add up to the origin pools' opening balances plus
every record's pooled contributions less benefits on every node; transfers in and
out cancel (none is booked on one side only)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from decimal import Decimal
from typing import Any

import asyncpg

AS_OF = "2025-12"


async def check(post: Callable[[str], Awaitable[dict[str, Any] | None]], cons: dict[str, asyncpg.Connection],
                roots: dict[str, str]) -> dict[int, Decimal]:
    """Assert the law for every scheme; the totals per scheme."""
    open_ids = [r for con in cons.values() for r in await con.fetch(
        "select id, scheme from pool where opened_from <= $1 and (closed_after is null or closed_after >= $1)",
        date(2025, 12, 1))]
    fields = " ".join(f'p{i}: pool(id: "{r["id"]}") {{ balance(asOf: "{AS_OF}") }}' for i, r in enumerate(open_ids))
    for _ in range(3):  # a kept-alive connection closed under a forwarded request is retried, nothing else
        got = await post("{ " + fields + " }")
        errors = (got or {}).get("errors") or []
        if not errors or not all(e.get("extensions", {}).get("code") == "TIER_UNAVAILABLE" for e in errors):
            break
    assert got is not None and "errors" not in got, got.get("errors", [])[:3] if got else got
    totals = {}
    for scheme in range(1, 6):
        balances = sum((Decimal(got["data"][f"p{i}"]["balance"]) for i, r in enumerate(open_ids)
                        if r["scheme"] == scheme), Decimal(0))
        want = Decimal(0)
        for con in cons.values():
            want += await con.fetchval(
                "select coalesce(sum(opening_balance), 0) from pool p where scheme = $1 and not exists "
                "(select 1 from pool q where q.successor_id = p.id) and not exists "
                "(select 1 from pool_remote_predecessor r where r.successor_id = p.id)", scheme)
            want += await con.fetchval(
                "select coalesce(sum(employer_amount + individual_amount - individual_account_amount), 0) "
                "from contribution where scheme = $1 and month <= $2", scheme, date(2025, 12, 1))
            want -= await con.fetchval("select coalesce(sum(amount), 0) from benefit where scheme = $1 and month <= $2",
                                       scheme, date(2025, 12, 1))
        assert balances == want, (scheme, balances, want)
        totals[scheme] = balances
    moved = [await con.fetchval("select coalesce(sum(transfers_in) - sum(transfers_out), 0) from summary "
                                "where region_code = $1", roots[n]) for n, con in cons.items()]
    assert sum(moved) == 0, moved
    return totals
