"""The migrated database, table by table (columns and their types, constraints, indexes,
triggers), equals the committed reference ``tests/reference/schema.txt``. A migration that
changes what it should not (an index lost, a type widened, a check dropped) fails here.

After an intended change, write the new reference and review its diff in the commit:
    TIERFED_UPDATE_REFERENCE=1 .venv/bin/python -m pytest tests/test_migrated_schema.py
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import asyncpg

REFERENCE = Path(__file__).parent / "reference" / "schema.txt"

# Tables only (partitions that imports add later are not the migrations'), in the public schema.
TABLES = """
select c.oid, c.relname, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relispartition order by c.relname
"""
COLUMNS = """
select a.attname, format_type(a.atttypid, a.atttypmod) as type, a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid) as dflt, a.attgenerated
from pg_attribute a left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
where a.attrelid = $1 and a.attnum > 0 and not a.attisdropped order by a.attname
"""
CONSTRAINTS = "select conname, pg_get_constraintdef(oid) as def from pg_constraint where conrelid = $1 order by conname"
INDEXES = "select indexrelid::regclass::text as name, pg_get_indexdef(indexrelid) as def from pg_index where indrelid = $1"
TRIGGERS = "select tgname from pg_trigger where tgrelid = $1 and not tgisinternal order by tgname"
FUNCTIONS = """
select p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ') returns '
       || pg_get_function_result(p.oid)
from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'public' order by 1
"""


async def describe(url: str) -> str:
    con = await asyncpg.connect(url)
    try:
        out = []
        for t in await con.fetch(TABLES):
            out.append(f"table {t['relname']}{' (partitioned)' if t['relkind'] == 'p' else ''}")
            for c in await con.fetch(COLUMNS, t["oid"]):
                gen = " generated" if c["attgenerated"] else ""
                dflt = f" default {c['dflt']}" if c["dflt"] is not None else ""
                out.append(f"  column {c['attname']} {c['type']}{' not null' if c['attnotnull'] else ''}{gen}{dflt}")
            out += [f"  constraint {r['conname']} {r['def']}" for r in await con.fetch(CONSTRAINTS, t["oid"])]
            out += sorted(f"  index {r['name']} {r['def'].split(' USING ', 1)[-1]}"
                          for r in await con.fetch(INDEXES, t["oid"]))
            out += [f"  trigger {r['tgname']}" for r in await con.fetch(TRIGGERS, t["oid"])]
        out += [f"function {r[0]}" for r in await con.fetch(FUNCTIONS)]
        return "\n".join(out) + "\n"
    finally:
        await con.close()


async def test_the_migrated_database_equals_the_reference(fresh_db: str) -> None:
    got = await describe(fresh_db)
    if os.environ.get("TIERFED_UPDATE_REFERENCE"):
        REFERENCE.write_text(got, encoding="utf-8")
    want = REFERENCE.read_text(encoding="utf-8")
    diff = "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True), "reference", "migrated"))
    assert got == want, ("the migrated database differs from tests/reference/schema.txt; if the change is "
                         "intended, rerun with TIERFED_UPDATE_REFERENCE=1 and commit the new reference:\n" + diff)
