"""Raising a pooling level: the write side, all or nothing in one transaction.

Every open pool of the scheme inside the region's subtree closes after the
month before ``effective_from`` and links to the new pool over the whole
region, whose opening balance is the sum of their balances then. Concurrent
raises on overlapping subtrees are kept apart by hierarchical advisory locks:
a raise holds its region exclusively and every ancestor shared, so two raises
conflict exactly when one region lies in the other's subtree.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any

import asyncpg

from tierfed import codes
from tierfed.errors import bad_input, conflict

from . import changestore
from .figures import SCHEMES
from .poolstore import (
    CHANGE_BY_KEY,
    CHANGES,
    CLOSE,
    FLOWS,
    OPEN,
    POOL_EXISTS,
    POOLS_BY_ID,
    POOLS_OF_SCHEME_NEAR,
    RECORD_CHANGE,
    TRY_LOCK,
    TRY_LOCK_SHARED,
    VERTICAL,
)
from .store import POOL_OPENINGS, PoolRec, _pool
from .tree import TIER_NAMES, Tree
from .vocabulary import pool_id

# Schemes 1, 3, 4 (pension, work injury, unemployment) sit under human resources and
# social security (department 1); 2 and 5 (medical, maternity) under healthcare security.
SCHEME_DEPARTMENT = {1: 1, 2: 2, 3: 1, 4: 1, 5: 2}


@dataclass(frozen=True)
class RaiseInput:
    scheme: int
    region: str
    effective_from: date
    idempotency_key: str
    dry_run: bool
    vertical_management: bool

    def to_json(self) -> dict[str, Any]:
        return {"scheme": SCHEMES[self.scheme - 1], "region": self.region,
                "effectiveFrom": codes.month_str(self.effective_from),
                "verticalManagement": self.vertical_management}


@dataclass(frozen=True)
class RaiseOutcome:
    pool: PoolRec
    closed: list[PoolRec]
    transferred: Decimal
    dry_run: bool
    replayed: bool
    # COMMITTED when applied (across nodes: when decided); None for a dry run.
    state: str | None = None


class _DryRun(Exception):
    pass


def pool_lock_key(scheme: int, region: str) -> int:
    """The advisory lock of the scheme's pools over ``region``: a pooling change holds its
    region's exclusively and its ancestors' shared (``_lock``); so does an import of fund flows
    for the pools it books into (tierfed.imports.rows)."""
    return zlib.crc32(f"pool:{scheme}:{region}".encode()) - 2**31


def pool_lock_keys(tree: Tree, scheme: int, region: str) -> tuple[int, list[int]]:
    """The locks a pooling change over ``region`` takes: the region's (exclusive) and its
    ancestors' (shared)."""
    return pool_lock_key(scheme, region), [pool_lock_key(scheme, a) for a in tree.by_code[region].ancestors]


async def _lock(con: asyncpg.Connection, tree: Tree, scheme: int, region: str) -> None:
    own, above = pool_lock_keys(tree, scheme, region)
    ok = await con.fetchval(TRY_LOCK, own)
    for key in above:
        ok = ok and await con.fetchval(TRY_LOCK_SHARED, key)
    if not ok:
        raise conflict(f"another pooling change of {SCHEMES[scheme - 1]} on a subtree overlapping {region} "
                       "is in progress; try again when it has finished")


async def balances_at(con: asyncpg.Connection, pools: list[PoolRec], scheme: int, at: date) -> Decimal:
    """The sum of open pools' balances at ``at``: their live opening balances plus their flows,
    in two statements whatever the number of pools."""
    if not pools:
        return Decimal("0.00")
    openings = sum((r["opening"] for r in await con.fetch(POOL_OPENINGS, [p.id for p in pools])), Decimal("0.00"))
    started = [p for p in pools if p.opened_from <= at]
    flows = await con.fetchval(FLOWS, [p.region_code for p in started], [p.opened_from for p in started], scheme, at)
    return openings + flows


async def raise_level(pool: asyncpg.Pool, tree: Tree, inp: RaiseInput, caller: str) -> RaiseOutcome:
    """Apply (or, with dry_run, compute and roll back) one raise; see the module docstring."""
    async with pool.acquire() as con:
        prior = await con.fetchrow(CHANGE_BY_KEY, inp.idempotency_key)
        if prior is not None:
            return await _replay(con, inp, prior)
        try:
            async with con.transaction():
                outcome = await _raise(con, tree, inp, caller)
                if inp.dry_run:
                    raise _DryRun
        except _DryRun:
            return outcome
        except asyncpg.UniqueViolationError:
            raise conflict(f"idempotency key {inp.idempotency_key!r} was used by a concurrent request") from None
        return outcome


async def _replay(con: asyncpg.Connection, inp: RaiseInput, prior: asyncpg.Record) -> RaiseOutcome:
    if json.loads(prior["input"]) != inp.to_json():
        raise conflict(f"idempotency key {inp.idempotency_key!r} was already used with other input")
    result = json.loads(prior["result"])
    recs = {r["id"]: _pool(r) for r in await con.fetch(POOLS_BY_ID, [result["pool"], *result["closed"]])}
    return RaiseOutcome(recs[result["pool"]], [recs[i] for i in result["closed"]],
                        Decimal(result["transferred"]), False, True, "COMMITTED")


def plan_replaced(tree: Tree, rows: list[asyncpg.Record], region: str, region_tier: int,
                  eff: date) -> tuple[list[PoolRec], list[str]]:
    """The open pools a raise to a region at ``region_tier`` replaces among ``rows`` (the pools of
    the scheme in ``region``'s subtree and above it), and every reason it cannot."""
    replaced: list[PoolRec] = []
    problems: list[str] = []
    for r in rows:
        p = _pool(r)
        if r["above"]:
            if p.closed_after is None or p.closed_after >= eff:
                problems.append(f"{region} is already pooled at {TIER_NAMES[tree.by_code[p.region_code].tier]} "
                                f"level by pool {p.id}")
            continue
        if p.closed_after is None:
            if tree.by_code[p.region_code].tier <= region_tier:
                problems.append(f"pool {p.id} is at {TIER_NAMES[tree.by_code[p.region_code].tier]} level, "
                                f"not below {TIER_NAMES[region_tier]}: the new level must be above the pools it replaces")
            elif p.opened_from >= eff:
                problems.append(f"effectiveFrom {codes.month_str(eff)} is not after pool {p.id}'s openedFrom "
                                f"{codes.month_str(p.opened_from)}")
            else:
                replaced.append(p)
        elif p.closed_after >= eff:
            problems.append(f"pool {p.id} covers months up to {codes.month_str(p.closed_after)}, "
                            f"overlapping effectiveFrom {codes.month_str(eff)}")
    return replaced, problems


async def check_not_reserved(con: asyncpg.Connection, scheme: int, region: str) -> None:
    """CONFLICT when a change across nodes in progress holds pools of the scheme overlapping ``region``."""
    held = await changestore.overlapping(con, scheme, region)
    if held is not None:
        raise conflict(f"change {held['id']} ({held['kind']}, key {held['idempotency_key']!r}) in progress holds "
                       f"{SCHEMES[scheme - 1]} pools overlapping {region}; try again when it has finished",
                       change=held["id"])


async def _raise(con: asyncpg.Connection, tree: Tree, inp: RaiseInput, caller: str) -> RaiseOutcome:
    if not inp.dry_run:
        # the key may not be one a change across nodes (a transfer, a raise) already uses here
        await changestore.claim_key(con, inp.idempotency_key)
    await _lock(con, tree, inp.scheme, inp.region)
    await check_not_reserved(con, inp.scheme, inp.region)
    eff = inp.effective_from
    before = codes.add_months(eff, -1)
    region_tier = tree.by_code[inp.region].tier
    rows = await con.fetch(POOLS_OF_SCHEME_NEAR, inp.scheme, inp.region)
    replaced, problems = plan_replaced(tree, rows, inp.region, region_tier, eff)
    if problems:
        raise bad_input("raisePoolingLevel refused, nothing changed: " + "; ".join(problems), problems=problems)
    transferred = await balances_at(con, replaced, inp.scheme, before)
    new_id = pool_id(inp.region, inp.scheme, eff)
    if await con.fetchval(POOL_EXISTS, new_id):
        raise conflict(f"pool {new_id} already exists")
    await con.execute(OPEN, new_id, inp.scheme, inp.region, eff, transferred)
    await con.execute(CLOSE, [p.id for p in replaced], before, new_id)
    if inp.vertical_management:
        await con.execute(VERTICAL, inp.region, SCHEME_DEPARTMENT[inp.scheme])
    closed = [replace(p, closed_after=before, successor_id=new_id) for p in replaced]
    new = PoolRec(new_id, inp.scheme, inp.region, eff, None, transferred, None,
                  virtual=inp.dry_run, predecessor_recs=tuple(closed) if inp.dry_run else ())
    if not inp.dry_run:
        await con.execute(RECORD_CHANGE, inp.idempotency_key, json.dumps(inp.to_json()),
                          json.dumps({"pool": new_id, "closed": [p.id for p in closed],
                                      "transferred": str(transferred)}), caller)
    return RaiseOutcome(new, closed, transferred, inp.dry_run, False, None if inp.dry_run else "COMMITTED")


@dataclass(frozen=True)
class ChangeRec:
    """A raise recorded on this node (``poolingChanges``)."""

    id: str
    idempotency_key: str
    caller: str
    at: str
    input: Any
    result: Any


async def changes(pool: asyncpg.Pool, region: str | None, limit: int) -> list[ChangeRec]:
    return [ChangeRec(str(r["id"]), r["idempotency_key"], r["caller"], r["created_at"].isoformat(),
                      json.loads(r["input"]), json.loads(r["result"])) for r in await pool.fetch(CHANGES, region, limit)]
