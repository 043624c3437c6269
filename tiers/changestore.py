"""SQL of changes across nodes (tiers/changes.py): constant text, ``$n`` parameters.

Tables (migrations/0006_changes.sql): ``change`` (this node's part of a change:
as coordinator, its one decision; as participant, its reserved part),
``change_participant`` (the children it asked), ``change_reservation`` (what a
change in progress holds) and ``pool_remote_predecessor``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from tierfed.errors import conflict

from .poolstore import POOLS_OF_SCHEME_NEAR
from .store import POOL_OPENINGS, PoolRec
from .vocabulary import fund_flow_sql

INSERT_CHANGE = """
insert into change (id, kind, role, parent_node, idempotency_key, input, plan, caller)
values ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8)
"""

INSERT_PARTICIPANTS = """
insert into change_participant (change_id, node, region)
select $1, n, r from unnest($2::text[], $3::text[]) as t (n, r)
"""

RESERVE_POOLS = "insert into change_reservation (change_id, scheme, region_code) values ($1, $2, $3)"

RESERVE_PERSON = "insert into change_reservation (change_id, id_number) values ($1, $2)"

# A reservation of the scheme over a region in the subtree of $2, or over one of its ancestors.
def overlapping_region(region: str) -> str:
    """SQL: a reservation ``r`` over ``region`` (an expression), its subtree, or one of its ancestors."""
    return (f"r.region_code in (select descendant from region_closure where ancestor = {region}"
            f" union all select ancestor from region_closure where descendant = {region})")


OVERLAPPING = f"""
select c.id, c.kind, c.idempotency_key from change_reservation r join change c on c.id = r.change_id
where r.scheme = $1 and {overlapping_region("$2")}
limit 1
"""

PERSON_RESERVED = """
select c.id, c.kind, c.idempotency_key from change_reservation r join change c on c.id = r.change_id
where r.id_number = $1
"""

RELEASE = "delete from change_reservation where change_id = $1"

BY_ID = "select * from change where id = $1"

# A child asking about a change this node has no record of: the change is presumed aborted,
# and that is recorded (an ABORTED row of kind PRESUMED, not listed by ``changes``) before the
# answer. The coordinator records its intent while its participants prepare (tiers.changes), so
# a question can overtake the intent: the intent's insert then fails on this row and the change
# aborts everywhere, rather than a participant releasing a change that is then committed. Both
# inserts take the id's unique index: whichever commits first wins, the other waits and loses.
PRESUMED = "presumed-aborted"
PRESUME_ABORTED = f"""
insert into change (id, kind, role, state, idempotency_key, input, caller, decided_at)
values ($1, '{PRESUMED}', 'coordinator', 'ABORTED', '', '{{}}'::jsonb, '', now())
on conflict (id) do nothing
returning id
"""

# An aborted attempt leaves its key free for another: the live one first.
BY_KEY = "select * from change where idempotency_key = $1 order by (state = 'ABORTED'), started_at desc limit 1"

# The decision, or a participant's part applied or released: PENDING moves exactly once,
# and what the change held is released in the same statement.
DECIDE = """
with d as (update change set state = $2, decided_at = now(), result = coalesce($3::jsonb, result)
           where id = $1 and state = 'PENDING' returning id),
     r as (delete from change_reservation where change_id in (select id from d))
select count(*) from d
"""

# Not flushed: the statement also sets the transaction's commit not to wait.
PARTICIPANT_STATE = """
with u as (update change_participant set state = $3 where change_id = $1 and node = $2)
select set_config('synchronous_commit', 'off', true)
"""

PARTICIPANTS = "select change_id, node, region, state from change_participant where change_id = any($1::text[]) order by node"

# Coordinated by this node, undecided for longer than $1 seconds, and not in the hands of a
# live process other than this one ($2): the owner's lock (HOLD_OWNER) is gone. Rows from
# before migration 0013 have no owner.
STALE_UNDECIDED = """
select c.id from change c where c.role = 'coordinator' and c.state = 'PENDING'
  and c.started_at < now() - make_interval(secs => $1)
  and (c.owner is null or c.owner = $2 or not exists (
      select 1 from pg_locks l
      where l.locktype = 'advisory' and l.granted and l.objsubid = 2 and l.classid = 7366044
        and l.objid = (hashtext(c.owner)::bigint & 4294967295)::oid
        and l.database = (select oid from pg_database where datname = current_database())))
"""

# Held by each process on a connection of its own for as long as it lives.
HOLD_OWNER = "select pg_advisory_lock(7366044, hashtext($1))"

# One recovery pass at a time on a node, whatever the number of its worker processes.
TRY_RECOVERY_LOCK = "select pg_try_advisory_lock(7366045, 0)"
RECOVERY_UNLOCK = "select pg_advisory_unlock(7366045, 0)"

# Parts waiting for a decision this node does not make.
WAITING_PARTS = """
select id, parent_node from change where role = 'participant' and state = 'PENDING'
  and started_at < now() - make_interval(secs => $1)
"""

# Decided here (longer than $1 seconds ago), with a child not yet told.
UNTOLD = """
select c.id, c.state, p.node from change c join change_participant p on p.change_id = c.id
where c.state <> 'PENDING' and p.state = 'PENDING' and c.decided_at < now() - make_interval(secs => $1)
order by c.started_at
"""

LIST = f"""
select * from change where ($1::text is null or state = $1) and kind <> '{PRESUMED}'
order by started_at desc, id desc limit $2
"""

INSERT_REMOTE_PREDECESSORS = """
insert into pool_remote_predecessor (predecessor_id, successor_id, node, scheme, region_code, opened_from,
                                     closed_after, opening_balance)
select i, $2, n, $3, r, o, $4, b from unnest($1::text[], $5::text[], $6::text[], $7::date[], $8::numeric[])
    as t (i, n, r, o, b)
"""

REMOTE_PREDECESSORS = """
select predecessor_id, successor_id, node, scheme, region_code, opened_from, closed_after, opening_balance
from pool_remote_predecessor where successor_id = any($1::text[]) order by region_code, predecessor_id
"""

# Every predecessor of each pool's chain that the local opening (store.POOL_OPENINGS)
# cannot add up alone: those held by child nodes, and local ones (whose region may
# span child nodes, for which the caller adds the children's flows).
CHAIN_MEMBERS = """
with recursive chain (root, id) as (
    select p.id, p.id from pool p where p.id = any($1::text[])
    union all
    select c.root, q.id from chain c join pool q on q.successor_id = c.id
)
select c.root, r.predecessor_id as id, r.region_code, r.scheme, r.opened_from, r.closed_after, true as remote
from chain c join pool_remote_predecessor r on r.successor_id = c.id
union all
select c.root, q.id, q.region_code, q.scheme, q.opened_from, q.closed_after, false
from chain c join pool q on q.id = c.id where c.id <> c.root
"""


@dataclass(frozen=True)
class ChangeRow:
    id: str
    kind: str
    role: str
    parent_node: str | None
    state: str
    idempotency_key: str
    input: dict[str, Any]
    plan: dict[str, Any]
    result: dict[str, Any] | None
    caller: str
    started_at: datetime
    decided_at: datetime | None


@dataclass(frozen=True)
class ParticipantRow:
    change_id: str
    node: str
    region: str
    state: str


@dataclass(frozen=True)
class ChainMember:
    root: str
    id: str
    region_code: str
    scheme: int
    opened_from: date
    closed_after: date
    remote: bool


def change_row(r: asyncpg.Record | None) -> ChangeRow | None:
    """The change a row of ``change`` (its columns, perhaps among others) holds; None for no row, or a
    row of an outer join that found none."""
    if r is None or r["id"] is None:
        return None
    return ChangeRow(r["id"], r["kind"], r["role"], r["parent_node"], r["state"], r["idempotency_key"],
                     json.loads(r["input"]), json.loads(r["plan"]), json.loads(r["result"]) if r["result"] else None,
                     r["caller"], r["started_at"], r["decided_at"])


# Idempotency keys hold across kinds of change (raises on one node in pooling_change, changes
# across nodes in change): writers of either take this transaction lock on the key first, then
# look in both, so two requests with one key never both pass the check.
KEY_LOCK = "select pg_advisory_xact_lock(7366046, hashtext($1))"
KEY_USED = """
select coalesce((select 'raisePoolingLevel' from pooling_change where idempotency_key = $1 limit 1),
                (select kind || ' ' || id from change where idempotency_key = $1 and state <> 'ABORTED'
                   and id <> coalesce($2::text, '') limit 1))
"""


# One settlement of the central adjustment per year, whatever its month or key: the year's lock,
# then the settlement of that year this node coordinates, decided or in progress.
YEAR_LOCK = "select pg_advisory_xact_lock(7366047, $1)"
SETTLED_YEAR = """select id, idempotency_key, state, input->>'month' as month from change
                  where kind = $1 and role = 'coordinator' and state in ('PENDING', 'COMMITTED')
                    and input->>'year' = $2::int::text
                  order by started_at limit 1"""


async def settled_year(con: asyncpg.Connection, kind: str, year: int) -> asyncpg.Record | None:
    """The settlement of ``year`` this node coordinates, committed or in progress, if any; in a
    transaction, the year stays locked until it commits (a second settlement waits, then sees it)."""
    await con.execute(YEAR_LOCK, year)
    return await con.fetchrow(SETTLED_YEAR, kind, year)


async def claim_key(con: asyncpg.Connection, key: str, change_id: str | None = None) -> None:
    """CONFLICT when ``key`` is already used here by another change of any kind (a raise on this
    node, or another change across nodes; ``change_id``'s own part excepted). In a transaction:
    the key stays locked until it commits."""
    await con.execute(KEY_LOCK, key)
    used = await con.fetchval(KEY_USED, key, change_id)
    if used is not None:
        raise conflict(f"idempotency key {key!r} was already used by another change ({used}) on this node")



async def by_id(con: asyncpg.Connection | asyncpg.Pool, change_id: str) -> ChangeRow | None:
    return change_row(await con.fetchrow(BY_ID, change_id))


async def presume_aborted(pool: asyncpg.Pool, change_id: str) -> ChangeRow | None:
    """What a child asking about ``change_id`` is told (PRESUME_ABORTED): the change as recorded
    here, or, when there is none, the record that it is aborted, written first."""
    row = await by_id(pool, change_id)
    if row is not None:
        return row
    async with pool.acquire() as con:
        await con.fetchval(PRESUME_ABORTED, change_id)  # none when a concurrent intent committed first
        return await by_id(con, change_id)


async def by_key(con: asyncpg.Connection | asyncpg.Pool, key: str) -> ChangeRow | None:
    return change_row(await con.fetchrow(BY_KEY, key))


async def insert(con: asyncpg.Connection, change_id: str, kind: str, role: str, parent: str | None, key: str,
                 inp: dict[str, Any], plan: dict[str, Any], caller: str) -> None:
    await con.execute(INSERT_CHANGE, change_id, kind, role, parent, key, json.dumps(inp), json.dumps(plan), caller)


async def add_participants(con: asyncpg.Connection, change_id: str, nodes: list[tuple[str, str]]) -> None:
    if nodes:
        await con.execute(INSERT_PARTICIPANTS, change_id, [n for n, _ in nodes], [r for _, r in nodes])


async def overlapping(con: asyncpg.Connection, scheme: int, region: str) -> asyncpg.Record | None:
    return await con.fetchrow(OVERLAPPING, scheme, region)


async def person_reserved(con: asyncpg.Connection, id_number: str) -> asyncpg.Record | None:
    return await con.fetchrow(PERSON_RESERVED, id_number)


async def reserve_pools(con: asyncpg.Connection, change_id: str, scheme: int, region: str) -> None:
    await con.execute(RESERVE_POOLS, change_id, scheme, region)


async def reserve_person(con: asyncpg.Connection, change_id: str, id_number: str) -> None:
    await con.execute(RESERVE_PERSON, change_id, id_number)


async def decide(con: asyncpg.Connection, change_id: str, state: str, result: dict[str, Any] | None = None,
                 flushed: bool = True) -> bool:
    """Move a PENDING change to ``state`` and release what it holds; False when it had already moved.
    ``flushed`` false: the transaction's commit does not wait for the flush (DECIDE_UNFLUSHED)."""
    return bool(await con.fetchval(DECIDE if flushed else DECIDE_UNFLUSHED, change_id, state,
                                   json.dumps(result) if result is not None else None))


async def participant_state(pool: asyncpg.Pool, change_id: str, node: str, state: str) -> None:
    """A child's acknowledgement; not flushed before going on (lost, the child is told again)."""
    async with pool.acquire() as con, con.transaction():
        await con.execute(PARTICIPANT_STATE, change_id, node, state)


# Not flushed: the statement also sets the transaction's commit not to wait.
PARTICIPANTS_STATE = """
with u as (update change_participant set state = $3 where change_id = any($1::text[]) and node = $2)
select set_config('synchronous_commit', 'off', true)
"""


async def participants_state(pool: asyncpg.Pool, change_ids: list[str], node: str, state: str) -> None:
    """A child's acknowledgement of several decisions told in one step; not flushed either."""
    async with pool.acquire() as con, con.transaction():
        await con.execute(PARTICIPANTS_STATE, change_ids, node, state)


async def participants(con: asyncpg.Connection | asyncpg.Pool, ids: list[str]) -> list[ParticipantRow]:
    return [ParticipantRow(r["change_id"], r["node"], r["region"], r["state"])
            for r in await con.fetch(PARTICIPANTS, ids)]


async def stale_undecided(pool: asyncpg.Pool, age_s: float, owner: str | None = None) -> list[str]:
    return [r["id"] for r in await pool.fetch(STALE_UNDECIDED, age_s, owner)]


async def waiting_parts(pool: asyncpg.Pool, age_s: float) -> list[tuple[str, str]]:
    return [(r["id"], r["parent_node"]) for r in await pool.fetch(WAITING_PARTS, age_s)]


async def untold(pool: asyncpg.Pool, age_s: float = 0) -> list[tuple[str, str, str]]:
    return [(r["id"], r["state"], r["node"]) for r in await pool.fetch(UNTOLD, age_s)]


async def listing(pool: asyncpg.Pool, state: str | None, first: int) -> list[ChangeRow]:
    return [c for c in (change_row(r) for r in await pool.fetch(LIST, state, first)) if c is not None]


async def add_remote_predecessors(con: asyncpg.Connection, successor: str, scheme: int, closed_after: date,
                                  pools: list[dict[str, Any]]) -> None:
    if pools:
        await con.execute(INSERT_REMOTE_PREDECESSORS, [p["id"] for p in pools], successor, scheme, closed_after,
                          [p["node"] for p in pools], [p["region"] for p in pools],
                          [date.fromisoformat(p["openedFrom"]) for p in pools],
                          [Decimal(p["openingBalance"]) for p in pools])


async def remote_predecessors(pool: asyncpg.Pool, ids: list[str]) -> list[asyncpg.Record]:
    return list(await pool.fetch(REMOTE_PREDECESSORS, ids))


async def chain_members(pool: asyncpg.Pool, ids: list[str]) -> list[ChainMember]:
    return [ChainMember(r["root"], r["id"], r["region_code"], r["scheme"], r["opened_from"], r["closed_after"],
                        r["remote"]) for r in await pool.fetch(CHAIN_MEMBERS, ids)]


async def chains(pool: asyncpg.Pool, ids: list[str]) -> dict[str, list[ChainMember]]:
    out: dict[str, list[ChainMember]] = {i: [] for i in ids}
    for m in await chain_members(pool, ids):
        out[m.root].append(m)
    return out


async def remote_predecessors_of(pool: asyncpg.Pool, ids: list[str]) -> dict[str, list[PoolRec]]:
    """Per pool, its predecessors held by child nodes (``held_by`` names the node)."""
    out: dict[str, list[PoolRec]] = {i: [] for i in ids}
    for r in await remote_predecessors(pool, ids):
        out[r["successor_id"]].append(PoolRec(r["predecessor_id"], r["scheme"], r["region_code"], r["opened_from"],
                                              r["closed_after"], r["opening_balance"], r["successor_id"],
                                              held_by=r["node"]))
    return out


# Per pool: pooled contributions less benefits plus transfers in less out, from its first month to $3.
POOL_FLOWS = f"""
select k.id, coalesce(sum({fund_flow_sql("s")}), 0) as flow
from unnest($1::text[], $2::text[], $3::date[]) as k (id, region, first)
left join summary s on s.region_code = k.region and s.scheme = $4 and s.month between k.first and $5
group by k.id
"""


async def pool_figures(con: asyncpg.Connection, pools: list[Any], scheme: int, at: date) -> dict[str, tuple[Decimal, Decimal]]:
    """(live opening balance, balance at ``at``) of pools whose records are all held here."""
    if not pools:
        return {}
    openings = {r["root"]: r["opening"] for r in await con.fetch(POOL_OPENINGS, [p.id for p in pools])}
    flows = {r["id"]: r["flow"] for r in await con.fetch(POOL_FLOWS, [p.id for p in pools], [p.region_code for p in pools],
                                                          [p.opened_from for p in pools], scheme, at)}
    return {p.id: (openings[p.id], openings[p.id] + flows[p.id]) for p in pools}


# What waits for a node, per node: parts of changes this node decided that the node has not
# applied yet (it is a child here), and parts this node reserved that wait for the node's
# decision (it is this node's parent). Counts and the age of the oldest, for /metrics.
WAITING_BY_NODE = """
select node, count(*)::int as changes, extract(epoch from now() - min(started_at))::float8 as oldest_s
from (select p.node, c.started_at from change c join change_participant p on p.change_id = c.id
      where p.state = 'PENDING'
      union all
      select parent_node, started_at from change where role = 'participant' and state = 'PENDING'
        and parent_node is not null) w
group by node
"""


async def waiting_by_node(pool: asyncpg.Pool) -> list[tuple[str, int, float]]:
    return [(r["node"], r["changes"], r["oldest_s"]) for r in await pool.fetch(WAITING_BY_NODE)]


# A participant keeps what it reserved with its part of the change's plan.
MERGE_PLAN = "update change set plan = plan || $2::jsonb where id = $1"


# ---------------------------------------------------------------- a raise's part in few statements
#
# A raise's part of a change (the coordinator's intent, a participant's prepare) in three
# statements rather than ten: every round trip between a node and its database is a wait
# on a busy machine, and eight participants' prepares run at once.

# The locks first, in a statement of their own (the checks that follow must see what the
# transactions that held them committed): the scheme's region exclusively and its ancestors
# shared (tiers.pooling._lock), the idempotency key's lock (KEY_LOCK; none when $3 is null, a
# dry run), and with $4 the transaction's commit made without waiting for the flush (an intent).
RAISE_LOCKS = """
select (select pg_try_advisory_xact_lock($1))
       and coalesce((select bool_and(ok) from (select pg_try_advisory_xact_lock_shared(k) as ok
                                                from unnest($2::bigint[]) k) x), true) as locked,
       (select count(*) from (select pg_advisory_xact_lock(7366046, hashtext($3)) where $3 is not null) k) as key_locks,
       case when $4 then set_config('synchronous_commit', 'off', true) end as async_commit
"""

# Then every check and read in one: a change across nodes holding pools of the scheme
# overlapping the region (OVERLAPPING), the key used by another change (KEY_USED; null
# without a key), whether pool $5 exists, and the scheme's pools near the region
# (POOLS_OF_SCHEME_NEAR: one row per pool; one row of nulls when there is none).
RAISE_CHECKS = f"""
select h.id as held_id, h.kind as held_kind, h.idempotency_key as held_key,
       pr.state as prior_state, pr.plan as prior_plan,
       case when $3::text is not null then ({KEY_USED.strip().replace("$1", "$3").replace("$2", "$4")}) end as key_used,
       exists (select 1 from pool where id = $5) as pool_exists,
       n.*
from (select 1) one
left join lateral ({OVERLAPPING.strip().removesuffix("limit 1").strip()} limit 1) h on true
left join lateral ({POOLS_OF_SCHEME_NEAR.strip()}) n on true
left join change pr on pr.id = $4
order by n.region_code, n.opened_from
"""

# The part recorded: the change, the children it asks, and its reservation (of the scheme's
# pools over a region, or of a person), in one statement.
RECORD_PART = """
with c as (insert into change (id, kind, role, parent_node, idempotency_key, input, plan, caller)
           values ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8) returning id),
     p as (insert into change_participant (change_id, node, region)
           select c.id, n, r from c cross join unnest($9::text[], $10::text[]) as t (n, r)),
     r as (insert into change_reservation (change_id, scheme, region_code, id_number)
           select c.id, $11, $12, $13 from c where $11::smallint is not null or $13::text is not null)
select count(*) from c
"""

# (live opening balance, flow up to $5) of pools whose records are all held here (pool_figures) in one.
POOL_FIGURES = f"""
select f.id, o.opening, f.flow
from ({POOL_FLOWS.strip()}) f join ({POOL_OPENINGS.strip()}) o on o.root = f.id
"""


# A participant without children records its part and reads its pools' figures in one statement:
# RECORD_PART's inserts, then POOL_FIGURES with its parameters from $14 (the inserts run whether or
# not the query reads them; the figures do not read what they insert).
RECORD_PART_AND_FIGURES = (RECORD_PART.strip().removesuffix("select count(*) from c").rstrip() + "\n"
                           + re.sub(r"\$(\d+)", lambda m: f"${int(m.group(1)) + 13}", POOL_FIGURES.strip()))


@dataclass(frozen=True)
class RaisePart:
    """What RAISE_CHECKS found."""

    rows: list[asyncpg.Record]  # the scheme's pools near the region (POOLS_OF_SCHEME_NEAR's rows)
    held: asyncpg.Record | None  # a change in progress holding overlapping pools (id, kind, key)
    key_used: str | None
    pool_exists: bool
    # this change's own part, already recorded here (a prepare sent again): its state and plan
    prior: tuple[str, dict[str, Any]] | None = None


async def raise_locks(con: asyncpg.Connection, lock_key: int, shared_keys: list[int], key: str | None,
                      async_commit: bool) -> bool:
    """Take a raise's locks (see RAISE_LOCKS); False when another raise holds an overlapping subtree."""
    return bool(await con.fetchval(RAISE_LOCKS, lock_key, shared_keys, key, async_commit))


async def raise_checks(con: asyncpg.Connection, scheme: int, region: str, key: str | None, change_id: str | None,
                       new_pool: str | None) -> RaisePart:
    rows = await con.fetch(RAISE_CHECKS, scheme, region, key, change_id, new_pool)
    first = rows[0]
    held = first if first["held_id"] is not None else None
    prior = (first["prior_state"], json.loads(first["prior_plan"])) if first["prior_state"] is not None else None
    return RaisePart([r for r in rows if r["id"] is not None], held, first["key_used"], bool(first["pool_exists"]),
                     prior)


async def record_part(con: asyncpg.Connection, change_id: str, kind: str, role: str, parent: str | None, key: str,
                      inp: dict[str, Any], plan: dict[str, Any], caller: str, nodes: list[tuple[str, str]],
                      pools: tuple[int, str] | None = None, person: str | None = None,
                      figures_of: tuple[list[Any], int, date] | None = None) -> dict[str, tuple[Decimal, Decimal]]:
    """insert, add_participants and reserve_pools (or reserve_person) in one statement; with
    ``figures_of`` (pools, scheme, month) also pool_figures_one's figures of those pools, read by
    the same statement (RECORD_PART_AND_FIGURES), which it returns."""
    args = (change_id, kind, role, parent, key, json.dumps(inp), json.dumps(plan), caller, [n for n, _ in nodes],
            [r for _, r in nodes], pools[0] if pools else None, pools[1] if pools else None, person)
    if not figures_of or not figures_of[0]:
        await con.execute(RECORD_PART, *args)
        return {}
    recs, scheme, at = figures_of
    rows = await con.fetch(RECORD_PART_AND_FIGURES, *args, [p.id for p in recs], [p.region_code for p in recs],
                           [p.opened_from for p in recs], scheme, at)
    return {r["id"]: (r["opening"], r["opening"] + r["flow"]) for r in rows}


async def pool_figures_one(con: asyncpg.Connection, pools: list[Any], scheme: int,
                           at: date) -> dict[str, tuple[Decimal, Decimal]]:
    """pool_figures in one statement."""
    if not pools:
        return {}
    rows = await con.fetch(POOL_FIGURES, [p.id for p in pools], [p.region_code for p in pools],
                           [p.opened_from for p in pools], scheme, at)
    return {r["id"]: (r["opening"], r["opening"] + r["flow"]) for r in rows}


# A raise's decision at its coordinator in one statement: DECIDE, and only when the change was
# still PENDING (recovery may have aborted it meanwhile), the coordinator's own part: the new
# pool opened (poolstore.OPEN), its own pools closed (CLOSE), the pools held by children linked
# as remote predecessors (INSERT_REMOTE_PREDECESSORS), and the pooling_change record
# (RECORD_CHANGE). Foreign keys are checked at the statement's end, when the new pool exists.
DECIDE_RAISE = """
with d as (update change set state = 'COMMITTED', decided_at = now(), result = $2::jsonb
           where id = $1 and state = 'PENDING' returning id),
     released as (delete from change_reservation where change_id in (select id from d)),
     opened as (insert into pool (id, scheme, region_code, opened_from, closed_after, opening_balance)
                select $3, $4, $5, $6, null, $7 from d),
     closed as (update pool set closed_after = $8, successor_id = $3
                where id = any($9::text[]) and exists (select 1 from d)),
     remote as (insert into pool_remote_predecessor (predecessor_id, successor_id, node, scheme, region_code,
                                                      opened_from, closed_after, opening_balance)
                select i, $3, n, $4, r, o, $8, b from d
                cross join unnest($10::text[], $11::text[], $12::text[], $13::date[], $14::numeric[]) as t (i, n, r, o, b)),
     recorded as (insert into pooling_change (idempotency_key, input, result, caller)
                  select $15, $16::jsonb, $17::jsonb, $18 from d)
select count(*) from d
"""


async def decide_raise(con: asyncpg.Connection, change_id: str, result: dict[str, Any], new: Any, before: date,
                       closed: list[str], remote: list[dict[str, Any]], key: str, inp: dict[str, Any],
                       record: dict[str, Any], caller: str) -> bool:
    """The decision and the coordinator's part of a raise (DECIDE_RAISE); False when the change had
    already moved (aborted meanwhile): nothing written then."""
    return bool(await con.fetchval(
        DECIDE_RAISE, change_id, json.dumps(result), new.id, new.scheme, new.region_code, new.opened_from,
        new.opening_balance, before, closed, [p["id"] for p in remote], [p["node"] for p in remote],
        [p["region"] for p in remote], [date.fromisoformat(p["openedFrom"]) for p in remote],
        [Decimal(p["openingBalance"]) for p in remote], key, json.dumps(inp), json.dumps(record), caller))


# ---------------------------------------------------------------- a transfer's part in few statements

# The key's lock (KEY_LOCK; none when $1 is null) and, with $2, the transaction's commit made
# without waiting for the flush (an intent): one statement before the checks.
KEY_LOCK_ASYNC = """
select (select count(*) from (select pg_advisory_xact_lock(7366046, hashtext($1)) where $1::text is not null) k),
       case when $2 then set_config('synchronous_commit', 'off', true) end
"""

# claim_key's check (KEY_USED, after the key's lock taken by an earlier statement) and, when the
# key is free, RECORD_PART: the change, its participants and its reservation, in one statement.
# The other change using the key, or null.
CLAIM_AND_RECORD = f"""
with used as (select ({KEY_USED.strip().replace("$1", "$5").replace("$2", "$14")}) as u),
     c as (insert into change (id, kind, role, parent_node, idempotency_key, input, plan, caller)
           select $1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8 from used where u is null returning id),
     p as (insert into change_participant (change_id, node, region)
           select c.id, n, r from c cross join unnest($9::text[], $10::text[]) as t (n, r)),
     r as (insert into change_reservation (change_id, scheme, region_code, id_number)
           select c.id, $11, $12, $13 from c where $11::smallint is not null or $13::text is not null)
select u from used
"""


async def key_lock(con: asyncpg.Connection, key: str | None, async_commit: bool = False) -> None:
    """KEY_LOCK_ASYNC: the key's lock (claim_key's first half), and an unflushed commit with ``async_commit``."""
    await con.fetchval(KEY_LOCK_ASYNC, key, async_commit)


async def claim_and_record(con: asyncpg.Connection, change_id: str, kind: str, role: str, parent: str | None,
                           key: str, inp: dict[str, Any], plan: dict[str, Any], caller: str,
                           nodes: list[tuple[str, str]], pools: tuple[int, str] | None = None,
                           person: str | None = None, own: str | None = None) -> None:
    """claim_key's check (its lock taken before, key_lock) and record_part in one statement: CONFLICT,
    nothing recorded, when ``key`` is already used here by another change (``own`` excepted)."""
    used = await con.fetchval(CLAIM_AND_RECORD, change_id, kind, role, parent, key, json.dumps(inp), json.dumps(plan),
                              caller, [n for n, _ in nodes], [r for _, r in nodes], pools[0] if pools else None,
                              pools[1] if pools else None, person, own)
    if used is not None:
        raise conflict(f"idempotency key {key!r} was already used by another change ({used}) on this node")


# DECIDE for a part whose commit need not wait for the flush (a participant's applied or released
# part, recovery's abort): one statement fewer than ASYNC_COMMIT then DECIDE.
DECIDE_UNFLUSHED = """
with d as (update change set state = $2, decided_at = now(), result = coalesce($3::jsonb, result)
           where id = $1 and state = 'PENDING' returning id),
     r as (delete from change_reservation where change_id in (select id from d))
select count(*), set_config('synchronous_commit', 'off', true) from d
"""


# The statements of a change's steps, prepared on each new connection of a node's pool for
# change steps (tierfed.runtime): a raise or a transfer is rare on a node, and its first
# statements on a connection opened since (the pool grows when the decisions are acknowledged
# at once) would otherwise pay the connection's type lookups and its backend's first reads of
# the catalog inside the change, while its participants wait.
WARM = (BY_ID, BY_KEY, PRESUME_ABORTED, DECIDE, DECIDE_UNFLUSHED, PARTICIPANT_STATE, PARTICIPANTS_STATE,
        PARTICIPANTS, RAISE_LOCKS, RAISE_CHECKS, RECORD_PART, RECORD_PART_AND_FIGURES, POOL_FIGURES, DECIDE_RAISE, KEY_LOCK_ASYNC,
        CLAIM_AND_RECORD)
