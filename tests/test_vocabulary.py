"""The one vocabulary (tiers/vocabulary.py) and the database agree: every check constraint
on a column that stores a tier, scheme, department or agency kind accepts exactly the
stored values of the Python definitions; the pooled-fund formula and the pool id mean the
same in SQL and in Python; the served enums are the Python ones."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import asyncpg
import pytest
from tierfed.schema.root import schema
from tierfed.tiers import vocabulary as v
from tierfed.tiers.figures import Figures

CONSTRAINTS = """
select c.conrelid::regclass::text as tbl, a.attname as col, pg_get_constraintdef(c.oid) as def
from pg_constraint c
join pg_attribute a on a.attrelid = c.conrelid and a.attnum = c.conkey[1]
join pg_class r on r.oid = c.conrelid
where c.contype = 'c' and cardinality(c.conkey) = 1 and a.attname = any($1::text[])
  and r.relkind in ('r', 'p') and not r.relispartition
"""

COLUMNS = """
select c.table_name, c.column_name from information_schema.columns c
join pg_class r on r.relname = c.table_name and r.relkind in ('r', 'p') and not r.relispartition
where c.table_schema = 'public' and c.column_name = any($1::text[]) and c.data_type = 'smallint'
"""


async def test_check_constraints_accept_exactly_the_vocabulary(fresh_db: str) -> None:
    con = await asyncpg.connect(fresh_db)
    try:
        rows = await con.fetch(CONSTRAINTS, list(v.STORED))
        checked = {(r["tbl"], r["col"]) for r in rows}
        # Every smallint column named after the vocabulary has its check: a new table cannot forget it.
        columns = {(r["table_name"], r["column_name"]) for r in await con.fetch(COLUMNS, list(v.STORED))}
        assert columns and columns <= checked, columns - checked
        for r in rows:
            stored = v.STORED[r["col"]]
            expr = re.sub(rf"\b{r['col']}\b", "$1::smallint", r["def"].removeprefix("CHECK "))
            accepted = [n for n in range(-1, max(stored) + 3) if await con.fetchval(f"select {expr}", n)]
            assert accepted == list(stored), (r["tbl"], r["col"], r["def"])
    finally:
        await con.close()


async def test_the_pooled_fund_formula_is_the_same_in_sql(fresh_db: str) -> None:
    f = Figures(employer=Decimal("1000.10"), individual=Decimal("400.20"), individual_account=Decimal("320.00"),
                benefits_paid=Decimal("55.55"), transfers_in=Decimal("7.01"), transfers_out=Decimal("3.30"))
    f.booked[0] = Decimal("100.00")  # an income category
    f.booked[-1] = Decimal("20.00")  # an expenditure category
    columns = [c for c, _ in v.FUND_FLOW_TERMS]
    values = [getattr(f, c) for c in columns]
    con = await asyncpg.connect(fresh_db)
    try:
        sql = (f"select {v.fund_flow_sql('s')} from (select {', '.join(f'${i + 1}::numeric' for i in range(len(values)))})"
               f" as s ({', '.join(columns)})")
        assert await con.fetchval(sql, *values) == f.fund_flow == Decimal("1108.46")
        # booked_net is the generated column of summary: the same signs as the vocabulary's.
        gen = await con.fetchval("select pg_get_expr(d.adbin, d.adrelid) from pg_attrdef d join pg_attribute a "
                                 "on a.attrelid = d.adrelid and a.attnum = d.adnum "
                                 "where d.adrelid = 'summary'::regclass and a.attname = 'booked_net'")
        cols = [c.lower() for c in v.BOOKED]
        row = f"(select {', '.join(f'${i + 1}::numeric' for i in range(len(cols)))}) as t ({', '.join(cols)})"
        for k, sign in enumerate(v.BOOKED_SIGN):  # each category alone: +1 for income, -1 for expenditure
            one = [Decimal(1) if i == k else Decimal(0) for i in range(len(cols))]
            assert await con.fetchval(f"select {gen} from {row}", *one) == sign, (v.BOOKED[k], gen)
    finally:
        await con.close()


async def test_pool_ids_are_the_same_in_sql(fresh_db: str) -> None:
    con = await asyncpg.connect(fresh_db)
    try:
        for scheme in range(1, len(v.SCHEMES) + 1):
            got = await con.fetchval(f"select {v.pool_id_sql('$1::text', '$2::int', '$3::date', '$4::text[]')}",
                                     "440300", scheme, date(2025, 3, 1), list(v.SCHEMES))
            assert got == v.pool_id("440300", scheme, date(2025, 3, 1))
            assert v.pool_id_parts(got) == ("440300", scheme, date(2025, 3, 1))
    finally:
        await con.close()
    assert v.pool_id_parts("440300-PENSION-202513") is None and v.pool_id_parts("440300-PENSIONS-202501") is None


@pytest.mark.parametrize("name, enum", [("Tier", v.Tier), ("Scheme", v.Scheme), ("Department", v.Department),
                                        ("AgencyKind", v.AgencyKind)])
def test_the_served_enums_are_the_vocabulary(name: str, enum: type) -> None:
    served = schema._schema.type_map[name]
    assert list(served.values) == [m.value for m in enum]  # type: ignore[attr-defined]
