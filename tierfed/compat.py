"""The schema's compatibility promise, checked: the served SDL against the last
release's (``schema/releases/<version>.graphql``) with graphql-core's
``find_breaking_changes``. A breaking change passes only when ``CHANGELOG.md`` lists it
under ``## Unreleased`` in a bullet that names it (its schema coordinate in backticks,
e.g. `` `Region.pool` `` or `` `Query.rollup(schemes:)` ``) and says ``Migration:`` what clients do instead."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from graphql import BreakingChange, build_schema, find_breaking_changes, find_dangerous_changes


@dataclass
class Report:
    breaking: list[BreakingChange]
    unlisted: list[BreakingChange]
    dangerous: list[str]


COORDINATE = re.compile(r"\b[A-Za-z_]\w*\.\w+(?:\(\w+:\))?")


def coordinate(change: BreakingChange) -> str:
    """The schema coordinate a change names: ``Type``, ``Type.field``, ``Enum.VALUE`` or
    ``Type.field(arg:)`` ("Field Region.children was removed." -> "Region.children")."""
    m = COORDINATE.search(change.description)
    return m.group(0) if m else change.description.split(" ", 1)[0]


def unreleased_bullets(changelog: str) -> list[str]:
    m = re.search(r"^## Unreleased[^\n]*\n(.*?)(?=^## |\Z)", changelog, re.M | re.S)
    if not m:
        return []
    bullets: list[str] = []
    for line in m.group(1).splitlines():
        if line.startswith(("- ", "* ")):
            bullets.append(line[2:])
        elif bullets and line.startswith("  "):
            bullets[-1] += " " + line.strip()
    return bullets


def check(released_sdl: str, current_sdl: str, changelog: str) -> Report:
    old = build_schema(released_sdl, assume_valid_sdl=True)
    new = build_schema(current_sdl, assume_valid_sdl=True)
    breaking = find_breaking_changes(old, new)
    bullets = unreleased_bullets(changelog)

    def listed(c: BreakingChange) -> bool:
        return any(f"`{coordinate(c)}`" in b and "Migration:" in b for b in bullets)

    return Report(breaking, [c for c in breaking if not listed(c)],
                  [d.description for d in find_dangerous_changes(old, new)])


def latest_release(directory: Path) -> Path:
    files = sorted(directory.glob("*.graphql"), key=lambda p: tuple(int(x) for x in p.stem.split(".")))
    if not files:
        raise FileNotFoundError(f"no released schema (*.graphql) in {directory}")
    return files[-1]
