"""Checking one value or one row of an import file, per kind: what a bad value is
and what the report says about it.

The directory and registration kinds check every row here; contributions and
benefits are checked in SQL (``records.py``), which flags the bad rows and their
column, and then these same functions word the reason for the reported rows, so
a report reads the same whichever path found the problem.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tierfed import codes
from tierfed.tiers.figures import BOOKED, DERIVED_CATEGORIES, SCHEME_ID
from tierfed.tiers.node import Node
from tierfed.tiers.tree import Tree
from tierfed.tiers.vocabulary import AGENCY_KIND_ID, DEPARTMENT_ID, TIER_ID

TIERS = {name.lower(): i for name, i in TIER_ID.items()}  # as the regions file writes them
DEPARTMENTS = DEPARTMENT_ID
AGENCY_KINDS = AGENCY_KIND_ID
BOOLS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False, "": False}


class Bad(Exception):
    """One bad value: the column and the reason, as the report prints them."""

    def __init__(self, column: str, reason: str) -> None:
        self.column, self.reason = column, reason


def amount_problem(value: str) -> str:
    return (f"amount {value!r} is malformed: expected a non-negative number of yuan "
            "with at most 2 decimals, e.g. 1234.50")


def fen(value: str, column: str) -> int:
    """A non-negative amount with at most two decimals, as whole fen (exact, no float)."""
    v = value.strip()
    if not codes.AMOUNT_RE.match(v):
        raise Bad(column, amount_problem(value))
    whole, _, frac = v.partition(".")
    return int(whole) * 100 + int((frac + "00")[:2])


_AMOUNT = codes.AMOUNT_RE.match


def checked(value: str, column: str) -> str:
    """The amount's text when it is a valid non-negative amount with at most two decimals."""
    if _AMOUNT(value) is None:
        v = value.strip()
        if _AMOUNT(v) is None:
            raise Bad(column, amount_problem(value))
        return v
    return value


def yuan(f: int) -> str:
    return f"{f // 100}.{f % 100:02d}"


def name_field(value: str, column: str = "name") -> str:
    v = value.strip()
    if not v or len(v) > 200:
        raise Bad(column, "must be 1 to 200 characters")
    return v


def account_above(account: str, individual: str) -> Bad:
    return Bad("individual_account_amount",
               f"individual account part {account} is above the individual contribution {individual}")


@dataclass(frozen=True)
class Scope:
    """Where records of one import may lie: the node's subtree, not held by a child node,
    and, for a file submitted over HTTP, inside the caller's token scope."""

    node: Node
    caller_scope: str | None = None

    @property
    def tree(self) -> Tree:
        return self.node.tree

    def record_region_problem(self, v: str, column: str = "region_code") -> Bad | None:
        try:
            codes.region_code(v)
        except ValueError as e:
            return Bad(column, str(e))
        node = self.node
        if v not in node.tree:
            return Bad(column, f"region {v} names no region in the division tree")
        if v == "000000":
            return Bad(column, "records are handled by a region below the nation")
        if not node.in_subtree(v):
            return Bad(column, f"region {v} is outside this node's subtree {node.region}")
        owner = node.child_for(v)
        if owner is not None:
            return Bad(column, f"region {v} is held by child node '{owner.name}': import it there "
                               f"({owner.url.rsplit('/', 1)[0]}/imports)")
        if self.caller_scope is not None and not node.tree.within(v, self.caller_scope):
            return Bad(column, f"region {v} is outside your token's scope {self.caller_scope}")
        return None

    def record_regions(self) -> list[str]:
        """Every region a record of this import may name (the set-based checks join on it)."""
        top = self.caller_scope if self.caller_scope and self.tree.within(self.caller_scope, self.node.region) \
            else self.node.region
        return [c for c in self.tree.subtree(top) if self.record_region_problem(c) is None]


@dataclass
class Checker:
    """Row checks that need the tree and the topology; results cached per value."""

    scope: Scope
    cache: dict[tuple[str, str], Any] = field(default_factory=dict)

    @property
    def node(self) -> Node:
        return self.scope.node

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
            bad = self.scope.record_region_problem(v, column)
            if bad is not None:
                raise bad
            return v
        return self.cached("record_region", value, check, column)  # type: ignore[no-any-return]

    def id_number(self, value: str) -> str:
        return self.cached("id", value, codes.id_number, "id_number")  # type: ignore[no-any-return]

    def credit(self, value: str, column: str) -> str:
        return self.cached("credit", value, codes.credit_code, column)  # type: ignore[no-any-return]

    def month(self, value: str, column: str = "month") -> str:
        return self.cached("month", value, lambda v: codes.month(v).isoformat(), column)  # type: ignore[no-any-return]

    def scheme(self, value: str) -> int:
        def check(v: str) -> int:
            if v not in SCHEME_ID:
                raise Bad("scheme", f"unknown scheme {v!r}: expected one of {', '.join(SCHEME_ID)}")
            return SCHEME_ID[v]
        return self.cached("scheme", value, check, "scheme")  # type: ignore[no-any-return]


# ---------------------------------------------------------------- one row of each kind, in column order


def contribution(ck: Checker, r: list[str]) -> tuple:
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
        raise account_above(a, i)
    return (idn, scheme, month, region, emp_code, base, e, i, a)


def benefit(ck: Checker, r: list[str]) -> tuple:
    return (ck.id_number(r[0]), ck.scheme(r[1]), ck.month(r[2]), ck.record_region(r[3]), checked(r[4], "amount"))


def person(ck: Checker, r: list[str]) -> tuple:
    return (ck.id_number(r[0]), name_field(r[1]), ck.record_region(r[2]))


def employer(ck: Checker, r: list[str]) -> tuple:
    code = ck.credit(r[0], "credit_code")
    name = name_field(r[1])
    region = ck.record_region(r[2])
    cls = r[3].strip()
    if not (cls.isascii() and cls.isdigit()) or not 1 <= int(cls) <= 8:
        raise Bad("industry_risk_class", f"industry risk class {r[3]!r} must be a whole number from 1 to 8")
    return (code, name, region, int(cls))


def _code(column: str, value: str, parse: Callable[[str], str]) -> str:
    try:
        return parse(value)
    except ValueError as e:
        raise Bad(column, str(e)) from None


def region(ck: Checker, r: list[str]) -> tuple:
    code = _code("code", r[0].strip(), codes.region_code)
    name = name_field(r[1])
    tier = r[2].strip().lower()
    if tier not in TIERS:
        raise Bad("tier", f"unknown tier {r[2]!r}: expected central, province, city or county")
    parent = r[3].strip()
    if tier == "central":
        if code != "000000" or parent:
            raise Bad("tier", "only 000000, with no parent, is central")
    else:
        _code("parent_code", parent, codes.region_code)
    return (code, name, TIERS[tier], parent)


def agency(ck: Checker, r: list[str]) -> tuple:
    code = _code("code", r[0].strip(), codes.agency_code)
    name = name_field(r[1])
    dept = r[2].strip()
    if dept not in DEPARTMENTS:
        raise Bad("department", f"unknown department {dept!r}: expected {' or '.join(DEPARTMENTS)}")
    kind = r[3].strip()
    if kind not in AGENCY_KINDS:
        raise Bad("kind", f"unknown kind {kind!r}: expected {', '.join(AGENCY_KINDS)}")
    region = r[4].strip()
    if region not in ck.node.tree:
        raise Bad("region_code", f"region {region!r} names no region in the division tree")
    parent = _code("parent_code", r[5].strip(), codes.agency_code) if r[5].strip() else ""
    vm = r[6].strip().lower()
    if vm not in BOOLS:
        raise Bad("vertically_managed", f"{r[6]!r} is not a boolean: expected true or false")
    return (code, name, DEPARTMENTS[dept], AGENCY_KINDS[kind], region, parent, BOOLS[vm])


def pool(ck: Checker, r: list[str]) -> tuple:
    scheme = ck.scheme(r[0])
    region = r[1].strip()
    node = ck.node
    if region not in node.tree or not node.in_subtree(region):
        raise Bad("region_code", f"region {region!r} is not a region of this node's subtree {node.region}")
    if node.tree.by_code[region].tier == 0:
        raise Bad("region_code", "pools are at county, city or province level")
    owner = node.child_for(region)
    if owner is not None:  # a pool lives on the node of its region, even when children hold parts of its subtree
        raise Bad("region_code", f"region {region} is held by child node '{owner.name}': import the pool there")
    if ck.scope.caller_scope is not None and not node.tree.within(region, ck.scope.caller_scope):
        raise Bad("region_code", f"region {region} is outside your token's scope {ck.scope.caller_scope}")
    opened = ck.month(r[2], "opened_from")
    return (scheme, region, opened, yuan(fen(r[3], "opening_balance")))


def fund_flow(ck: Checker, r: list[str]) -> tuple:
    scheme = ck.scheme(r[0])
    region = ck.record_region(r[1])
    month = ck.month(r[2])
    category = r[3].strip()
    if category in DERIVED_CATEGORIES:
        raise Bad("category", f"{category} is derived from the records and insurance transfers, never imported: "
                              f"expected one of {', '.join(BOOKED)}")
    if category not in BOOKED:
        raise Bad("category", f"unknown category {r[3]!r}: expected one of {', '.join(BOOKED)}")
    return (scheme, region, month, category, checked(r[4], "amount"))
