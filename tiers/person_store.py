"""One person across the federation, as this node's database sees it: its own part of
a person (registration, the months it holds), the person index of its children, and
the feed of ID numbers its parent reads. Constant SQL; typed records out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import asyncpg

# Seq numbers are assigned under this lock (migration 0004), so a page read past a
# watermark never misses a row committed later with a smaller seq.
PRESENCE_LOCK = 7366043


@dataclass(frozen=True, slots=True)
class PersonPart:
    """A person's registration on this node, and the last month this node holds a record of."""

    id_number: str
    name: str
    region_code: str
    last_month: date | None


PERSON_PARTS = """
select p.id_number, p.name, p.region_code,
       greatest((select max(c.month) from contribution c where c.id_number = p.id_number),
                (select max(b.month) from benefit b where b.id_number = p.id_number)) as last_month
from person p where p.id_number = any($1::text[])
"""

HOLDERS = """
select id_number, array_agg(child order by child) as children
from person_index where id_number = any($1::text[]) group by id_number
"""

PRESENCE_SINCE = "select id_number, seq from person_presence where seq > $1 order by seq limit $2"
PRESENCE_HEAD = "select coalesce(max(seq), 0) from person_presence"

SYNCED = "select child, seq from person_index_sync"
INDEX_ADD = "insert into person_index (id_number, child) select unnest($1::text[]), $2 on conflict do nothing"
SYNC_SET = """
insert into person_index_sync (child, seq, synced_at) values ($1, $2, now())
on conflict (child) do update set seq = greatest(person_index_sync.seq, excluded.seq), synced_at = now()
"""
SYNC_AT = """insert into person_index_sync (child, seq, synced_at) values ($1, $2, now())
             on conflict (child) do update set seq = excluded.seq, synced_at = now()"""
INDEX_CLEAR = "delete from person_index where child = $1"
SYNC_CLEAR = "delete from person_index_sync where child = $1"
INDEX_SIZE = "select child, count(*) from person_index group by child"

# Persons held by two or more of: this node's own database (when ``$2``) and the
# given children. Only they can have records of one scheme and month in two parts.
CANDIDATES = """
select i.id_number, array_agg(i.child order by i.child) as children,
       exists (select 1 from person p where p.id_number = i.id_number) as here
from person_index i where i.child = any($1::text[])
group by i.id_number
having count(*) >= 2 or ($2 and exists (select 1 from person p where p.id_number = i.id_number))
order by i.id_number
"""

# Persons held by ``$1`` (a child) and by another part of this node's subtree: its
# own database or another child.
SHARED_WITH = """
select i.id_number from person_index i
where i.child = $1
  and (exists (select 1 from person p where p.id_number = i.id_number)
       or exists (select 1 from person_index o where o.id_number = i.id_number and o.child <> $1))
order by i.id_number
"""

# Of ``$2``, the persons the index says ``$1`` (a child) holds.
HELD_BY = "select id_number from person_index where child = $1 and id_number = any($2::text[])"

# This node's own records of some persons in a period, by (person, scheme, month).
OWN_KEYS = """
select c.id_number, c.scheme, c.month, c.region_code from contribution c
where c.id_number = any($1::text[]) and c.month between $2 and $3
order by 1, 2, 3
"""

# The months of each (person, scheme, region) in a period, for regions in a subtree.
RECORD_MONTHS = """
select c.id_number, p.name, c.scheme, c.region_code, array_agg(c.month order by c.month) as months
from contribution c
join region_closure rc on rc.descendant = c.region_code and rc.ancestor = $4
join person p on p.id_number = c.id_number
where c.id_number = any($1::text[]) and c.month between $2 and $3
group by 1, 2, 3, 4
"""


async def person_parts(pool: asyncpg.Pool, ids: Sequence[str]) -> dict[str, PersonPart]:
    return {r["id_number"]: PersonPart(r["id_number"], r["name"], r["region_code"], r["last_month"])
            for r in await pool.fetch(PERSON_PARTS, list(ids))}


async def holders(pool: asyncpg.Pool, ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Per ID number, the names of the child nodes that hold the person (by the index)."""
    return {r["id_number"]: tuple(r["children"]) for r in await pool.fetch(HOLDERS, list(ids))}


async def presence_since(pool: asyncpg.Pool, seq: int, limit: int) -> list[tuple[str, int]]:
    return [(r["id_number"], r["seq"]) for r in await pool.fetch(PRESENCE_SINCE, seq, limit)]


async def presence_head(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval(PRESENCE_HEAD))


async def synced(pool: asyncpg.Pool) -> dict[str, int]:
    """How far this node has read each child's feed."""
    return {r["child"]: r["seq"] for r in await pool.fetch(SYNCED)}


async def index_add(pool: asyncpg.Pool, child: str, ids: Sequence[str], seq: int) -> None:
    """Record that ``child`` holds ``ids`` and that its feed is read up to ``seq``, in one transaction."""
    async with pool.acquire() as con, con.transaction():
        await con.execute("select pg_advisory_xact_lock($1)", PRESENCE_LOCK)
        if ids:
            await con.execute(INDEX_ADD, list(ids), child)
        await con.execute(SYNC_SET, child, seq)


async def sync_at(pool: asyncpg.Pool, child: str, seq: int) -> None:
    """The child's feed read up to ``seq`` exactly (a reading from its start ended there)."""
    await pool.execute(SYNC_AT, child, seq)


async def index_clear(pool: asyncpg.Pool, child: str) -> None:
    async with pool.acquire() as con, con.transaction():
        await con.execute(INDEX_CLEAR, child)
        await con.execute(SYNC_CLEAR, child)


async def index_size(pool: asyncpg.Pool) -> dict[str, int]:
    return {r["child"]: r["count"] for r in await pool.fetch(INDEX_SIZE)}


@dataclass(frozen=True, slots=True)
class Candidate:
    id_number: str
    children: tuple[str, ...]
    here: bool


async def candidates(pool: asyncpg.Pool, children: Sequence[str], with_local: bool) -> list[Candidate]:
    return [Candidate(r["id_number"], tuple(r["children"]), r["here"])
            for r in await pool.fetch(CANDIDATES, list(children), with_local)]


@dataclass(frozen=True, slots=True)
class RecordMonths:
    """The months of one person's contribution records of one scheme in one region."""

    id_number: str
    name: str
    scheme: int
    region_code: str
    months: tuple[date, ...]


async def record_months(pool: asyncpg.Pool, ids: Sequence[str], first: date, last: date,
                        within: str) -> list[RecordMonths]:
    """Contribution record months of ``ids`` in a period, in regions of ``within``'s subtree."""
    return [RecordMonths(r["id_number"], r["name"], r["scheme"], r["region_code"], tuple(r["months"]))
            for r in await pool.fetch(RECORD_MONTHS, list(ids), first, last, within)]


async def shared_with(pool: asyncpg.Pool, child: str) -> list[str]:
    return [r["id_number"] for r in await pool.fetch(SHARED_WITH, child)]


async def held_by(pool: asyncpg.Pool, child: str, ids: Sequence[str]) -> set[str]:
    return {r["id_number"] for r in await pool.fetch(HELD_BY, child, list(ids))}


async def own_keys(pool: asyncpg.Pool, ids: Sequence[str], first: date, last: date) -> list[tuple[str, int, date, str]]:
    return [(r["id_number"], r["scheme"], r["month"], r["region_code"])
            for r in await pool.fetch(OWN_KEYS, list(ids), first, last)]


# Who is registered in a region, a page at a time (tiers/registered.py).
REGISTERED_PAGE = """
select p.id_number, p.region_code from person p
where p.region_code in (select descendant from region_closure where ancestor = $1) and p.id_number > $2
order by p.id_number limit $3"""


# Statements sent to persons (tierfed/statements.py).
STATEMENTS_SENT = "select id_number from statement_sent where year = $1 and delivery = $2"
RECORD_STATEMENTS_SENT = """
insert into statement_sent (id_number, year, delivery, region_code, file) values ($1, $2, $3, $4, $5)
on conflict (id_number, year, delivery) do update set file = excluded.file, sent_at = now()
"""
