"""A schema frontend teams can trust: everything described, and no breaking change since
the last release unless the changelog lists it with its migration."""

from __future__ import annotations

import re
from decimal import Decimal as PyDecimal
from pathlib import Path

import pytest
from tierfed.schema import descriptions, root

from tests.test_cli_schema import ROOT, tierfed
from tierfed.compat import check, latest_release

RELEASED = latest_release(ROOT / "schema" / "releases")
CHANGELOG = (ROOT / "CHANGELOG.md").read_text("utf-8")


def test_every_type_field_argument_and_enum_value_is_described() -> None:
    members = descriptions.members(root.schema._schema)
    assert len(members) > 150  # the walk sees the whole API (199 members at 0.1.0)
    bare = sorted(k for k, m in members.items() if not (m.description or "").strip())  # type: ignore[attr-defined]
    assert bare == [], "describe these (in the code, or in schema/descriptions.py): " + ", ".join(bare)


def test_the_description_table_names_only_what_the_code_leaves_undescribed() -> None:
    undescribed = root.Schema(query=root.Query, mutation=root.Mutation, subscription=root.Subscription,
                              scalar_overrides={PyDecimal: root.Decimal})
    members = descriptions.members(undescribed._schema)
    unknown = [k for k in descriptions.DESCRIPTIONS if k not in members]
    assert unknown == [], f"schema/descriptions.py names what the schema does not have: {unknown}"
    twice = [k for k in descriptions.DESCRIPTIONS if members[k].description]  # type: ignore[attr-defined]
    assert twice == [], f"described in the code already, drop from schema/descriptions.py: {twice}"


def test_the_served_schema_is_compatible_with_the_last_release() -> None:
    r = tierfed("schema", "--check", "--releases", str(RELEASED.parent), "--changelog", str(ROOT / "CHANGELOG.md"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"compatible with {RELEASED.stem}" in r.stdout


def _served() -> str:
    return (ROOT / "schema.graphql").read_text("utf-8")


def test_a_removed_field_fails_the_check_unless_the_changelog_lists_its_migration(tmp_path: Path) -> None:
    served = _served()
    without = re.sub(r"\n  \"\"\"In code order\.\"\"\"\n  children: \[Region!\]!", "", served, count=1)
    assert without != served
    report = check(RELEASED.read_text("utf-8"), without, CHANGELOG)
    assert [c.description for c in report.unlisted] == ["Field Region.children was removed."]
    # The CLI says what to do, and exits non-zero: here a release had a field the server no longer has.
    releases = tmp_path / "releases"
    releases.mkdir()
    (releases / "0.1.0.graphql").write_text(served)
    (releases / "0.9.0.graphql").write_text(served.replace("  verticallyManaged: Boolean!\n",
                                                           "  verticallyManaged: Boolean!\n  website: String\n", 1))
    r = tierfed("schema", "--check", "--releases", str(releases), "--changelog", str(ROOT / "CHANGELOG.md"))
    assert r.returncode == 1 and "`Agency.website`" in r.stderr and "Migration:" in r.stderr, r.stdout + r.stderr
    assert "breaking (NOT LISTED): Field Agency.website was removed." in r.stdout
    listed = CHANGELOG.replace("## Unreleased\n", "## Unreleased\n\n- Breaking: `Region.children` removed.\n"
                               "  Migration: ask `regions(parent: ...)` instead.\n", 1)
    assert check(RELEASED.read_text("utf-8"), without, listed).unlisted == []
    # Naming it without a migration is not enough; nor is a bullet under an older release.
    no_migration = CHANGELOG.replace("## Unreleased\n", "## Unreleased\n\n- `Region.children` removed.\n", 1)
    assert len(check(RELEASED.read_text("utf-8"), without, no_migration).unlisted) == 1
    old_section = CHANGELOG.replace("## 0.1.0\n", "## 0.1.0\n\n- `Region.children` removed. Migration: none.\n", 1)
    assert len(check(RELEASED.read_text("utf-8"), without, old_section).unlisted) == 1


def test_an_added_field_passes_the_check() -> None:
    served = _served()
    added = served.replace("  verticallyManaged: Boolean!\n", "  verticallyManaged: Boolean!\n  website: String\n", 1)
    assert added != served
    report = check(RELEASED.read_text("utf-8"), added, CHANGELOG)
    assert report.breaking == [] and report.unlisted == []


@pytest.mark.parametrize("change, kind", [
    (("  verticallyManaged: Boolean!\n", "  verticallyManaged: Boolean\n"), "FIELD_CHANGED_KIND"),
    (('  """Maternity insurance."""\n  MATERNITY\n', ""), "VALUE_REMOVED_FROM_ENUM"),
])
def test_other_breaking_changes_are_caught_too(change: tuple[str, str], kind: str) -> None:
    served = _served()
    changed = served.replace(*change, 1)
    assert changed != served
    report = check(RELEASED.read_text("utf-8"), changed, CHANGELOG)
    assert [c.type.name for c in report.unlisted] == [kind]
