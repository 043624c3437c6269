"""``tierfed import KIND FILE``: CSV files into the node's database, whole or not at all.

Every row is checked in Python (format, checksums, amounts); then the rows go
by COPY into a temporary staging table and the checks that need the database
(unknown persons or employers, records conflicting with stored ones, keys
repeated in the file, overlapping pools) run as SQL over it. Any bad row
rolls back the whole file and every bad row is reported (line, column, reason).
Identical records already stored are skipped, so importing a file again changes
nothing. Summaries are updated in the same transaction as the records.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from . import codes
from .errors import UserError
from .tiers.figures import SCHEME_ID
from .tiers.node import Node
from .tiers.store import rebuild_tree
from .tiers.transferstore import RESUMMARISE_TRANSFERS, TRANSFERRED_OUT

CHUNK = 50_000
MAX_REPORTED = 1000
TIERS = {"central": 0, "province": 1, "city": 2, "county": 3}
DEPARTMENTS = {"HUMAN_RESOURCES_SOCIAL_SECURITY": 1, "HEALTHCARE_SECURITY": 2}
KINDS = {"AGENCY": 1, "BRANCH": 2, "SERVICE_OUTLET": 3}
BOOLS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False, "": False}


@dataclass(frozen=True)
class RowError:
    line: int
    column: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.reason}"


class ImportFailed(UserError):
    def __init__(self, path: str, errors: list[RowError], total: int) -> None:
        self.errors = errors
        self.total = total
        more = f" (and {total - len(errors)} more)" if total > len(errors) else ""
        super().__init__(f"{path}: {total} bad row(s){more}; nothing was imported")


@dataclass
class Report:
    kind: str
    rows: int
    inserted: int
    unchanged: int


class Bad(Exception):
    def __init__(self, column: str, reason: str) -> None:
        self.column, self.reason = column, reason


@dataclass
class Checker:
    """Row checks that need the tree and the topology; results cached per value."""

    node: Node
    cache: dict[tuple[str, str], Any] = field(default_factory=dict)

    def cached(self, kind: str, value: str, fn: Callable[[str], Any], column: str) -> Any:
        key = (kind, value)
        hit = self.cache.get(key)
        if hit is not None:
            if isinstance(hit, Bad):
                raise hit
            return hit
        try:
            out = fn(value)
        except ValueError as e:
            out = Bad(column, str(e))
        except Bad as e:
            out = e
        if len(self.cache) < 2_000_000:
            self.cache[key] = out
        if isinstance(out, Bad):
            raise out
        return out

    def record_region(self, value: str, column: str = "region_code") -> str:
        def check(v: str) -> str:
            codes.region_code(v)
            if v not in self.node.tree:
                raise Bad(column, f"region {v} names no region in the division tree")
            if v == "000000":
                raise Bad(column, "records are handled by a region below the nation")
            if not self.node.in_subtree(v):
                raise Bad(column, f"region {v} is outside this node's subtree {self.node.region}")
            owner = self.node.child_for(v)
            if owner is not None:
                raise Bad(column, f"region {v} is held by child node '{owner.name}': import it there")
            return v
        return self.cached("record_region", value, check, column)

    def id_number(self, value: str) -> str:
        return self.cached("id", value, codes.id_number, "id_number")

    def credit(self, value: str, column: str) -> str:
        return self.cached("credit", value, codes.credit_code, column)

    def month(self, value: str, column: str = "month") -> str:
        return self.cached("month", value, lambda v: codes.month(v).isoformat(), column)

    def scheme(self, value: str) -> int:
        def check(v: str) -> int:
            if v not in SCHEME_ID:
                raise Bad("scheme", f"unknown scheme {v!r}: expected one of {', '.join(SCHEME_ID)}")
            return SCHEME_ID[v]
        return self.cached("scheme", value, check, "scheme")


def fen(value: str, column: str) -> int:
    """A non-negative amount with at most two decimals, as whole fen (exact, no float)."""
    v = value.strip()
    if not codes.AMOUNT_RE.match(v):
        raise Bad(column, f"amount {value!r} is malformed: expected a non-negative number of yuan "
                          "with at most 2 decimals, e.g. 1234.50")
    whole, _, frac = v.partition(".")
    return int(whole) * 100 + int((frac + "00")[:2])


_AMOUNT = codes.AMOUNT_RE.match


def checked(value: str, column: str) -> str:
    """The amount's text when it is a valid non-negative amount with at most two decimals."""
    if _AMOUNT(value) is None:
        v = value.strip()
        if _AMOUNT(v) is None:
            raise Bad(column, f"amount {value!r} is malformed: expected a non-negative number of yuan "
                              "with at most 2 decimals, e.g. 1234.50")
        return v
    return value


def yuan(f: int) -> str:
    return f"{f // 100}.{f % 100:02d}"


def name_field(value: str, column: str = "name") -> str:
    v = value.strip()
    if not v or len(v) > 200:
        raise Bad(column, "must be 1 to 200 characters")
    return v


# ---------------------------------------------------------------- kinds


@dataclass(frozen=True)
class Kind:
    name: str
    columns: tuple[str, ...]
    staging: str  # column definitions after "line int"
    parse: Callable[[Checker, list[str]], tuple]
    # Every value is a checked code, number or enum: rows can be joined without CSV quoting.
    plain: bool = False


def _contribution(ck: Checker, r: list[str]) -> tuple:
    idn = ck.id_number(r[0])
    scheme = ck.scheme(r[1])
    month = ck.month(r[2])
    region = ck.record_region(r[3])
    emp = r[4].strip()
    emp_code = ck.credit(emp, "employer_credit_code") if emp else ""
    base = checked(r[5], "base")
    e = checked(r[6], "employer_amount")
    i = checked(r[7], "individual_amount")
    a = checked(r[8], "individual_account_amount")
    if a != i and a != "0.00" and fen(a, "individual_account_amount") > fen(i, "individual_amount"):
        raise Bad("individual_account_amount",
                  f"individual account part {a} is above the individual contribution {i}")
    return (idn, scheme, month, region, emp_code, base, e, i, a)


def _benefit(ck: Checker, r: list[str]) -> tuple:
    return (ck.id_number(r[0]), ck.scheme(r[1]), ck.month(r[2]), ck.record_region(r[3]), checked(r[4], "amount"))


def _person(ck: Checker, r: list[str]) -> tuple:
    return (ck.id_number(r[0]), name_field(r[1]), ck.record_region(r[2]))


def _employer(ck: Checker, r: list[str]) -> tuple:
    cls = r[3].strip()
    if not cls.isdigit() or not 1 <= int(cls) <= 8:
        raise Bad("industry_risk_class", f"industry risk class {r[3]!r} must be a whole number from 1 to 8")
    return (ck.credit(r[0], "credit_code"), name_field(r[1]), ck.record_region(r[2]), int(cls))


def _region(ck: Checker, r: list[str]) -> tuple:
    try:
        code = codes.region_code(r[0].strip())
    except ValueError as e:
        raise Bad("code", str(e)) from None
    tier = r[2].strip().lower()
    if tier not in TIERS:
        raise Bad("tier", f"unknown tier {r[2]!r}: expected central, province, city or county")
    parent = r[3].strip()
    if tier == "central":
        if code != "000000" or parent:
            raise Bad("tier", "only 000000, with no parent, is central")
    else:
        try:
            codes.region_code(parent)
        except ValueError as e:
            raise Bad("parent_code", str(e)) from None
    return (code, name_field(r[1]), TIERS[tier], parent)


def _agency(ck: Checker, r: list[str]) -> tuple:
    try:
        code = codes.agency_code(r[0].strip())
        parent = codes.agency_code(r[5].strip()) if r[5].strip() else ""
    except ValueError as e:
        raise Bad("code" if "agency code" in str(e) and r[0].strip() not in str(e) else "parent_code", str(e)) from None
    dept = r[2].strip()
    if dept not in DEPARTMENTS:
        raise Bad("department", f"unknown department {dept!r}: expected {' or '.join(DEPARTMENTS)}")
    kind = r[3].strip()
    if kind not in KINDS:
        raise Bad("kind", f"unknown kind {kind!r}: expected {', '.join(KINDS)}")
    region = r[4].strip()
    if region not in ck.node.tree:
        raise Bad("region_code", f"region {region!r} names no region in the division tree")
    vm = r[6].strip().lower()
    if vm not in BOOLS:
        raise Bad("vertically_managed", f"{r[6]!r} is not a boolean: expected true or false")
    return (code, name_field(r[1]), DEPARTMENTS[dept], KINDS[kind], region, parent, BOOLS[vm])


def _pool(ck: Checker, r: list[str]) -> tuple:
    scheme = ck.scheme(r[0])
    region = r[1].strip()
    if region not in ck.node.tree or not ck.node.in_subtree(region):
        raise Bad("region_code", f"region {region!r} is not a region of this node's subtree {ck.node.region}")
    if ck.node.tree.by_code[region].tier == 0:
        raise Bad("region_code", "pools are at county, city or province level")
    owner = ck.node.child_for(region)
    if owner is not None:  # a pool lives on the node of its region, even when children hold parts of its subtree
        raise Bad("region_code", f"region {region} is held by child node '{owner.name}': import the pool there")
    opened = ck.month(r[2], "opened_from")
    return (scheme, region, opened, yuan(fen(r[3], "opening_balance")))


KIND_SPECS = {
    "regions": Kind("regions", ("code", "name", "tier", "parent_code"),
                    "code text, name text, tier smallint, parent_code text", _region),
    "agencies": Kind("agencies", ("code", "name", "department", "kind", "region_code", "parent_code",
                                  "vertically_managed"),
                     "code text, name text, department smallint, kind smallint, region_code text, "
                     "parent_code text, vertically_managed boolean", _agency),
    "pools": Kind("pools", ("scheme", "region_code", "opened_from", "opening_balance"),
                  "scheme smallint, region_code text, opened_from date, opening_balance numeric", _pool),
    "employers": Kind("employers", ("credit_code", "name", "region_code", "industry_risk_class"),
                      "credit_code text, name text, region_code text, industry_risk_class smallint", _employer),
    "persons": Kind("persons", ("id_number", "name", "region_code"),
                    "id_number text, name text, region_code text", _person),
    "contributions": Kind("contributions", ("id_number", "scheme", "month", "region_code", "employer_credit_code",
                                            "base", "employer_amount", "individual_amount",
                                            "individual_account_amount"),
                          "id_number text, scheme smallint, month date, region_code text, employer_credit_code text, "
                          "base numeric, employer_amount numeric, individual_amount numeric, "
                          "individual_account_amount numeric", _contribution, plain=True),
    "benefits": Kind("benefits", ("id_number", "scheme", "month", "region_code", "amount"),
                     "id_number text, scheme smallint, month date, region_code text, amount numeric", _benefit,
                     plain=True),
}

# ---------------------------------------------------------------- database checks and apply, per kind
# Each check returns rows of (line, column, reason).

REPEATED_RECORD_KEY = """
select s.line, 'id_number', 'repeats the (id_number, scheme, month) of line ' || d.first
from staging s join (select id_number, scheme, month, min(line) as first from staging
                     group by 1, 2, 3 having count(*) > 1) d using (id_number, scheme, month)
where s.line <> d.first order by s.line limit 1000"""

UNREGISTERED_PERSON = """
select s.line, 'id_number', 'person ' || left(s.id_number, 6) || '********' || right(s.id_number, 4)
       || ' is not registered on this node: import persons first'
from staging s where not exists (select 1 from person p where p.id_number = s.id_number)
order by s.line limit 1000"""

CHECKS: dict[str, list[str]] = {
    "contributions": [
        REPEATED_RECORD_KEY,
        UNREGISTERED_PERSON,
        TRANSFERRED_OUT,
        """select s.line, 'employer_credit_code', 'employer ' || s.employer_credit_code
                  || ' is not registered on this node: import employers first'
           from staging s where s.employer_credit_code <> ''
             and not exists (select 1 from employer e where e.credit_code = s.employer_credit_code)
           order by s.line limit 1000""",
        """select s.line, 'id_number', 'a different record for this person, scheme and month is already stored'
           from staging s join contribution c
             on c.id_number = s.id_number and c.scheme = s.scheme and c.month = s.month
           where (c.region_code, coalesce(c.employer_credit_code, ''), c.base, c.employer_amount,
                  c.individual_amount, c.individual_account_amount)
                 is distinct from (s.region_code, coalesce(s.employer_credit_code, ''), s.base, s.employer_amount,
                  s.individual_amount, s.individual_account_amount)
           order by s.line limit 1000""",
    ],
    "benefits": [
        REPEATED_RECORD_KEY,
        UNREGISTERED_PERSON,
        TRANSFERRED_OUT,
        """select s.line, 'id_number', 'a different benefit record for this person, scheme and month is already stored'
           from staging s join benefit b
             on b.id_number = s.id_number and b.scheme = s.scheme and b.month = s.month
           where (b.region_code, b.amount) is distinct from (s.region_code, s.amount)
           order by s.line limit 1000""",
    ],
    "persons": [
        """select s.line, 'id_number', 'repeats the id_number of line ' || d.first
           from staging s join (select id_number, min(line) as first from staging group by 1 having count(*) > 1) d
             using (id_number) where s.line <> d.first order by s.line limit 1000""",
        """select s.line, 'name', 'a different registration of this person is already stored'
           from staging s join person p on p.id_number = s.id_number
           where (p.name, p.region_code) is distinct from (s.name, s.region_code) order by s.line limit 1000""",
    ],
    "employers": [
        """select s.line, 'credit_code', 'repeats the credit_code of line ' || d.first
           from staging s join (select credit_code, min(line) as first from staging group by 1 having count(*) > 1) d
             using (credit_code) where s.line <> d.first order by s.line limit 1000""",
        """select s.line, 'name', 'a different registration of this employer is already stored'
           from staging s join employer e on e.credit_code = s.credit_code
           where (e.name, e.region_code, e.industry_risk_class)
                 is distinct from (s.name, s.region_code, s.industry_risk_class) order by s.line limit 1000""",
    ],
    "regions": [
        """select s.line, 'code', 'repeats the code of line ' || d.first
           from staging s join (select code, min(line) as first from staging group by 1 having count(*) > 1) d
             using (code) where s.line <> d.first order by s.line limit 1000""",
        """select s.line, 'parent_code', 'parent ' || s.parent_code || ' is neither in the file nor stored'
           from staging s where s.parent_code <> ''
             and not exists (select 1 from staging p where p.code = s.parent_code)
             and not exists (select 1 from region r where r.code = s.parent_code) order by s.line limit 1000""",
        """select s.line, 'tier', 'a ' || (array['central','province','city','county'])[s.tier + 1]
                  || ' cannot sit under a ' || (array['central','province','city','county'])[coalesce(p.tier, r.tier) + 1]
           from staging s left join staging p on p.code = s.parent_code left join region r on r.code = s.parent_code
           where s.parent_code <> '' and not (
                 (s.tier = 1 and coalesce(p.tier, r.tier) = 0) or (s.tier = 2 and coalesce(p.tier, r.tier) = 1)
              or (s.tier = 3 and coalesce(p.tier, r.tier) in (1, 2)))
           order by s.line limit 1000""",
        """select s.line, 'tier', 'region ' || s.code || ' is stored as a '
                  || (array['central','province','city','county'])[r.tier + 1] || ': a tier cannot change'
           from staging s join region r on r.code = s.code where r.tier <> s.tier order by s.line limit 1000""",
    ],
    "agencies": [
        """select s.line, 'code', 'repeats the code of line ' || d.first
           from staging s join (select code, min(line) as first from staging group by 1 having count(*) > 1) d
             using (code) where s.line <> d.first order by s.line limit 1000""",
        """select s.line, 'parent_code', 'parent agency ' || s.parent_code || ' is neither in the file nor stored'
           from staging s where s.parent_code <> ''
             and not exists (select 1 from staging p where p.code = s.parent_code)
             and not exists (select 1 from agency a where a.code = s.parent_code) order by s.line limit 1000""",
    ],
    "pools": [
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
    ],
}

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

# Records: identical rows already stored are dropped from the staging (different
# ones were refused by the checks), the rest inserted, and the summaries updated
# from the staging aggregated first by (region, month, scheme), then spread to
# every ancestor up to the node's root.
RECORD_APPLY = {
    "contributions": [
        "select tierfed_ensure_month_partitions(min(month), max(month)) from staging",
        """delete from staging s using contribution c
           where c.id_number = s.id_number and c.scheme = s.scheme and c.month = s.month""",
        """insert into contribution (id_number, scheme, month, region_code, employer_credit_code, base,
                                   employer_amount, individual_amount, individual_account_amount)
           select id_number, scheme, month, region_code, nullif(employer_credit_code, ''), base,
                  employer_amount, individual_amount, individual_account_amount
           from staging""",
        """insert into summary (region_code, month, scheme, contributions, employer, individual,
                                individual_account, base)
           select rc.ancestor, a.month, a.scheme, sum(a.n), sum(a.e), sum(a.i), sum(a.ia), sum(a.b)
           from (select region_code, month, scheme, count(*) as n, sum(employer_amount) as e,
                        sum(individual_amount) as i, sum(individual_account_amount) as ia, sum(base) as b
                 from staging group by 1, 2, 3) a
           join region_closure rc on rc.descendant = a.region_code
           join region_closure top on top.ancestor = $1 and top.descendant = rc.ancestor
           group by 1, 2, 3""",
    ],
    "benefits": [
        "select tierfed_ensure_month_partitions(min(month), max(month)) from staging",
        """delete from staging s using benefit b
           where b.id_number = s.id_number and b.scheme = s.scheme and b.month = s.month""",
        "insert into benefit (id_number, scheme, month, region_code, amount) "
        "select id_number, scheme, month, region_code, amount from staging",
        """insert into summary (region_code, month, scheme, benefits, benefits_paid)
           select rc.ancestor, a.month, a.scheme, sum(a.n), sum(a.p)
           from (select region_code, month, scheme, count(*) as n, sum(amount) as p
                 from staging group by 1, 2, 3) a
           join region_closure rc on rc.descendant = a.region_code
           join region_closure top on top.ancestor = $1 and top.descendant = rc.ancestor
           group by 1, 2, 3""",
    ],
}

APPLY: dict[str, list[str]] = {
    "persons": ["insert into person select id_number, name, region_code from staging on conflict do nothing"],
    "employers": ["insert into employer select credit_code, name, region_code, industry_risk_class from staging "
                  "on conflict do nothing"],
    "agencies": [
        """insert into agency (code, name, department, kind, region_code, parent_code, vertically_managed)
           select code, name, department, kind, region_code, nullif(parent_code, ''), vertically_managed from staging
           on conflict (code) do update set name = excluded.name, department = excluded.department,
               kind = excluded.kind, region_code = excluded.region_code, parent_code = excluded.parent_code,
               vertically_managed = excluded.vertically_managed
           where (agency.name, agency.department, agency.kind, agency.region_code, agency.parent_code,
                  agency.vertically_managed) is distinct from
                 (excluded.name, excluded.department, excluded.kind, excluded.region_code, excluded.parent_code,
                  excluded.vertically_managed)""",
    ],
    "pools": [
        """insert into pool (id, scheme, region_code, opened_from, opening_balance)
           select s.region_code || '-' || (array['PENSION','MEDICAL','WORK_INJURY','UNEMPLOYMENT','MATERNITY'])[s.scheme]
                  || '-' || to_char(s.opened_from, 'YYYYMM'), s.scheme, s.region_code, s.opened_from, s.opening_balance
           from staging s on conflict (id) do nothing""",
    ],
}

REGION_APPLY = [
    """insert into region (code, name, tier, parent_code)
       select code, name, tier, nullif(parent_code, '') from staging order by tier
       on conflict (code) do update set name = excluded.name, parent_code = excluded.parent_code
       where (region.name, region.parent_code) is distinct from (excluded.name, excluded.parent_code)""",
]
RESUMMARISE = [
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
    RESUMMARISE_TRANSFERS,  # after the records: pooled funds moved by transfers
]


def _rows(path: Path, kind: Kind) -> tuple[Iterator[tuple[int, list[str]]], list[int], Any]:
    try:
        fh = path.open(encoding="utf-8", newline="")
        reader = csv.reader(fh)
        header = next(reader, None)
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    except OSError as e:
        raise UserError(f"{path}: {e.strerror}") from None
    if header is None:
        raise UserError(f"{path}: empty file; expected a header row with {','.join(kind.columns)}")
    header = [h.strip().lstrip("\ufeff") for h in header]
    missing = [c for c in kind.columns if c not in header]
    extra = [h for h in header if h not in kind.columns]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if extra:
            parts.append(f"unknown column(s) {', '.join(extra)}")
        raise UserError(f"{path}: header has {'; '.join(parts)}; {kind.name} needs {','.join(kind.columns)}")
    index = [header.index(c) for c in kind.columns]

    def gen() -> Iterator[tuple[int, list[str]]]:
        try:
            for row in reader:
                yield reader.line_num, row
        except UnicodeDecodeError:
            raise UserError(f"{path}: not UTF-8 text (near line {reader.line_num + 1})") from None
        except csv.Error as e:
            raise UserError(f"{path}: line {reader.line_num}: {e}") from None

    return gen(), index, fh


async def import_file(pool: asyncpg.Pool, node: Node, kind_name: str, path: str | Path,
                      progress: bool | None = None) -> Report:
    """Import one file, all or nothing; raises ImportFailed with every bad row."""
    if kind_name not in KIND_SPECS:
        raise UserError(f"unknown import kind {kind_name!r}: expected one of {', '.join(KIND_SPECS)}")
    kind = KIND_SPECS[kind_name]
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{path}: no such file")
    rows, index, fh = _rows(p, kind)
    ck = Checker(node)
    errors: list[RowError] = []
    nbad = 0
    total = 0
    plain = kind.plain
    bar = _progress(p, progress)
    async with pool.acquire() as con:
        async with con.transaction():
            # One import at a time on a node: the checks and the insert see the same stored rows.
            await con.execute("select pg_advisory_xact_lock(7366042)")
            await con.execute("set local work_mem = '256MB'")
            await con.execute(f"create temp table staging (line int, {kind.staging}) on commit drop")
            counts = {"total": 0, "bad": 0}
            need = max(index) + 1

            async def staged() -> Any:
                """Checked rows as CSV bytes, a chunk at a time: the server ingests one chunk
                while the next is being checked."""
                buf = io.StringIO()
                writer = csv.writer(buf, lineterminator="\n")
                pending = 0
                parse = kind.parse
                for line, raw in rows:
                    counts["total"] += 1
                    if len(raw) < need:
                        counts["bad"] += 1
                        if len(errors) < MAX_REPORTED:
                            errors.append(RowError(line, "*", f"has {len(raw)} fields; the header has {need}"))
                        continue
                    try:
                        out = parse(ck, [raw[i] for i in index])
                    except Bad as b:
                        counts["bad"] += 1
                        if len(errors) < MAX_REPORTED:
                            errors.append(RowError(line, b.column, b.reason))
                        continue
                    if plain:
                        buf.write(f"{line},{','.join(map(str, out))}\n")
                    else:
                        writer.writerow((line, *out))
                    pending += 1
                    if pending >= CHUNK:
                        yield buf.getvalue().encode("utf-8")
                        buf.seek(0)
                        buf.truncate()
                        pending = 0
                        if bar:
                            bar.update(fh.tell() - bar.n)
                if pending:
                    yield buf.getvalue().encode("utf-8")

            try:
                await con.copy_to_table("staging", source=staged(), format="csv")
            finally:
                fh.close()
                if bar:
                    bar.close()
            total, nbad = counts["total"], counts["bad"]
            await con.execute("analyze staging")
            # The checks that need the database run over the rows that passed the
            # format checks, so one run reports every bad row of both kinds.
            for sql in CHECKS.get(kind_name, []):
                for r in await con.fetch(sql):
                    errors.append(RowError(r[0], r[1], r[2]))
                    nbad += 1
            if nbad:
                errors.sort(key=lambda e: e.line)
                raise ImportFailed(str(path), errors[:MAX_REPORTED], nbad)
            inserted = await _apply(con, node, kind_name)
    return Report(kind_name, total, inserted, total - inserted)


async def _apply(con: asyncpg.Connection, node: Node, kind_name: str) -> int:
    if kind_name in RECORD_APPLY:
        partitions, drop_stored, insert, summarise = RECORD_APPLY[kind_name]
        await con.execute(partitions)
        await con.execute(drop_stored)
        status = await con.execute(insert)
        await con.execute(summarise + SUMMARY_UPSERT_SET, node.region)
        return int(status.rsplit(" ", 1)[1])
    before = await _count(con, kind_name)
    if kind_name == "regions":
        changed_parent = await con.fetchval(
            "select count(*) from staging s join region r on r.code = s.code "
            "where r.parent_code is distinct from nullif(s.parent_code, '')")
        for sql in REGION_APPLY:
            await con.execute(sql)
        await rebuild_tree(con)
        if changed_parent:
            for sql in RESUMMARISE:
                await (con.execute(sql, node.region) if "$1" in sql else con.execute(sql))
        # missing agencies for new regions are not invented: import agencies for them
        await con.execute("notify tierfed_tree")
    else:
        for sql in APPLY[kind_name]:
            if "$1" in sql:
                await con.execute(sql, node.region)
            else:
                await con.execute(sql)
    return await _count(con, kind_name) - before


COUNT_SQL = {
    "persons": "select count(*) from person", "employers": "select count(*) from employer",
    "regions": "select count(*) from region", "agencies": "select count(*) from agency",
    "pools": "select count(*) from pool",
}


async def _count(con: asyncpg.Connection, kind: str) -> int:
    return int(await con.fetchval(COUNT_SQL[kind]))


def _progress(path: Path, enabled: bool | None) -> Any:
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=f"import {path.name}", file=sys.stderr)
