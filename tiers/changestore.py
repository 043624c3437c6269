"""SQL of changes across nodes (tiers/changes.py): constant text, ``$n`` parameters.

Tables (migrations/0006_changes.sql): ``change`` (this node's part of a change:
as coordinator, its one decision; as participant, its reserved part),
``change_participant`` (the children it asked), ``change_reservation`` (what a
change in progress holds) and ``pool_remote_predecessor``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from tierfed.errors import conflict

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
OVERLAPPING = """
select c.id, c.kind, c.idempotency_key from change_reservation r join change c on c.id = r.change_id
where r.scheme = $1 and r.region_code in (select descendant from region_closure where ancestor = $2
                                          union all select ancestor from region_closure where descendant = $2)
limit 1
"""

PERSON_RESERVED = """
select c.id, c.kind, c.idempotency_key from change_reservation r join change c on c.id = r.change_id
where r.id_number = $1
"""

RELEASE = "delete from change_reservation where change_id = $1"

BY_ID = "select * from change where id = $1"

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

PARTICIPANT_STATE = "update change_participant set state = $3 where change_id = $1 and node = $2"

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

LIST = """
select * from change where ($1::text is null or state = $1) order by started_at desc, id desc limit $2
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


def _change(r: asyncpg.Record | None) -> ChangeRow | None:
    if r is None:
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


async def claim_key(con: asyncpg.Connection, key: str, change_id: str | None = None) -> None:
    """CONFLICT when ``key`` is already used here by another change of any kind (a raise on this
    node, or another change across nodes; ``change_id``'s own part excepted). In a transaction:
    the key stays locked until it commits."""
    await con.execute(KEY_LOCK, key)
    used = await con.fetchval(KEY_USED, key, change_id)
    if used is not None:
        raise conflict(f"idempotency key {key!r} was already used by another change ({used}) on this node")


async def by_id(con: asyncpg.Connection | asyncpg.Pool, change_id: str) -> ChangeRow | None:
    return _change(await con.fetchrow(BY_ID, change_id))


async def by_key(con: asyncpg.Connection | asyncpg.Pool, key: str) -> ChangeRow | None:
    return _change(await con.fetchrow(BY_KEY, key))


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


async def decide(con: asyncpg.Connection, change_id: str, state: str, result: dict[str, Any] | None = None) -> bool:
    """Move a PENDING change to ``state`` and release what it holds; False when it had already moved."""
    return bool(await con.fetchval(DECIDE, change_id, state, json.dumps(result) if result is not None else None))


async def participant_state(pool: asyncpg.Pool, change_id: str, node: str, state: str) -> None:
    """A child's acknowledgement; not flushed before going on (lost, the child is told again)."""
    async with pool.acquire() as con, con.transaction():
        await con.execute("set local synchronous_commit = off")
        await con.execute(PARTICIPANT_STATE, change_id, node, state)


PARTICIPANTS_STATE = "update change_participant set state = $3 where change_id = any($1::text[]) and node = $2"


async def participants_state(pool: asyncpg.Pool, change_ids: list[str], node: str, state: str) -> None:
    """A child's acknowledgement of several decisions told in one step; not flushed either."""
    async with pool.acquire() as con, con.transaction():
        await con.execute("set local synchronous_commit = off")
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
    return [c for c in (_change(r) for r in await pool.fetch(LIST, state, first)) if c is not None]


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
