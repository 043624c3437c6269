"""SQL of insurance transfers (tiers/transfers.py): constant text, ``$n`` parameters."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import asyncpg

from .changestore import BY_KEY, ChangeRow, change_row

PERSON = "select id_number, name, region_code from person where id_number = $1"

def _where_registered(person: str, region: str, children: str) -> str:
    """Where the person ``person`` (a parameter) is registered here, if at all, as column ``region``,
    and the children the person index names as holding them, as column ``children``."""
    return f"""(select region_code from person where id_number = {person}) as {region},
       array(select child from person_index where id_number = {person} order by child) as {children}"""


# Where the person is registered here (if at all), and the children the person index names as holding them.
LOCATE = f"select {_where_registered('$1', 'region_code', 'children')}"

# A transfer's first read at the coordinator, in one statement: the change already made with the
# idempotency key $1 (changestore.BY_KEY's row: its columns null when there is none) and LOCATE's
# two columns for the person $2 (``located_region``, ``located_children``).
PRIOR_AND_LOCATE = f"""
select c.*, {_where_registered('$2', 'located_region', 'located_children')}
from (select 1) one left join lateral ({BY_KEY}) c on true
"""

# A side's checks in one statement ($1 the side's region, $2 the person, $3 true at the origin,
# $4 effectiveFrom; $1 null at an origin locating the person itself: the region the person is
# registered in here, if any): a raise in progress over the region, a change holding the person, the
# person's latest transfer; at the origin also where the person is registered, their last
# record and what they have before $4 per scheme (individual-account credits, sum of bases); at
# the origin, whether an import is running (its lock, tierfed.imports.store.LOCK, taken shared to
# the end of the transaction that reserves the person: no import checks its rows meanwhile).
# With an idempotency key $5, the key's lock too (changestore.KEY_LOCK: the checks do not
# depend on it; the key's check comes in a later statement, which sees what its holder committed).
CHECK_SIDE = """
select one.importing, h.id as raise_id, h.idempotency_key as raise_key, v.id as reserved_id, v.kind as reserved_kind,
       t.id as prev_id, t.effective_from as prev_from, p.name, p.region_code,
       case when $3 then (select max(m) from (select max(month) as m from contribution where id_number = $2
                                              union all select max(month) from benefit where id_number = $2) x)
       end as last_month,
       f.schemes, f.accounts, f.bases
from (select count(*), (case when $3 then not pg_try_advisory_xact_lock_shared(7366042) else false end) as importing
      from (select pg_advisory_xact_lock(7366046, hashtext($5)) where $5::text is not null) k) one
cross join (select coalesce($1::text, (select region_code from person where id_number = $2)) as code) reg
left join lateral (
    select c.id, c.idempotency_key from change_reservation r join change c on c.id = r.change_id
    where c.kind = 'raisePoolingLevel' and r.region_code in (
        select descendant from region_closure where ancestor = reg.code
        union all select ancestor from region_closure where descendant = reg.code)
    limit 1) h on true
left join lateral (
    select c.id, c.kind from change_reservation r join change c on c.id = r.change_id where r.id_number = $2 limit 1
) v on true
left join lateral (
    select id, effective_from from insurance_transfer where id_number = $2 order by effective_from desc limit 1
) t on true
left join person p on p.id_number = $2 and $3
left join lateral (
    select array_agg(scheme order by scheme) as schemes, array_agg(account order by scheme) as accounts,
           array_agg(bases order by scheme) as bases
    from (select scheme, sum(individual_account_amount) as account, sum(base) as bases
          from contribution where id_number = $2 and month < $4 and $3 group by scheme) x
) f on true
"""

LAST_RECORD = """
select max(m) from (select max(month) as m from contribution where id_number = $1
                    union all select max(month) from benefit where id_number = $1) x
"""

# What the person has at this node before the transfer's month, per scheme.
ORIGIN_FIGURES = """
select scheme, sum(individual_account_amount) as account, sum(base) as bases
from contribution where id_number = $1 and month < $2 group by scheme order by scheme
"""

LATEST = "select id, effective_from from insurance_transfer where id_number = $1 order by effective_from desc limit 1"

INSERT = """
insert into insurance_transfer (id, direction, id_number, name, from_region, to_region, effective_from, schemes)
values ($1, $2, $3, $4, $5, $6, $7, $8::jsonb) on conflict do nothing
"""

MOVE_PERSON = "update person set region_code = $2 where id_number = $1"

REGISTER_PERSON = """
insert into person (id_number, name, region_code) values ($1, $2, $3)
on conflict (id_number) do update set region_code = excluded.region_code
"""

# Like the records: the region and every ancestor up to the node's root ($6).
BOOK = """
insert into summary (region_code, month, scheme, transfers_in, transfers_out)
select rc.ancestor, $2, $3, $4, $5
from region_closure rc join region_closure top on top.ancestor = $6 and top.descendant = rc.ancestor
where rc.descendant = $1
on conflict (region_code, month, scheme) do update
set transfers_in = summary.transfers_in + excluded.transfers_in,
    transfers_out = summary.transfers_out + excluded.transfers_out
"""

# After the summaries are rebuilt from the records (the tree changed): the transfers again.
RESUMMARISE_TRANSFERS = """
insert into summary (region_code, month, scheme, transfers_in, transfers_out)
select rc.ancestor, t.effective_from, (e->>'scheme')::smallint,
       sum(case when t.direction = 'in' then (e->>'pooledFund')::numeric else 0 end),
       sum(case when t.direction = 'out' then (e->>'pooledFund')::numeric else 0 end)
from insurance_transfer t cross join jsonb_array_elements(t.schemes) e
join region_closure rc on rc.descendant = case when t.direction = 'in' then t.to_region else t.from_region end
join region_closure top on top.ancestor = $1 and top.descendant = rc.ancestor
where (e->>'pooledFund')::numeric <> 0
group by 1, 2, 3
on conflict (region_code, month, scheme) do update
set transfers_in = excluded.transfers_in, transfers_out = excluded.transfers_out
"""

OF_PERSONS = """
select id, direction, id_number, name, from_region, to_region, effective_from, schemes
from insurance_transfer where id_number = any($1::text[]) order by effective_from, created_at, direction
"""

# The import check (tierfed/importer.py): records at the origin from a transfer's month on
# belong to the destination, unless the person has come back since.
TRANSFERRED_OUT = """
select s.line, 'month', 'person ' || left(s.id_number, 6) || '********' || right(s.id_number, 4)
       || ' moved to region ' || t.to_region || ' from ' || to_char(t.effective_from, 'YYYY-MM')
       || ' (transfer ' || t.id || '): import records of that month and later at the destination'
from staging s join insurance_transfer t
  on t.id_number = s.id_number and t.direction = 'out' and s.month >= t.effective_from
where not exists (select 1 from insurance_transfer b where b.id_number = s.id_number and b.direction = 'in'
                  and b.effective_from > t.effective_from and b.effective_from <= s.month)
order by s.line limit 1000"""


@dataclass(frozen=True)
class TransferRec:
    id: str
    id_number: str
    name: str
    from_region: str
    to_region: str
    effective_from: date
    schemes: list[dict[str, Any]]
    state: str = "COMMITTED"


async def prior_and_locate(con: asyncpg.Connection | asyncpg.Pool, key: str,
                           id_number: str) -> tuple[ChangeRow | None, asyncpg.Record]:
    """PRIOR_AND_LOCATE: the change made with ``key`` (None) and the row with LOCATE's columns."""
    r = await con.fetchrow(PRIOR_AND_LOCATE, key, id_number)
    return change_row(r), r


async def person(con: asyncpg.Connection, id_number: str) -> asyncpg.Record | None:
    return await con.fetchrow(PERSON, id_number)


async def last_record(con: asyncpg.Connection, id_number: str) -> date | None:
    return await con.fetchval(LAST_RECORD, id_number)  # type: ignore[no-any-return]


async def origin_figures(con: asyncpg.Connection, id_number: str, before: date) -> list[tuple[int, Decimal, Decimal]]:
    return [(r["scheme"], r["account"], r["bases"]) for r in await con.fetch(ORIGIN_FIGURES, id_number, before)]


async def latest(con: asyncpg.Connection, id_number: str) -> asyncpg.Record | None:
    return await con.fetchrow(LATEST, id_number)


async def record(con: asyncpg.Connection, t: TransferRec, direction: str) -> None:
    await con.execute(INSERT, t.id, direction, t.id_number, t.name, t.from_region, t.to_region, t.effective_from,
                      json.dumps(t.schemes))


async def move_person(con: asyncpg.Connection, id_number: str, region: str) -> None:
    await con.execute(MOVE_PERSON, id_number, region)


async def register_person(con: asyncpg.Connection, id_number: str, name: str, region: str) -> None:
    await con.execute(REGISTER_PERSON, id_number, name, region)


async def book(con: asyncpg.Connection, region: str, month: date, scheme: int, moved_in: Decimal, moved_out: Decimal,
               root: str) -> None:
    await con.execute(BOOK, region, month, scheme, moved_in, moved_out, root)


async def of_persons(pool: asyncpg.Pool, ids: list[str]) -> dict[str, list[TransferRec]]:
    out: dict[str, list[TransferRec]] = {i: [] for i in ids}
    seen: set[tuple[str, str]] = set()
    for r in await pool.fetch(OF_PERSONS, ids):
        if (r["id_number"], r["id"]) in seen:
            continue  # both sides held here: one transfer
        seen.add((r["id_number"], r["id"]))
        out[r["id_number"]].append(TransferRec(r["id"], r["id_number"], r["name"], r["from_region"], r["to_region"],
                                               r["effective_from"], json.loads(r["schemes"])))
    return out
