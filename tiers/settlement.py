"""Settling the pension central adjustment: one change across nodes (tiers/changes.py).

Each province's pension pool books its remittance as REMITTANCE_TO_ABOVE and its
allocation as SUBSIDY_FROM_ABOVE (fund_flow rows and their summaries, as the
fund_flows import books them) in one month. The central node coordinates: it
checks and reserves the pools of the provinces it holds itself, each child node
holding provinces checks and reserves its own (``prepare``), and the decision
books the central node's part in the same transaction; the children book theirs
when told (or when they ask, after a crash). A node that does not answer before
the decision aborts the whole settlement: no pool books anything. The remittances
and allocations add up to the same total to the fen (resolvers/adjustment.py), so
the settlement moves no yuan in or out of the federation's pension pools.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import asyncpg

from tierfed import codes
from tierfed.errors import bad_input, conflict

from . import changestore as cs
from .faults import crash_point
from .figures import SCHEME_ID
from .intent import intent, step
from .pooling import _lock, check_not_reserved
from .poolstore import BOOK, BOOKED_ALREADY, PROVINCE_POOL

SETTLE = "settleCentralAdjustment"
PENSION = SCHEME_ID["PENSION"]


@dataclass(frozen=True)
class Booking:
    """One province's part: its remittance and allocation, and the pool that books them."""

    region: str
    remittance: Decimal
    allocation: Decimal
    pool: str | None = None

    def to_json(self) -> list[Any]:
        return [self.region, str(self.remittance), str(self.allocation), self.pool]

    @staticmethod
    def from_json(v: list[Any]) -> Booking:
        return Booking(str(v[0]), Decimal(v[1]), Decimal(v[2]), v[3] if len(v) > 3 else None)


@dataclass(frozen=True)
class SettleInput:
    year: int
    ratio: Decimal
    month: date
    idempotency_key: str
    dry_run: bool
    bookings: tuple[Booking, ...]

    def key_json(self) -> dict[str, Any]:
        """What an idempotency key is bound to (the figures are computed from them)."""
        # the ratio as a number: 0.045 and 0.0450 are the same input
        return {"year": self.year, "ratio": f"{self.ratio.normalize():f}", "month": codes.month_str(self.month)}


def _as_number(key_input: Any) -> Any:
    """A recorded key's input with its ratio as a number (recorded as written before 0.0450 and
    0.045 were one input)."""
    if isinstance(key_input, dict) and isinstance(key_input.get("ratio"), str):
        try:
            return {**key_input, "ratio": f"{Decimal(key_input['ratio']).normalize():f}"}
        except ArithmeticError:
            return key_input
    return key_input


@dataclass(frozen=True)
class SettleOutcome:
    change_id: str | None
    state: str | None
    month: date
    bookings: list[Booking]
    replayed: bool
    dry_run: bool


async def check(con: asyncpg.Connection, node: Any, bookings: list[Booking], month: date) -> list[Booking]:
    """The province pools this node holds for ``bookings``, checked: a province pool covering the
    month, nothing booked in it yet, no change holding it (and none can start until this commits)."""
    out = []
    for b in bookings:
        await _lock(con, node.tree, PENSION, b.region)
        await check_not_reserved(con, PENSION, b.region)
        pool = await con.fetchval(PROVINCE_POOL, PENSION, b.region, month)
        if pool is None:
            raise bad_input(f"node '{node.name}': province {b.region} has no province-level PENSION pool covering "
                            f"{codes.month_str(month)}: raise its pooling level first, nothing was settled")
        booked = await con.fetch(BOOKED_ALREADY, pool, month)
        if booked:
            raise conflict(f"node '{node.name}': pool {pool} already has {booked[0]['category']} of "
                           f"{booked[0]['amount']} booked in {codes.month_str(month)}: a central adjustment is "
                           "settled once per pool and month, nothing was settled")
        out.append(Booking(b.region, b.remittance, b.allocation, str(pool)))
    return out


async def reserve(con: asyncpg.Connection, change_id: str, bookings: list[Booking]) -> None:
    for b in bookings:
        await cs.reserve_pools(con, change_id, PENSION, b.region)


async def book(con: asyncpg.Connection, root: str, month: date, bookings: list[Booking]) -> None:
    pools = [b.pool for b in bookings for _ in (0, 1)]
    cats = [c for _ in bookings for c in ("REMITTANCE_TO_ABOVE", "SUBSIDY_FROM_ABOVE")]
    amounts = [a for b in bookings for a in (b.remittance, b.allocation)]
    if pools:
        await con.execute(BOOK, root, month, pools, cats, amounts)


# ---------------------------------------------------------------- participant


async def prepare(ch: Any, msg: dict[str, Any], parent: str, dry: bool) -> dict[str, Any]:
    """A child node's part: check and reserve the province pools it holds."""
    change_id = str(msg["change"])
    inp = msg["input"]
    month = codes.month(str(inp["month"]))
    bookings = [Booking.from_json(b) for b in inp["bookings"]]
    node = ch.node
    for b in bookings:
        if not node.in_subtree(b.region) or node.child_for(b.region) is not None:
            raise bad_input(f"node '{node.name}' does not hold province {b.region}'s pool")
    async with step(ch.pool, dry) as con:
        mine = await check(con, node, bookings, month)
        answer = {"ok": True, "pools": {b.region: b.pool for b in mine}}
        if not dry:
            # keys hold across kinds and nodes: one a raise or a transfer used here refuses the settlement
            await cs.claim_key(con, str(msg["key"]), change_id)
            plan = {"month": codes.month_str(month), "bookings": [b.to_json() for b in mine], "answer": answer}
            await cs.insert(con, change_id, SETTLE, "participant", parent, str(msg["key"]), inp, plan,
                            str(msg.get("caller", "")))
            await reserve(con, change_id, mine)
    if not dry:
        crash_point("participant-after-reserve")
    return answer


async def apply(con: asyncpg.Connection, plan: dict[str, Any], root: str) -> None:
    await book(con, root, codes.month(plan["month"]), [Booking.from_json(b) for b in plan["bookings"]])


# ---------------------------------------------------------------- coordinator


async def settle(ch: Any, inp: SettleInput, caller: str) -> SettleOutcome:
    """The settlement across the federation, all or nothing (see the module docstring)."""
    prior = await cs.by_key(ch.pool, inp.idempotency_key)
    if prior is not None and prior.state != "ABORTED" and not inp.dry_run:
        if prior.kind != SETTLE or _as_number(prior.input) != inp.key_json():
            raise conflict(f"idempotency key {inp.idempotency_key!r} was already used with other input")
        if prior.state == "PENDING" or prior.result is None:
            raise conflict(f"change {prior.id} with idempotency key {inp.idempotency_key!r} is in progress")
        return SettleOutcome(prior.id, prior.state, codes.month(prior.result["month"]),
                             [Booking.from_json(b) for b in prior.result["bookings"]], True, False)
    node = ch.node
    local = [b for b in inp.bookings if node.child_for(b.region) is None]
    by_child: dict[str, tuple[Any, list[Booking]]] = {}
    for b in inp.bookings:
        owner = node.child_for(b.region)
        if owner is not None:
            by_child.setdefault(owner.name, (next(p for p in ch.child_peers() if p.name == owner.name), []))[1].append(b)
    change_id = ch.new_id()
    ch.in_flight.add(change_id)
    decided = False
    try:
        async with intent(ch.pool, inp.dry_run) as con:
            done_before = await cs.settled_year(con, SETTLE, inp.year)
            if done_before is not None:
                word = "was settled" if done_before["state"] == "COMMITTED" else "is being settled"
                raise conflict(f"the central adjustment of {inp.year} {word} already (change {done_before['id']}, "
                               f"key {done_before['idempotency_key']!r}, booked in {done_before['month']}): a year "
                               "is settled once, nothing was settled", change=done_before["id"])
            mine = await check(con, node, local, inp.month)
            if not inp.dry_run:
                await cs.claim_key(con, inp.idempotency_key)  # keys hold across kinds, as for raises and transfers
                await cs.insert(con, change_id, SETTLE, "coordinator", None, inp.idempotency_key, inp.key_json(),
                                {"bookings": [b.to_json() for b in mine]}, caller)
                await cs.add_participants(con, change_id, [(p.name, p.region) for p, _ in by_child.values()])
                await reserve(con, change_id, mine)

        async def ask(peer: Any, part: list[Booking]) -> tuple[Any, dict[str, Any]]:
            msg = {"op": "prepare", "kind": SETTLE, "change": change_id, "key": inp.idempotency_key,
                   "caller": caller, "dryRun": inp.dry_run,
                   "input": {"month": codes.month_str(inp.month), "bookings": [b.to_json() for b in part]}}
            return peer, await ch._ask(peer, msg)

        answers = await asyncio.gather(*(ask(p, part) for p, part in by_child.values()))
        refused = [(p, a) for p, a in answers if not a.get("ok")]
        if refused:
            raise ch._refused(refused)
        pools = {r: pid for _, a in answers for r, pid in a.get("pools", {}).items()}
        pools.update({b.region: b.pool for b in mine})
        done = [Booking(b.region, b.remittance, b.allocation, pools.get(b.region)) for b in inp.bookings]
        if inp.dry_run:
            return SettleOutcome(None, None, inp.month, done, False, True)
        result = {"month": codes.month_str(inp.month), "bookings": [b.to_json() for b in done]}
        async with ch.pool.acquire() as con, con.transaction():
            if not await cs.decide(con, change_id, "COMMITTED", result):
                raise conflict(f"change {change_id} was aborted while it waited; nothing changed anywhere")
            decided = True
            await book(con, node.region, inp.month, mine)
        crash_point("coordinator-after-decision")
        await ch.tell_decided(change_id)
        return SettleOutcome(change_id, "COMMITTED", inp.month, done, False, False)
    except BaseException:
        if not decided and not inp.dry_run:
            await ch._abort_quietly(change_id)
        raise
    finally:
        ch.in_flight.discard(change_id)
