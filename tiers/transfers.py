"""Insurance transfers between regions, on one node or across nodes (a change, tiers/changes.py).

What moves follows the 2009 interim measures on transferring urban employees'
basic pension insurance (and the medical insurance rules of the same year): for
PENSION, the individual-account credits and, from the origin's pooled fund to
the destination's, 12% of the sum of the person's monthly contribution bases at
the origin; for MEDICAL, the individual-account credits; for the other schemes,
the relationship alone. The pooled amount is booked like the records, in the
month the transfer takes effect (``summary.transfers_out`` at the origin's
region, ``transfers_in`` at the destination's), so both pools' balances change
by exactly that amount and balances stay computed, never stored.

Sides: the *origin* (the node holding the person's region) checks the person
and computes what moves; the *destination* (the node holding the ``to``
region) registers the person from ``effectiveFrom``. Each side may be the
coordinator itself, a child, or a node further down (its parent passes the
step on and keeps a part of its own, with nothing to apply).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

import asyncpg

from tierfed import codes
from tierfed.errors import Code, TierfedError, bad_input, conflict

from . import changestore as cs
from . import transferstore as ts
from .faults import crash_point
from .intent import intent
from .intent import step as step_transaction

if TYPE_CHECKING:
    from .changes import Changes

TRANSFER = "transferInsurance"

POOLED_RATE = Decimal("0.12")
ACCOUNT_SCHEMES = (1, 2)  # PENSION and MEDICAL carry individual accounts
CENT = Decimal("0.01")

@dataclass(frozen=True)
class TransferInput:
    id_number: str
    to: str
    effective_from: date
    idempotency_key: str
    dry_run: bool

    def to_json(self) -> dict[str, Any]:
        return {"idNumber": self.id_number, "to": self.to, "effectiveFrom": codes.month_str(self.effective_from)}


@dataclass(frozen=True)
class TransferOutcome:
    transfer: ts.TransferRec
    replayed: bool
    dry_run: bool


def what_moves(rows: list[tuple[int, Decimal, Decimal]]) -> list[dict[str, Any]]:
    """Per scheme the person has at the origin: individual-account credits and the pooled fund moved."""
    out = []
    for scheme, account, bases in rows:
        acc = account if scheme in ACCOUNT_SCHEMES else Decimal("0")
        pooled = (bases * POOLED_RATE).quantize(CENT, ROUND_HALF_UP) if scheme == 1 else Decimal("0")
        out.append({"scheme": scheme, "individualAccount": str(acc.quantize(CENT)), "pooledFund": str(pooled)})
    return out


class NotHere(Exception):
    """An origin asked to locate the person itself does not hold them registered (its subtree's
    other nodes aside: the caller looks below, or refuses with NOT_HERE)."""


NOT_HERE = "notHere"  # in a refusal: the node asked to locate the person does not have them registered


async def check_side(con: asyncpg.Connection, side: str, inp: dict[str, Any], node: Any,
                     key: str | None = None) -> dict[str, Any]:
    """This node's checks of its side (held here, not by a child); the answer the coordinator needs.
    With ``key``, the same statement takes the key's lock (claim_key's first half). At the origin
    with ``from`` unknown (None), the region the person is registered in here, in the same
    statement: NotHere when that is not a region this node holds itself; the answer's ``from``."""
    id_number, eff = inp["idNumber"], codes.month(inp["effectiveFrom"])
    region = inp.get("from") if side == "out" else inp["to"]
    c = await con.fetchrow(ts.CHECK_SIDE, region, id_number, side == "out", eff, key)
    if side == "out" and region is None:
        region = c["region_code"]
        if region is None or not node.in_subtree(region) or node.child_for(region) is not None:
            raise NotHere(region)
        if region == inp["to"]:
            raise bad_input(f"the person is already registered in region {region}", argument="to")
    if c["importing"]:
        raise conflict(f"an import of records is running on node '{node.name}', which holds the origin: try again "
                       "when it has finished (a transfer checks the person's last record)")
    if c["raise_id"] is not None:
        raise conflict(f"raise {c['raise_id']} (key {c['raise_key']!r}) in progress covers region {region}; "
                       "try again when it has finished", change=c["raise_id"])
    if c["reserved_id"] is not None:
        raise conflict(f"change {c['reserved_id']} ({c['reserved_kind']}) in progress holds this person; "
                       "try again when it has finished", change=c["reserved_id"])
    if c["prev_id"] is not None and c["prev_from"] >= eff:
        raise bad_input(f"effectiveFrom {inp['effectiveFrom']} is not after the person's previous transfer, "
                        f"effective {codes.month_str(c['prev_from'])} ({c['prev_id']})", argument="effectiveFrom")
    if side == "in":
        return {"ok": True}
    if c["region_code"] != region:
        raise bad_input(f"node '{node.name}' has no person with this ID number registered in {region}")
    last = c["last_month"]
    if last is not None and last >= eff:
        raise bad_input(f"effectiveFrom {inp['effectiveFrom']} is not after the person's last record at the origin "
                        f"({codes.month_str(last)}): records up to then stay at the origin", argument="effectiveFrom")
    figures = list(zip(c["schemes"] or [], c["accounts"] or [], c["bases"] or []))
    return {"ok": True, "name": c["name"], "schemes": what_moves(figures), "from": region}


async def apply(con: asyncpg.Connection, change_id: str, plan: dict[str, Any], root: str) -> None:
    """Apply the sides held here (``plan["sides"]``, or the one ``plan["side"]``): record the transfer,
    move or register the person, book the pooled fund."""
    if "sides" in plan:
        sides = list(plan["sides"])
    else:
        sides = [] if plan.get("nested") else [plan["side"]]
    eff = codes.month(plan["effectiveFrom"]) if sides else None
    for side in sides:
        assert eff is not None
        t = ts.TransferRec(change_id, plan["idNumber"], plan["name"], plan["from"], plan["to"], eff, plan["schemes"])
        await ts.record(con, t, side)
        if side == "out":
            await ts.move_person(con, t.id_number, t.to_region)
        else:
            await ts.register_person(con, t.id_number, t.name, t.to_region)
        for s in t.schemes:
            amount = Decimal(s["pooledFund"])
            if amount:
                moved_in, moved_out = (amount, Decimal(0)) if side == "in" else (Decimal(0), amount)
                await ts.book(con, t.from_region if side == "out" else t.to_region, eff, int(s["scheme"]),
                              moved_in, moved_out, root)


# ---------------------------------------------------------------- participant

async def prepare(ch: Changes, msg: dict[str, Any], parent: str, dry: bool) -> dict[str, Any]:
    """The sides of a transfer sent by the parent (``sides``: ``out``, ``in`` or both; ``side`` for one):
    those held here checked and reserved here, the others passed on to the children holding them,
    the origin's first (it tells what moves), then the destination's with it. A node holding both
    sides, or both sides' children, thus coordinates its own subtree's part of the change.

    The origin's side alone may come without ``from`` (the parent's person index named this node as
    holding the person): this node locates the person itself, in its checks' statement when it holds
    their region itself, else through its children as a ``locate`` step does; a node that does not
    have them registered in its subtree refuses with ``notHere``, having reserved nothing."""
    inp = dict(msg["input"])
    raw_sides = msg.get("sides") or [msg.get("side")]
    sides = [s for s in ("out", "in") if s in raw_sides]
    if not sides or len(sides) != len(raw_sides):
        raise bad_input("a transfer's sides are 'out' and 'in'")
    if inp.get("from") is None and "out" in sides and sides != ["out"]:
        raise bad_input("a transfer's origin is located by its side alone")
    try:
        return await _prepare(ch, msg, inp, sides, parent, dry)
    except NotHere:
        pass
    node = ch.node
    where = await locate_here_or_below(ch, str(inp["idNumber"])) if node.children else {"ok": True, "region": None}
    if not where.get("ok"):
        return where
    if where.get("region") is None:
        return {"ok": False, "code": Code.BAD_USER_INPUT.value, NOT_HERE: True, "node": node.name,
                "message": f"node '{node.name}' has no person with this ID number registered in its subtree"}
    return await _prepare(ch, msg, {**inp, "from": where["region"]}, sides, parent, dry)


async def _prepare(ch: Changes, msg: dict[str, Any], inp: dict[str, Any], sides: list[str], parent: str,
                   dry: bool) -> dict[str, Any]:
    change_id = str(msg["change"])
    node = ch.node
    holder: dict[str, Any] = {}
    for side in sides:
        region = inp.get("from") if side == "out" else inp.get("to")
        if side == "out" and region is None:  # located here, in the checks' statement (NotHere if not)
            holder[side] = None
            continue
        if not isinstance(region, str) or region not in node.tree or not node.in_subtree(region):
            raise bad_input(f"region {region} is not in node '{node.name}''s subtree")
        holder[side] = node.child_for(region)
    here = [s for s in sides if holder[s] is None]
    kids: list[Any] = []
    for side in sides:  # the origin's holder first
        h = holder[side]
        if h is not None and all(k.name != h.name for k in kids):
            kids.append(h)
    answer: dict[str, Any] = {"ok": True}
    moving = dict(inp)
    try:
        async with step_transaction(ch.pool, dry) as con:
            key = None if dry else str(msg["key"])
            # the key's lock goes with the first check (claim_key's check with the record, below)
            if "out" in here:
                answer = await check_side(con, "out", inp, node, key)
                moving.update(name=answer["name"], schemes=answer["schemes"], **{"from": answer["from"]})
            if "in" in here:
                await check_side(con, "in", moving, node, None if "out" in here else key)
            if not here and not dry:
                await cs.key_lock(con, key)
                reserved = await cs.person_reserved(con, inp["idNumber"])
                if reserved is not None:
                    raise conflict(f"change {reserved['id']} in progress holds this person")
            if key is not None:
                plan = {**moving, "sides": here, "nested": not here}
                if "out" in here or "out" not in sides:
                    plan["answer"] = answer
                await cs.claim_and_record(con, change_id, TRANSFER, "participant", parent, key, inp, plan,
                                          str(msg.get("caller", "")), [(k.name, k.region) for k in kids],
                                          person=inp["idNumber"], own=change_id)
    except asyncpg.UniqueViolationError:
        raise conflict("another change in progress holds this person or uses this idempotency key") from None
    if not kids:
        if not dry:
            crash_point("participant-after-reserve")
        return answer
    ch.in_flight.add(change_id)
    failure: dict[str, Any] | None = None
    try:
        for kid in kids:
            theirs = [s for s in sides if holder[s] is not None and holder[s].name == kid.name]
            peer = ch.child_peer(kid.name)
            assert peer is not None
            step = {**msg, "sides": theirs, "input": moving}
            step.pop("side", None)
            if len(theirs) == 1:
                step["side"] = theirs[0]
            got = await ch._ask(peer, step)
            if not got.get("ok"):
                failure = got
                break
            if "out" in theirs:
                answer = {k: v for k, v in got.items() if k != "ms"}
                moving.update(name=got["name"], schemes=got["schemes"])
    finally:
        ch.in_flight.discard(change_id)
    if failure is not None:
        if not dry:
            await ch._release(change_id, [])
        return failure
    if not dry:
        if "out" in sides and "out" not in here:
            # What moves came from a child: kept (flushed) before answering, as this node applies
            # its own side with it, and a repeated prepare gets the same answer.
            async with ch.pool.acquire() as con:
                await con.execute(cs.MERGE_PLAN, change_id,
                                  json.dumps({"name": moving["name"], "schemes": moving["schemes"], "answer": answer}))
        crash_point("participant-after-reserve")
    return answer


async def locate_here_or_below(ch: Changes, id_number: str,
                               read: tuple[str | None, list[str]] | None = None) -> dict[str, Any]:
    """Where the person is registered, when that region is in this node's subtree (asking children).

    The person index (tiers/personindex.py) names the children holding the person: while it
    is current for every child, those are asked first, and the others only when none of
    them has the person registered (the index may lag behind a transfer just made).
    ``read``: LOCATE's row (region here, children named), when the caller has read it."""
    node = ch.node
    if read is None:
        async with ch.pool.acquire() as con:
            row = await con.fetchrow(ts.LOCATE, id_number)
        read = (row["region_code"], list(row["children"]))
    here, named = read
    if _held_here(node, here):
        return {"ok": True, "region": here}
    peers = ch.child_peers()
    if peers and _index_current(ch):
        held = set(named)
        rounds = [[p for p in peers if p.name in held], [p for p in peers if p.name not in held]]
    else:
        rounds = [peers]
    for asked in rounds:
        if not asked:
            continue
        answers = await asyncio.gather(*(ch._ask(p, {"op": "locate", "idNumber": id_number}) for p in asked))
        for a in answers:
            if a.get("region"):
                return {"ok": True, "region": a["region"]}
        down = [a for a in answers if not a.get("ok")]
        if down:
            return {"ok": False, "code": Code.TIER_UNAVAILABLE.value, "node": down[0].get("node"),
                    "message": f"cannot tell where the person is registered: {down[0].get('message')}"}
    return {"ok": True, "region": None}


def _held_here(node: Any, region: str | None) -> bool:
    """Whether ``region`` (where the person is registered here, if at all) is held by this node itself."""
    return region is not None and node.in_subtree(region) and node.child_for(region) is None


def _index_current(ch: Changes) -> bool:
    """Whether this node's person index is current for every child (its names can be trusted first)."""
    index = getattr(ch.rt, "index", None)
    return index is not None and all(index.is_current(k.name) for k in ch.node.children)


# ---------------------------------------------------------------- coordinator

class _Relocate(Exception):
    """The child the person index named does not have the person registered: the change was
    aborted everywhere, and is made again after a ``locate``."""


async def transfer(ch: Changes, inp: TransferInput, caller: str) -> TransferOutcome:
    """transferInsurance, all or nothing on every node involved.

    Where the person is registered decides the origin. When this node holds them itself, it knows;
    when its person index (current for every child) names one child as holding them, and that
    child is not the destination's, the origin's ``prepare`` goes to that child without ``from``
    and the child locates the person itself: no ``locate`` round trip before the intent. Otherwise
    (and again, when the child named answers that it does not have them: the index lags behind a
    transfer just made) a ``locate`` goes first, asking the children."""
    from .changes import Phases

    node = ch.node
    masked = codes.mask_id(inp.id_number)
    ph = Phases(ch.timings, "transfer-dry" if inp.dry_run else "transfer")
    prior, row = await ts.prior_and_locate(ch.pool, inp.idempotency_key, inp.id_number)
    if prior is not None and not inp.dry_run and prior.state != "ABORTED":
        if prior.kind != TRANSFER or prior.input != inp.to_json():
            raise conflict(f"idempotency key {inp.idempotency_key!r} was already used with other input")
        if prior.result is None:
            raise conflict(f"change {prior.id} with idempotency key {inp.idempotency_key!r} is in progress")
        return TransferOutcome(_rec(prior.id, prior.result, "COMMITTED"), True, False)
    read = (row["located_region"], list(row["located_children"]))
    guess = _named_origin(ch, read, inp.to)
    if guess is not None:
        ph.mark("prior")
        try:
            return await _transfer(ch, inp, caller, None, guess, ph)
        except _Relocate:
            read = (read[0], [])  # the index's names just failed: every child is asked
    where = await locate_here_or_below(ch, inp.id_number, read)
    if not where.get("ok"):
        raise TierfedError(Code.TIER_UNAVAILABLE, str(where.get("message")), nodes=[where.get("node")])
    frm = where.get("region")
    if frm is None:
        raise bad_input(f"no person with ID number {masked} is registered in this node's subtree {node.region}",
                        argument="idNumber")
    if frm == inp.to:
        raise bad_input(f"the person is already registered in region {inp.to}", argument="to")
    ph.mark("locate")
    return await _transfer(ch, inp, caller, frm, None, ph)


def _named_origin(ch: Changes, read: tuple[str | None, list[str]], to: str) -> Any:
    """The child that the person index names alone as holding the person, when it is current for
    every child, this node does not hold them itself, and that child does not hold ``to`` (its
    subtree might then take both sides); else None."""
    node = ch.node
    here, named = read
    kids = node.children
    if _held_here(node, here) or len(named) != 1 or not kids or not _index_current(ch):
        return None
    origin = next((k for k in kids if k.name == named[0]), None)
    dest = node.child_for(to)
    if origin is None or (dest is not None and dest.name == origin.name):
        return None
    return origin


async def _transfer(ch: Changes, inp: TransferInput, caller: str, frm: str | None, guess: Any,
                    ph: Any) -> TransferOutcome:
    """The change itself, from the intent: the origin ``frm`` (held here or by a child), or unknown
    and located by the child ``guess`` in its prepare."""
    node = ch.node
    origin, dest = (node.child_for(frm) if frm is not None else guess), node.child_for(inp.to)
    # Both regions in one child's subtree: that child takes both sides (and coordinates its own
    # subtree's part); this node, as the one the mutation was sent to, coordinates and decides.
    both = origin is not None and dest is not None and origin.name == dest.name
    base = {**inp.to_json(), "from": frm}
    change_id = ch.new_id()
    kids = [origin] if both else [k for k in (origin, dest) if k is not None]
    ch.in_flight.add(change_id)
    decided = False
    local: dict[str, dict[str, Any]] = {}
    try:
        try:
            async with intent(ch.pool, inp.dry_run, set_async=False) as con:
                key = None if inp.dry_run else inp.idempotency_key
                # the key's lock and the unflushed commit in one statement, claim_key's check with the record
                await cs.key_lock(con, key, async_commit=True)
                if origin is None:
                    local["out"] = await check_side(con, "out", base, node)
                if dest is None:
                    local["in"] = await check_side(con, "in", base, node)
                if key is not None:
                    await cs.claim_and_record(con, change_id, TRANSFER, "coordinator", None, key, inp.to_json(),
                                              {"from": frm}, caller, [(k.name, k.region) for k in kids],
                                              person=inp.id_number)
        except asyncpg.UniqueViolationError:
            raise conflict("another change in progress holds this person or uses this idempotency key") from None
        msg = {"op": "prepare", "kind": TRANSFER, "change": change_id, "key": inp.idempotency_key,
               "caller": caller, "dryRun": inp.dry_run}
        # The origin's and the destination's prepares go at once: the destination checks and
        # reserves its side without knowing what moves (unless this node holds the origin and
        # knows it already); what moves reaches it with the decision (``moves`` in the commit
        # step, or in the answer to its ``status`` question), docs/CHANGES.md.
        asks: list[tuple[Any, dict[str, Any]]] = []
        if origin is not None:
            asks.append((origin, {**msg, "sides": ["out", "in"], "input": base} if both
                         else {**msg, "side": "out", "input": base}))
        if dest is not None and not both:
            theirs = base if origin is not None else {**base, "name": local["out"]["name"],
                                                       "schemes": local["out"]["schemes"]}
            asks.append((dest, {**msg, "side": "in", "input": theirs}))
        answers: list[dict[str, Any]] = []

        ph.mark("intent")

        async def prepare(kid: Any, step: dict[str, Any]) -> dict[str, Any]:
            t0 = time.perf_counter()
            a = await ch._ask(ch.child_peer(kid.name), step)  # type: ignore[arg-type]
            ph.child(kid.name, step.get("side") or "both", t0, a)
            if a.get("ok"):
                answers.append(a)
                if not inp.dry_run:
                    crash_point(f"coordinator-after-reservation-{len(answers)}")
            return a

        got = await asyncio.gather(*(prepare(k, s) for k, s in asks))
        ph.mark("prepare")
        refused = [(ch.child_peer(k.name), a) for (k, _), a in zip(asks, got) if not a.get("ok")]
        if refused:
            if frm is None and all(a.get(NOT_HERE) for _, a in refused):
                raise _Relocate()  # aborted below, then made again after a locate
            raise ch._refused(refused)  # type: ignore[arg-type]
        out = got[0] if origin is not None else local["out"]
        moving = {**base, "from": out["from"], "name": out["name"], "schemes": out["schemes"]}
        if inp.dry_run:
            return TransferOutcome(_rec(change_id, moving, "PENDING"), False, True)
        async with ch.pool.acquire() as con:
            if not local:
                # Nothing of its own to apply (both sides held by children): the decision is one
                # statement in a transaction of its own (no BEGIN and COMMIT round trips), flushed.
                decided = await cs.decide(con, change_id, "COMMITTED", moving)
            else:
                async with con.transaction():
                    decided = await cs.decide(con, change_id, "COMMITTED", moving)
                    if decided:
                        for side in local:
                            await apply(con, change_id, {**moving, "side": side}, node.region)
            if not decided:
                raise conflict(f"change {change_id} was aborted while it waited; nothing changed anywhere")
            ph.mark("decide_sql")
        crash_point("coordinator-after-decision")
        ph.mark("decision_commit")
        await ch.tell_decided(change_id, [k.name for k in kids], moves(moving))
        ph.done()
        return TransferOutcome(_rec(change_id, moving, "COMMITTED"), False, False)
    except BaseException:
        if not decided and not inp.dry_run:
            await ch._abort_quietly(change_id)
        raise
    finally:
        ch.in_flight.discard(change_id)


def moves(plan: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a decided transfer moves, as the commit step and the answer to ``status`` carry it
    (the destination prepared without it): the name, what moves, and where from (the origin may
    have located the person itself); None when ``plan`` does not know it."""
    if not plan or "schemes" not in plan or "name" not in plan or not plan.get("from"):
        return None
    return {"name": plan["name"], "schemes": plan["schemes"], "from": plan["from"]}


def _rec(change_id: str, moving: dict[str, Any], state: str) -> ts.TransferRec:
    return ts.TransferRec(change_id, moving["idNumber"], moving["name"], moving["from"], moving["to"],
                          codes.month(moving["effectiveFrom"]), moving["schemes"], state)
