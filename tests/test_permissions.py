"""One door for permissions: every field of the served schema has a rule in
resolvers/permissions.py (its own, or its type's), root fields each their own; and no
resolver checks roles or scope by hand outside the declared internal calls."""

from __future__ import annotations

import re
from pathlib import Path

from graphql import GraphQLObjectType
from tierfed.resolvers import permissions as perm

from tierfed.execution import GRAPHQL_SCHEMA

ROOT = Path(__file__).resolve().parents[1]
ROOTS = ("Query", "Mutation", "Subscription")


def _object_types() -> dict[str, GraphQLObjectType]:
    return {n: t for n, t in GRAPHQL_SCHEMA.type_map.items()
            if isinstance(t, GraphQLObjectType) and not n.startswith("__")}


def test_every_field_has_a_rule_and_every_root_field_its_own() -> None:
    uncovered = [f"{n}.{f}" for n, t in _object_types().items() for f in t.fields if perm.rule_for(n, f) is None]
    assert not uncovered, f"fields without a permission rule (add them to resolvers/permissions.py): {uncovered}"
    roots = [f"{n}.{f}" for n, t in _object_types().items() if n in ROOTS for f in t.fields]
    assert roots and all(c in perm.FIELDS for c in roots)


def test_every_rule_names_a_served_field_or_type() -> None:
    types = _object_types()
    stale = [c for c in perm.FIELDS if c.split(".")[0] not in types or c.split(".")[1] not in types[c.split(".")[0]].fields]
    assert not stale, stale
    assert not [t for t in perm.TYPES if t not in types]


def test_a_rule_either_checks_or_says_how_the_field_filters() -> None:
    """An open rule is for public directory data only; every other root field checks or filters."""
    public = {"Query.nation", "Query.region", "Query.agency", "Query._service"}
    for coordinate, rule in perm.FIELDS.items():
        if coordinate not in public:
            assert rule.checks or rule.filtered, coordinate


def test_the_rules_are_installed_on_the_executable_schema() -> None:
    for coordinate, rule in perm.FIELDS.items():
        type_name, field_name = coordinate.split(".")
        resolve = _object_types()[type_name].fields[field_name].resolve
        assert (getattr(resolve, "__qualname__", "") == "_checked.<locals>.field") == rule.checks, coordinate


HAND = re.compile(r"access\.role\(|access\.region\(|caller\.has\(|within\([^)]*caller\.scope")
# Node-to-node calls check per call kind, where each kind is dispatched (declared in FIELDS["Query._tierCall"]).
DECLARED_INTERNAL = {"resolvers/internal.py", "resolvers/duplicates.py"}


def test_no_resolver_checks_roles_or_scope_by_hand() -> None:
    found = []
    for folder in ("resolvers", "tiers", "schema"):
        for p in sorted((ROOT / folder).rglob("*.py")):
            rel = p.relative_to(ROOT).as_posix()
            if rel == "resolvers/permissions.py" or rel in DECLARED_INTERNAL:
                continue
            found += [f"{rel}:{i}" for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                      if HAND.search(line)]
    assert not found, f"checks by hand (declare a rule in resolvers/permissions.py instead): {found}"
