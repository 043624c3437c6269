"""Every SQL statement of the importer, as constant text with ``$n`` parameters.

Two paths share the staging idea: the directory and registration kinds stage
rows checked in Python (``STAGING``, ``CHECKS``, ``APPLY``); contributions and
benefits stage the file's fields (or, for a file the fast path cannot take, its
lines) as they are and check them in SQL (``RECORDS``), and attach months not
stored yet as new partitions. The history of imports is at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from tierfed.tiers.changestore import overlapping_region
from tierfed.tiers.figures import BOOKED
from tierfed.tiers.poolstore import BOOKED_COLUMNS, BOOKED_SUMS, book_flows
from tierfed.tiers.transferstore import RESUMMARISE_TRANSFERS
from tierfed.tiers.vocabulary import SCHEMES, TIER_NAMES, pool_id_sql, sql_names

TIER_NAMES_SQL = sql_names(tuple(t.lower() for t in TIER_NAMES))  # as the regions file writes them
SCHEME_NAMES_SQL = sql_names(SCHEMES)

# One import at a time on a node: the checks and the insert see the same stored rows.
LOCK = "select pg_advisory_xact_lock(7366042)"
# maintenance_work_mem: the indexes of a new month's partition are built by one sort each.
WORK_MEM = "set local work_mem = '256MB'; set local maintenance_work_mem = '256MB'"

# ---------------------------------------------------------------- rows checked in Python

STAGING = {
    "regions": "create temp table staging (line int, code text, name text, tier smallint, parent_code text) "
               "on commit drop",
    "agencies": "create temp table staging (line int, code text, name text, department smallint, kind smallint, "
                "region_code text, parent_code text, vertically_managed boolean) on commit drop",
    "pools": "create temp table staging (line int, scheme smallint, region_code text, opened_from date, "
             "opening_balance numeric) on commit drop",
    "employers": "create temp table staging (line int, credit_code text, name text, region_code text, "
                 "industry_risk_class smallint) on commit drop",
    "persons": "create temp table staging (line int, id_number text, name text, region_code text) on commit drop",
    "fund_flows": "create temp table staging (line int, scheme smallint, region_code text collate \"C\", month date, "
                  "category text collate \"C\", amount numeric) on commit drop",
}

# A fund flow's pool: the pool of its scheme held on this node covering its region in its month.
_FLOW_POOLS = """select s.line, p.id as pool_id, p.region_code as pool_region
                 from staging s join region_closure rc on rc.descendant = s.region_code
                 join pool p on p.region_code = rc.ancestor and p.scheme = s.scheme
                  and p.opened_from <= s.month and (p.closed_after is null or p.closed_after >= s.month)"""
# The stored flows of the same scheme, month and category that the row's pool covers now: a
# raise after a flow was stored hands it to the new pool, whose one row it then is.
_STORED_IN_POOL = """x.scheme = s.scheme and x.month = s.month and x.category = s.category
                     and x.region_code in (select descendant from region_closure where ancestor = fp.pool_region)"""

# The pools the staged fund flows book into, (scheme, pool region), whose locks the import takes
# as a pooling change takes them (tiers.pooling.pool_lock_key; in the order of the keys given,
# exclusive, then shared) before its checks: a change cannot reserve one of them between the check
# that none holds them and the import's commit, nor the import book into one a change is preparing.
FLOW_POOL_REGIONS = f"select distinct s.scheme, fp.pool_region from staging s join ({_FLOW_POOLS}) fp using (line)"
# The staged pools' schemes and regions (a pools import locks them as a raise does).
STAGED_POOL_REGIONS = "select distinct s.scheme, s.region_code from staging s where s.region_code is not null"
LOCK_POOLS = ("select count(pg_advisory_xact_lock(k)) from unnest($1::bigint[]) k",
              "select count(pg_advisory_xact_lock_shared(k)) from unnest($1::bigint[]) k")

# Each check returns rows of (line, column, reason), the first thousand by line.
CHECKS: dict[str, tuple[str, ...]] = {
    "persons": (
        """select s.line, 'id_number', 'repeats the id_number of line ' || d.first
           from staging s join (select id_number, min(line) as first from staging group by 1 having count(*) > 1) d
             using (id_number) where s.line <> d.first order by s.line limit 1000""",
        """select s.line, 'name', 'a different registration of this person is already stored'
           from staging s join person p on p.id_number = s.id_number
           where (p.name, p.region_code) is distinct from (s.name, s.region_code) order by s.line limit 1000""",
    ),
    "employers": (
        """select s.line, 'credit_code', 'repeats the credit_code of line ' || d.first
           from staging s join (select credit_code, min(line) as first from staging group by 1 having count(*) > 1) d
             using (credit_code) where s.line <> d.first order by s.line limit 1000""",
        """select s.line, 'name', 'a different registration of this employer is already stored'
           from staging s join employer e on e.credit_code = s.credit_code
           where (e.name, e.region_code, e.industry_risk_class)
                 is distinct from (s.name, s.region_code, s.industry_risk_class) order by s.line limit 1000""",
    ),
    "regions": (
        """select s.line, 'code', 'repeats the code of line ' || d.first
           from staging s join (select code, min(line) as first from staging group by 1 having count(*) > 1) d
             using (code) where s.line <> d.first order by s.line limit 1000""",
        """select s.line, 'parent_code', 'parent ' || s.parent_code || ' is neither in the file nor stored'
           from staging s where s.parent_code <> ''
             and not exists (select 1 from staging p where p.code = s.parent_code)
             and not exists (select 1 from region r where r.code = s.parent_code) order by s.line limit 1000""",
        f"""select s.line, 'tier', 'a ' || ({TIER_NAMES_SQL})[s.tier + 1]
                  || ' cannot sit under a ' || ({TIER_NAMES_SQL})[coalesce(p.tier, r.tier) + 1]
           from staging s left join staging p on p.code = s.parent_code left join region r on r.code = s.parent_code
           where s.parent_code <> '' and not (
                 (s.tier = 1 and coalesce(p.tier, r.tier) = 0) or (s.tier = 2 and coalesce(p.tier, r.tier) = 1)
              or (s.tier = 3 and coalesce(p.tier, r.tier) in (1, 2)))
           order by s.line limit 1000""",
        f"""select s.line, 'tier', 'region ' || s.code || ' is stored as a '
                  || ({TIER_NAMES_SQL})[r.tier + 1] || ': a tier cannot change'
           from staging s join region r on r.code = s.code where r.tier <> s.tier order by s.line limit 1000""",
    ),
    "agencies": (
        """select s.line, 'code', 'repeats the code of line ' || d.first
           from staging s join (select code, min(line) as first from staging group by 1 having count(*) > 1) d
             using (code) where s.line <> d.first order by s.line limit 1000""",
        """select s.line, 'parent_code', 'parent agency ' || s.parent_code || ' is neither in the file nor stored'
           from staging s where s.parent_code <> ''
             and not exists (select 1 from staging p where p.code = s.parent_code)
             and not exists (select 1 from agency a where a.code = s.parent_code) order by s.line limit 1000""",
    ),
    "pools": (
        """select s.line, 'region_code', 'repeats the pool of line ' || d.first
           from staging s join (select scheme, region_code, opened_from, min(line) as first from staging
                                group by 1, 2, 3 having count(*) > 1) d using (scheme, region_code, opened_from)
           where s.line <> d.first order by s.line limit 1000""",
        """select s.line, 'region_code', 'overlaps pool of line ' || o.line || ' (same scheme, nested regions)'
           from staging s join staging o on o.scheme = s.scheme and o.line < s.line
           join region_closure rc on (rc.ancestor = s.region_code and rc.descendant = o.region_code)
                                  or (rc.ancestor = o.region_code and rc.descendant = s.region_code)
           order by s.line limit 1000""",
        """select s.line, 'region_code', 'overlaps stored pool ' || p.id || ' (same scheme, nested regions, '
                  || 'open months overlap)'
           from staging s join pool p on p.scheme = s.scheme
           join region_closure rc on (rc.ancestor = s.region_code and rc.descendant = p.region_code)
                                  or (rc.ancestor = p.region_code and rc.descendant = s.region_code)
           where not (p.region_code = s.region_code and p.opened_from = s.opened_from
                      and p.opening_balance = s.opening_balance)
             and (p.closed_after is null or p.closed_after >= s.opened_from)
           order by s.line limit 1000""",
        # A raise in progress across nodes holds the scheme over an overlapping subtree: it closes
        # and opens pools there once decided, which a pool added meanwhile would overlap.
        f"""select distinct on (s.line) s.line, 'region_code', ({SCHEME_NAMES_SQL})[s.scheme] || ' over '
                  || r.region_code || ' is held by change ' || c.id || ' (' || c.kind || ') in progress: import '
                  || 'this file again once it is decided'
           from staging s join change_reservation r on r.scheme = s.scheme and {overlapping_region("s.region_code")}
           join change c on c.id = r.change_id
           order by s.line limit 1000""",
    ),
    "fund_flows": (
        f"""select s.line, 'month', 'no pool of ' || ({SCHEME_NAMES_SQL})[s.scheme] || ' held on this node covers '
                  || s.region_code || ' in '
                  || to_char(s.month, 'YYYY-MM') || ' (a pool held by a parent node books its flows there)'
           from staging s where not exists (select 1 from ({_FLOW_POOLS}) f where f.line = s.line)
           order by s.line limit 1000""",
        f"""with f as (select s.*, fp.pool_id from staging s join ({_FLOW_POOLS}) fp using (line))
           select f.line, 'category', 'repeats the pool, month and category of line ' || d.first
           from f join (select pool_id, month, category, min(line) as first from f group by 1, 2, 3
                        having count(*) > 1) d using (pool_id, month, category)
           where f.line <> d.first order by f.line limit 1000""",
        f"""select s.line, 'amount', 'pool ' || fp.pool_id || ' already has ' || x.amount || ' of '
                  || s.category || ' in ' || to_char(s.month, 'YYYY-MM') || ' (booked for ' || x.region_code || ')'
           from staging s join ({_FLOW_POOLS}) fp using (line) join fund_flow x on {_STORED_IN_POOL}
           where x.amount <> s.amount or x.region_code <> s.region_code order by s.line limit 1000""",
        # A change across nodes in progress (a settlement, a raise) holds the pool: it books or
        # moves what this flow would change, so the flow waits until it is decided.
        f"""select distinct on (s.line) s.line, 'region_code', 'pool ' || fp.pool_id || ' is held by change '
                  || c.id || ' (' || c.kind || ') in progress: import this file again once it is decided'
           from staging s join ({_FLOW_POOLS}) fp using (line)
           join change_reservation r on r.scheme = s.scheme and {overlapping_region("fp.pool_region")}
           join change c on c.id = r.change_id
           order by s.line limit 1000""",
    ),
}

_BOOKED_SET = ", ".join(f"{c} = excluded.{c}" for c in (x.lower() for x in BOOKED))

# The flows and their summaries in one statement (``poolstore.book_flows``: $1 the node's root),
# only the rows not stored yet.
APPLY_AT_ROOT: dict[str, tuple[str, ...]] = {
    "fund_flows": (book_flows(f"""select fp.pool_id, s.month, s.category, s.scheme, s.region_code, s.amount
               from staging s join ({_FLOW_POOLS}) fp using (line)
               where not exists (select 1 from fund_flow x where {_STORED_IN_POOL})"""),),
}

# After regions moved: the fund flows' summaries again, from the stored flows ($1: the root).
RESUMMARISE_FUND_FLOWS = f"""
insert into summary (region_code, month, scheme, {BOOKED_COLUMNS})
select rc.ancestor, f.month, f.scheme, {BOOKED_SUMS}
from fund_flow f join pool p on p.id = f.pool_id
join region_closure rc on rc.descendant = p.region_code
join region_closure top on top.ancestor = $1 and top.descendant = rc.ancestor
group by 1, 2, 3
on conflict (region_code, month, scheme) do update set {_BOOKED_SET}
"""

APPLY: dict[str, tuple[str, ...]] = {
    "persons": ("insert into person select id_number, name, region_code from staging on conflict do nothing",),
    "employers": ("insert into employer select credit_code, name, region_code, industry_risk_class from staging "
                  "on conflict do nothing",),
    "agencies": (
        """insert into agency (code, name, department, kind, region_code, parent_code, vertically_managed)
           select code, name, department, kind, region_code, nullif(parent_code, ''), vertically_managed from staging
           on conflict (code) do update set name = excluded.name, department = excluded.department,
               kind = excluded.kind, region_code = excluded.region_code, parent_code = excluded.parent_code,
               vertically_managed = excluded.vertically_managed
           where (agency.name, agency.department, agency.kind, agency.region_code, agency.parent_code,
                  agency.vertically_managed) is distinct from
                 (excluded.name, excluded.department, excluded.kind, excluded.region_code, excluded.parent_code,
                  excluded.vertically_managed)""",
    ),
    "pools": (
        f"""insert into pool (id, scheme, region_code, opened_from, opening_balance)
           select {pool_id_sql("s.region_code", "s.scheme", "s.opened_from", SCHEME_NAMES_SQL)},
                  s.scheme, s.region_code, s.opened_from, s.opening_balance
           from staging s on conflict (id) do nothing""",
    ),
    "regions": (
        """insert into region (code, name, tier, parent_code)
           select code, name, tier, nullif(parent_code, '') from staging order by tier
           on conflict (code) do update set name = excluded.name, parent_code = excluded.parent_code
           where (region.name, region.parent_code) is distinct from (excluded.name, excluded.parent_code)""",
    ),
}

COUNT_FLOWS = "select count(*) from fund_flow"

REGIONS_MOVED = """select count(*) from staging s join region r on r.code = s.code
                   where r.parent_code is distinct from nullif(s.parent_code, '')"""
TREE_CHANGED = "notify tierfed_tree"

SUMMARY_UPSERT_SET = """
on conflict (region_code, month, scheme) do update set
    contributions = summary.contributions + excluded.contributions,
    employer = summary.employer + excluded.employer,
    individual = summary.individual + excluded.individual,
    individual_account = summary.individual_account + excluded.individual_account,
    base = summary.base + excluded.base,
    benefits = summary.benefits + excluded.benefits,
    benefits_paid = summary.benefits_paid + excluded.benefits_paid
"""

# After regions moved under another parent, every summary is recomputed from the records
# ($1: the node's root region).
RESUMMARISE = (
    "delete from summary",
    """insert into summary (region_code, month, scheme, contributions, employer, individual, individual_account, base)
       select rc.ancestor, c.month, c.scheme, count(*), sum(employer_amount), sum(individual_amount),
              sum(individual_account_amount), sum(c.base)
       from contribution c join region_closure rc on rc.descendant = c.region_code
       join region_closure top on top.ancestor = $1 and top.descendant = rc.ancestor
       group by 1, 2, 3""",
    """insert into summary (region_code, month, scheme, benefits, benefits_paid)
       select rc.ancestor, b.month, b.scheme, count(*), sum(amount)
       from benefit b join region_closure rc on rc.descendant = b.region_code
       join region_closure top on top.ancestor = $1 and top.descendant = rc.ancestor
       group by 1, 2, 3""" + SUMMARY_UPSERT_SET,
    RESUMMARISE_TRANSFERS,  # after the records: pooled funds moved by insurance transfers
    RESUMMARISE_FUND_FLOWS,
)

# ---------------------------------------------------------------- records: lines staged as they are, checked in SQL

LINES = "create temp table import_line (raw text) on commit drop"
# What a record may name, made by the importer for this import (regions: the node's
# subtree not held by children, within the caller's scope; months; schemes).
LOOKUPS = (
    "create temp table import_region (code text collate \"C\" primary key) on commit drop",
    """create temp table import_month on commit drop as
       select to_char(d, 'YYYY-MM') as v, d::date as m from generate_series($1::date, $2::date, '1 month') d""",
    "create temp table import_scheme on commit drop as select * from unnest($1::text[], $2::smallint[]) s (v, id)",
    "analyze import_month",
    "analyze import_scheme",
    # The direct path's one lookup for both (one hash join a row fewer than a join for each).
    """create temp table import_scheme_month on commit drop as
       select sc.v as scheme_v, mo.v as month_v, sc.id, mo.m from import_scheme sc cross join import_month mo""",
    "analyze import_scheme_month",
)
ANALYZE_REGIONS = "analyze import_region"

# An amount as codes.AMOUNT_RE has it (digits, at most 2 decimals, at most 12 integer digits),
# spaces around allowed. Written for speed: PostgreSQL's regex engine is slow on bounded repeats,
# and a value that matches as it stands (no spaces to trim) in at most 12 characters needs
# neither btrim nor split_part (the common case: one regex call and one length).
_AMOUNT_RE = "'^[0-9]+([.][0-9][0-9]?)?$'"


def _amount_ok(v: str) -> str:
    return (f"(case when {v} ~ {_AMOUNT_RE} then length({v}) <= 12 or length(split_part({v}, '.', 1)) <= 12"
            f" else btrim({v}, E' \\t') ~ {_AMOUNT_RE} and length(split_part(btrim({v}, E' \\t'), '.', 1)) <= 12 end)")


def _amount_typed_ok(v: str) -> str:
    """The same check when the source also holds ``<v>_n``, the value cast to numeric (a cast
    that fails aborts the fast path, whose file then takes the line path). A value printed
    back exactly as it is written, not negative, below 10^12 and with at most two decimals is
    an amount: the common case costs no regex. Any other value gets the regex check."""
    n = f"{v}_n"
    return f"(({n})::text = {v} and {n} >= 0 and {n} < 1000000000000 and coalesce(scale({n}), 3) <= 2 or {_amount_ok(v)})"


# Summaries add up whole fen in bigint (``tierfed_int8_sum``, migration 0017: the built-in
# sum(bigint) goes through a 128-bit state per group and returns numeric, about twice the cost
# of the whole leaf aggregate) and go back to yuan (scale 2, exact) once per summary row. Their
# rows are upserted in key order: each index page is visited once, not once per row at random.
def _fen(v: str) -> str:
    return f"tierfed_int8_sum(({v} * 100)::int8)"


def _yuan(v: str) -> str:
    return f"tierfed_int8_sum({v}) * 0.01"


def _summarise(columns: str, amounts: tuple[str, ...]) -> Callable[[str], str]:
    """The summaries' upsert of a kind of records over a table of the import's rows: per record
    region, month and scheme the count and the sums of ``amounts`` (into the summary's
    ``columns``, in that order), then for every ancestor up to the node's root ($1)."""
    leaf = ", ".join(f"{_fen(a)} as a{i}" for i, a in enumerate(amounts))
    up = ", ".join(f"{_yuan(f'a.a{i}')} as a{i}" for i in range(len(amounts)))

    def over(source: str) -> str:
        return f"""insert into summary (region_code, month, scheme, {columns})
                 with s as materialized (
                   select rc.ancestor, a.month, a.scheme, tierfed_int8_sum(a.n) as n, {up}
                   from (select region_code, month, scheme, count(*) as n, {leaf}
                         from {source} group by 1, 2, 3) a
                   join region_closure rc on rc.descendant = a.region_code
                   join region_closure top on top.ancestor = $1 and top.descendant = rc.ancestor
                   group by 1, 2, 3)
                 select * from s order by 1, 2, 3""" + SUMMARY_UPSERT_SET

    return over


@dataclass(frozen=True)
class RecordSql:
    """The statements of one record kind. ``check`` takes the 1-based positions of the
    kind's columns in the file ($1..$n) and the number of header columns ($n+1);
    ``check_csv`` is the same check over ``import_line`` holding one typed text column per
    field (the fast path, see records.py), with no parameters."""

    check: str
    check_csv: str
    problems: str
    repeated: str
    conflicting: str
    drop_stored: str
    summarise_of: Callable[[str], str]  # the summaries' upsert over a table of the import's rows
    direct: str
    columns: tuple[str, ...]  # the file's columns, which are also the table's
    table: str

    @property
    def summarise(self) -> str:
        """The summaries of the staged rows ($1: the node's root region)."""
        return self.summarise_of("import_staging")

    def summarise_from(self, source: str) -> str:
        """``summarise`` over another table of the import's rows (the direct path's new months)."""
        return self.summarise_of(source)

    def insert_into(self, target: str, months: bool) -> str:
        """The staged records into ``target`` (the kind's table or the new months' table);
        with ``months``, only those of the months in $1."""
        cols = ", ".join(self.columns)
        return (f"insert into {target} ({cols}) select {cols} from import_staging"
                + (" where month = any($1::date[])" if months else ""))


# A line is split with string_to_array, or with tierfed_csv_fields when it holds a quote.
# ``problem`` is the first bad column in the kind's column order (0: the field count;
# the last: the individual account above the individual part), as the row checks order them.
# An ID number or credit code is checked (check character and all) only when it is not
# found registered as it stands: a registered one passed those checks when it was registered.
_SPLIT = """select row_number() over () + 1 as line, raw,
                   coalesce(cardinality(f), 0) as nf, f
            from (select raw, case when strpos(raw, '"') > 0 then tierfed_csv_fields(raw)
                                   else string_to_array(raw, ',') end as f
                  from import_line offset 0) l"""

# The fast path stages each record's place in ``import_line`` (``at``, its ctid: COPY appends the
# records in file order) rather than numbering every line; a report numbers them only when it needs to.
NEEDS_LINES = "select exists (select 1 from import_staging where line is null)"
NUMBER_LINES = """update import_staging s set line = n.line
                  from (select ctid as at, row_number() over (order by ctid) + 1 as line from import_line) n
                  where s.at = n.at"""

# A (person, scheme, month) repeated in the file: every line after its first, for either kind of record.
REPEATED_KEY = """select s.line, 'id_number', 'repeats the (id_number, scheme, month) of line ' || d.first,
                         count(*) over ()
                  from import_staging s
                  join (select id_number, scheme, month, min(line) as first from import_staging where problem is null
                        group by 1, 2, 3 having count(*) > 1) d using (id_number, scheme, month)
                  where s.problem is null and s.line <> d.first order by s.line limit 1000"""

# The direct path (records.py ``direct``), for a file whose months are all new: its fields,
# as the fast path staged them, go through every check and straight into the new months'
# partitions in one statement: a join per lookup (person registered, scheme and month, region
# in scope and not held by a child, employer) and the amounts' checks as conditions. A row
# any of them refuses is simply not inserted, and the import, seeing fewer rows than the
# file's, rolls back to before it and takes the fast path's check, which words the reasons.
_CONTRIBUTION_FIELDS = """id_number as id_raw, scheme as scheme_raw, month as month_raw, region_code as region_raw,
       btrim(employer_credit_code) as emp, base, employer_amount as e, individual_amount as i,
       individual_account_amount as a, base::numeric as base_n, employer_amount::numeric as e_n,
       individual_amount::numeric as i_n, individual_account_amount::numeric as a_n"""
_BENEFIT_FIELDS = """id_number as id_raw, scheme as scheme_raw, month as month_raw, region_code as region_raw,
       amount, amount::numeric as amount_n"""


def new_table(table: str) -> str:
    """The import's own partitioned table for the months not stored yet (see ``new_months``)."""
    return f"{table}_new"


def _direct(table: str, fields: str, more: str, joins: str, checks: str, values: str) -> str:
    """The direct insert: every lookup joined in a fenced subquery (so that the amounts'
    conditions, applied after, do not make the planner expect a handful of rows), then the
    conditions. ``more``/``joins``: the kind's own lookups (the employer)."""
    cols = CONTRIBUTION_COLUMNS if table == "contribution" else BENEFIT_COLUMNS
    return f"""insert into {new_table(table)} ({', '.join(cols)})
select {values}
from (select x.*, p.id_number, sm.id as scheme, sm.m as month, rg.code as region_code{', ' + more if more else ''}
      from (select {fields} from import_line offset 0) x
      join person p on p.id_number = x.id_raw
      join import_scheme_month sm on sm.scheme_v = x.scheme_raw and sm.month_v = x.month_raw
      join import_region rg on rg.code = x.region_raw
      {joins}
      offset 0) x
where {checks}"""


CONTRIBUTION_COLUMNS = ("id_number", "scheme", "month", "region_code", "employer_credit_code", "base",
                        "employer_amount", "individual_amount", "individual_account_amount")
BENEFIT_COLUMNS = ("id_number", "scheme", "month", "region_code", "amount")
# The file's months, each as a month this import may take (null if not one).
FILE_MONTHS = """select f.month as v, m.m from (select distinct month from import_line) f
                 left join import_month m on m.v = f.month order by 2"""
SAVEPOINT_DIRECT = "savepoint import_direct"
ROLLBACK_DIRECT = "rollback to savepoint import_direct"
RELEASE_DIRECT = "release savepoint import_direct"


def transferred_out_in(table: str) -> str:
    """Whether any of ``table``'s rows is of a month after its person moved out by an insurance
    transfer (``TRANSFERRED_OUT`` words them, over the staged rows)."""
    return f"""select exists (
                 select 1 from {table} s join insurance_transfer t
                   on t.id_number = s.id_number and t.direction = 'out' and s.month >= t.effective_from
                 where not exists (select 1 from insurance_transfer b where b.id_number = s.id_number
                                   and b.direction = 'in' and b.effective_from > t.effective_from
                                   and b.effective_from <= s.month))"""


def _contribution_check(source: str, short: str, typed: bool = False) -> str:
    """The contributions check over ``source`` (one row per line: line, raw, the fields by name);
    ``short`` is true of a line with another number of fields than the header. ``typed``: the source also
    has each amount cast to numeric (``base_n``...), the check and the staged values use it."""
    ok = _amount_typed_ok if typed else _amount_ok
    cast, n = ("", "_n") if typed else ("::numeric", "")
    return f"""
create temp table import_staging on commit drop as
select line, at, case when problem is not null or unregistered or unknown_employer then raw end as raw,
       problem, unregistered, unknown_employer,
       id_number, scheme, month, region_code, nullif(employer, '') as employer_credit_code,
       case when problem is null then base{cast} end as base,
       case when problem is null then e{cast} end as employer_amount,
       case when problem is null then i{cast} end as individual_amount,
       case when problem is null then a{cast} end as individual_account_amount
from (
  select x.line, x.at, x.raw,
         case when {short} then 0
              when p.id_number is null and not tierfed_id_number_ok(x.id_raw) then 1
              when sc.id is null then 2
              when mo.m is null then 3
              when rg.code is null then 4
              when x.emp <> '' and em.credit_code is null and not tierfed_credit_code_ok(x.emp) then 5
              when not {ok('x.base')} then 6
              when not {ok('x.e')} then 7
              when not {ok('x.i')} then 8
              when not {ok('x.a')} then 9
              when x.a{n}{cast} > x.i{n}{cast} then 10
         end as problem,
         p.id_number is null and not exists (select 1 from person q where q.id_number = upper(btrim(x.id_raw)))
             as unregistered,
         x.emp <> '' and em.credit_code is null
             and not exists (select 1 from employer q where q.credit_code = upper(x.emp)) as unknown_employer,
         coalesce(p.id_number, upper(btrim(x.id_raw))) as id_number, sc.id as scheme, mo.m as month,
         rg.code as region_code, coalesce(em.credit_code, upper(x.emp)) as employer,
         x.base{n} as base, x.e{n} as e, x.i{n} as i, x.a{n} as a
  from ({source}) x
  left join person p on p.id_number = x.id_raw
  left join import_scheme sc on sc.v = x.scheme_raw
  left join import_month mo on mo.v = x.month_raw
  left join import_region rg on rg.code = x.region_raw
  left join employer em on em.credit_code = x.emp
  offset 0
) c"""


CONTRIBUTIONS = RecordSql(
    table="contribution",
    columns=CONTRIBUTION_COLUMNS,
    check=_contribution_check(
        f"""select line, null::tid as at, raw, nf, f[$1] as id_raw, f[$2] as scheme_raw, f[$3] as month_raw, f[$4] as region_raw,
                   btrim(f[$5]) as emp, f[$6] as base, f[$7] as e, f[$8] as i, f[$9] as a
            from ({_SPLIT}) s offset 0""", "x.nf <> $10"),
    check_csv=_contribution_check(
        """select null::bigint as line, ctid as at, null::text as raw, id_number as id_raw, scheme as scheme_raw,
                  month as month_raw, region_code as region_raw, btrim(employer_credit_code) as emp, base,
                  employer_amount as e, individual_amount as i, individual_account_amount as a,
                  base::numeric as base_n, employer_amount::numeric as e_n, individual_amount::numeric as i_n,
                  individual_account_amount::numeric as a_n
           from import_line offset 0""", "false", typed=True),
    problems="""select line, raw, problem, unregistered, unknown_employer from import_staging
                where problem is not null or unregistered or unknown_employer order by line limit 1000""",
    repeated=REPEATED_KEY,
    conflicting="""select s.line, 'id_number', 'a different record for this person, scheme and month is already stored',
                          count(*) over ()
                   from import_staging s join contribution c
                     on c.id_number = s.id_number and c.scheme = s.scheme and c.month = s.month
                   where s.problem is null and (c.region_code, coalesce(c.employer_credit_code, ''), c.base,
                          c.employer_amount, c.individual_amount, c.individual_account_amount)
                         is distinct from (s.region_code, coalesce(s.employer_credit_code, ''), s.base,
                          s.employer_amount, s.individual_amount, s.individual_account_amount)
                   order by s.line limit 1000""",
    drop_stored="""delete from import_staging s using contribution c
                   where c.id_number = s.id_number and c.scheme = s.scheme and c.month = s.month""",
    # $1: the node's root region: summaries for the record's region and every ancestor up to it.
    summarise_of=_summarise("contributions, employer, individual, individual_account, base",
                            ("employer_amount", "individual_amount", "individual_account_amount", "base")),
    direct=_direct("contribution", _CONTRIBUTION_FIELDS, "em.credit_code as em",
                   "left join employer em on em.credit_code = x.emp",
                   "(x.emp = '' or x.em is not null) and "
                   + " and ".join(_amount_typed_ok(v) for v in ("x.base", "x.e", "x.i", "x.a")) + " and x.a_n <= x.i_n",
                   "x.id_number, x.scheme, x.month, x.region_code, nullif(x.emp, ''), x.base_n, x.e_n, x.i_n, x.a_n"),
)

def _benefit_check(source: str, short: str, typed: bool = False) -> str:
    """The benefits check over ``source``, as ``_contribution_check``."""
    ok = _amount_typed_ok if typed else _amount_ok
    cast, n = ("", "_n") if typed else ("::numeric", "")
    return f"""
create temp table import_staging on commit drop as
select line, at, case when problem is not null or unregistered then raw end as raw,
       problem, unregistered, false as unknown_employer,
       id_number, scheme, month, region_code,
       case when problem is null then amount{cast} end as amount
from (
  select x.line, x.at, x.raw,
         case when {short} then 0
              when p.id_number is null and not tierfed_id_number_ok(x.id_raw) then 1
              when sc.id is null then 2
              when mo.m is null then 3
              when rg.code is null then 4
              when not {ok('x.amount')} then 5
         end as problem,
         p.id_number is null and not exists (select 1 from person q where q.id_number = upper(btrim(x.id_raw)))
             as unregistered,
         coalesce(p.id_number, upper(btrim(x.id_raw))) as id_number, sc.id as scheme, mo.m as month,
         rg.code as region_code, x.amount{n} as amount
  from ({source}) x
  left join person p on p.id_number = x.id_raw
  left join import_scheme sc on sc.v = x.scheme_raw
  left join import_month mo on mo.v = x.month_raw
  left join import_region rg on rg.code = x.region_raw
  offset 0
) c"""


BENEFITS = RecordSql(
    table="benefit",
    columns=BENEFIT_COLUMNS,
    check=_benefit_check(
        f"""select line, null::tid as at, raw, nf, f[$1] as id_raw, f[$2] as scheme_raw, f[$3] as month_raw, f[$4] as region_raw,
                   f[$5] as amount
            from ({_SPLIT}) s offset 0""", "x.nf <> $6"),
    check_csv=_benefit_check(
        """select null::bigint as line, ctid as at, null::text as raw, id_number as id_raw, scheme as scheme_raw,
                  month as month_raw, region_code as region_raw, amount, amount::numeric as amount_n
           from import_line offset 0""", "false", typed=True),
    problems="""select line, raw, problem, unregistered, unknown_employer from import_staging
                where problem is not null or unregistered order by line limit 1000""",
    repeated=REPEATED_KEY,
    conflicting="""select s.line, 'id_number', 'a different benefit record for this person, scheme and month is already stored',
                          count(*) over ()
                   from import_staging s join benefit b
                     on b.id_number = s.id_number and b.scheme = s.scheme and b.month = s.month
                   where s.problem is null and (b.region_code, b.amount) is distinct from (s.region_code, s.amount)
                   order by s.line limit 1000""",
    drop_stored="""delete from import_staging s using benefit b
                   where b.id_number = s.id_number and b.scheme = s.scheme and b.month = s.month""",
    summarise_of=_summarise("benefits, benefits_paid", ("amount",)),
    direct=_direct("benefit", _BENEFIT_FIELDS, "", "", _amount_typed_ok("x.amount"),
                   "x.id_number, x.scheme, x.month, x.region_code, x.amount_n"),
)

RECORDS = {"contributions": CONTRIBUTIONS, "benefits": BENEFITS}

COUNT_PROBLEMS = """select count(*) filter (where problem is not null),
                           count(*) filter (where problem is null and unregistered),
                           count(*) filter (where problem is null and unknown_employer),
                           count(*)
                    from import_staging"""
# ---------------------------------------------------------------- records: the fast path and the months

# The fast path (records.py): the file's fields straight into one text column each by
# PostgreSQL's own CSV parser, under a savepoint that a file it cannot take (a row with
# another number of fields, a line that is not CSV, any bad row) rolls back to, the file
# then being staged line by line as above so that the report is worded as always.
SAVEPOINT_CSV = "savepoint import_csv"
ROLLBACK_CSV = "rollback to savepoint import_csv"
RELEASE_CSV = "release savepoint import_csv"


def lines_csv(header: list[str]) -> str:
    """``import_line`` for the fast path: the file's columns, in its order (names checked by Source)."""
    return ("create temp table import_line (" + ", ".join(f'"{c}" text' for c in header) + ") on commit drop")


# The months of the staged records, and the month partitions the kind's table has.
STAGED_MONTHS = "select distinct month from import_staging order by 1"
PARTITIONS_OF = """select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid
                   where i.inhparent = $1::regclass"""
SAVEPOINT = "savepoint import_insert"
ROLLBACK_SAVEPOINT = "rollback to savepoint import_insert"
RELEASE_SAVEPOINT = "release savepoint import_insert"


def partition_name(table: str, month: date) -> str:
    """As tierfed_ensure_month_partitions names them (migrations/0001)."""
    return f"{table}_{month:%Y_%m}"


def new_months(table: str, months: list[date]) -> tuple[list[str], list[str]]:
    """Months not stored yet, loaded whole before their indexes exist and then attached:
    the statements before the insert into ``new_table(table)``, and after it.

    The rows go through a partitioned table of the import's own (one pass over the staging
    table, routed by month), whose partitions are then detached, given their indexes by
    one sort each (instead of a random insert into a btree per row) and attached to
    ``table``. Attaching takes a SHARE UPDATE EXCLUSIVE lock on ``table``: readers and
    writers go on, the new months invisible to them until the import commits; a killed
    import leaves nothing (it is all one transaction). Each partition carries a CHECK of
    its bounds so that attaching it does not scan it again.
    """
    shadow = new_table(table)
    before = [f"create table {shadow} (like {table} including defaults including constraints) "
              "partition by range (month)"]
    after = []
    for m in months:
        name, nxt = partition_name(table, m), _next_month(m)
        before.append(f"create table {name} partition of {shadow} for values from ('{m}') to ('{nxt}')")
        before.append(f"alter table {name} add constraint {name}_bounds check (month >= '{m}' and month < '{nxt}')")
        after.append(f"alter table {shadow} detach partition {name}")
        after.append(f"alter table {name} add primary key (id_number, scheme, month)")
        if table == "contribution":
            after.append(f"create index on {name} (employer_credit_code, month) where employer_credit_code is not null")
        after.append(f"alter table {table} attach partition {name} for values from ('{m}') to ('{nxt}')")
    after.append(f"drop table {shadow}")
    return before, after


def _next_month(m: date) -> date:
    return date(m.year + (m.month == 12), m.month % 12 + 1, 1)

# ---------------------------------------------------------------- history

# Kinds whose rows are never changed by a later import of the same kind: a file seen
# before (same kind, same SHA-256, imported or found unchanged) changes nothing again.
SEEN_ANY = """select id, rows from import_run where kind = $1 and sha256 = $2 and outcome in ('imported', 'unchanged')
              order by id limit 1"""
# Regions and agencies can be renamed by a later file: the same file is a no-op only when
# it is also the last file of its kind that was imported.
SEEN_LAST = """select id, rows from import_run
               where kind = $1 and outcome = 'imported' and sha256 = $2
                 and id = (select max(id) from import_run where kind = $1 and outcome = 'imported')"""

RECORD_RUN = """insert into import_run (started_at, caller, scope, via, kind, file_name, sha256, bytes, rows, inserted,
                                        unchanged, bad_rows, outcome, message, warnings, same_as)
                values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15::jsonb, $16)
                returning id"""
SET_VERSION = "update import_run set version = id where id = $1"

# The history inside a scope's subtree, newest first ($1 scope, $2 kind or null, $3 limit).
HISTORY = """select i.* from import_run i
             join region_closure rc on rc.ancestor = $1 and rc.descendant = i.scope
             where ($2::text is null or i.kind = $2)
             order by i.id desc limit $3"""

# Warnings found after the commit (records held elsewhere in the federation), added to the run's history.
ADD_WARNINGS = "update import_run set warnings = warnings || $2::jsonb where id = $1"

# Records of a person for months after they moved out by an insurance transfer (tiers/transfers.py):
# those belong to the destination. A later transfer back in makes them acceptable again.
TRANSFERRED_OUT = """
select s.line, 'month', 'person ' || left(s.id_number, 6) || '********' || right(s.id_number, 4)
       || ' moved to region ' || t.to_region || ' from ' || to_char(t.effective_from, 'YYYY-MM')
       || ' (transfer ' || t.id || '): import records of that month and later at the destination',
       count(*) over ()
from import_staging s join insurance_transfer t
  on t.id_number = s.id_number and t.direction = 'out' and s.month >= t.effective_from
where s.problem is null
  and not exists (select 1 from insurance_transfer b where b.id_number = s.id_number and b.direction = 'in'
                  and b.effective_from > t.effective_from and b.effective_from <= s.month)
order by s.line limit 1000"""

# Persons a change across nodes in progress holds (an insurance transfer, tiers/transfers.py,
# reserves its person from its checks to its apply): their records wait until it has finished.
# A transfer's checks take LOCK shared (tiers/transferstore.CHECK_SIDE), so a reservation is
# either committed before an import takes LOCK (and read here) or checked after it commits.
PERSONS_HELD = """select r.id_number, c.id, c.kind from change_reservation r join change c on c.id = r.change_id
                  where r.id_number is not null"""

# ---------------------------------------------------------------- jobs (imports over HTTP, followed while they run)

JOB_NEW = """insert into import_job (id, kind, file_name, caller, scope, state, progress)
             values ($1, $2, $3, $4, $5, 'running', $6::jsonb)"""
# The finished jobs kept: the latest $1 (the history, import_run, keeps every import for good).
JOB_PRUNE = """delete from import_job where state <> 'running'
               and id not in (select id from import_job order by started_at desc limit $1)"""
JOB_PROGRESS = "update import_job set progress = $2::jsonb, updated_at = now() where id = $1"
JOB_END = """update import_job set state = $2, progress = $3::jsonb, error = $4, report = $5::jsonb,
             updated_at = now() where id = $1"""
JOB = """select id, kind, file_name, scope, state, progress, error, report,
                extract(epoch from now() - updated_at)::float8 as idle_s
         from import_job where id = $1"""

