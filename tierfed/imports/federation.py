"""After an import commits: what the rest of the federation must learn of it, and what it
knows that the import should say.

- This node's version moved: the parent is told, and the import is done once every
  ancestor has acknowledged it (``tiers.links``).
- The persons this node's subtree holds may have changed: the parent is told, and the
  import is done once every ancestor has read them (``tiers.personindex``).
- Contribution rows whose person, scheme and month are also held elsewhere in the
  federation (insured twice) become warnings of the report and of its history: the
  import went through, cleaning up is the agencies' decision (``tiers.duplicates``).
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from tierfed import codes
from tierfed.runtime import Runtime
from tierfed.tiers.figures import SCHEMES

from . import store
from .report import Report

TOLD = ("persons", "contributions", "benefits")
MAX_WARNINGS = 1000


async def after_import(rt: Runtime, rep: Report, path: str | Path) -> list[str]:
    """Tell the parent and add the federation's warnings to ``rep``; returns what could not be done."""
    # Every ancestor learns this node's new version before the import is reported done (tiers.links).
    problems = [await rt.links.announce()]
    if rep.kind not in TOLD or not rep.inserted:
        return [p for p in problems if p]
    problems.append(await rt.index.tell_parent())
    if rep.kind == "contributions" and rep.first_month and rep.last_month:
        span = (codes.month(rep.first_month), codes.month(rep.last_month))
        found, problem = await rt.index.duplicate_warnings(rt.store, *span, lambda ids: record_keys(path, ids))
        problems.append(problem)
        if found:
            shown = found[:MAX_WARNINGS]
            if len(found) > MAX_WARNINGS:
                shown.append(f"{len(found) - MAX_WARNINGS} more records held elsewhere in the federation too")
            rep.warnings.extend(shown)
            if rep.import_id is not None:
                await rt.pool.execute(store.ADD_WARNINGS, rep.import_id, json.dumps(shown, ensure_ascii=False))
    return [p for p in problems if p]


def _rows(path: str | Path) -> Iterator[dict[str, str]]:
    """The rows of a records file as dicts, streamed (.gz read as it is)."""
    p = Path(path)
    opener: Any = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rt", encoding="utf-8", newline="") as f:
        yield from csv.DictReader(f)


def record_keys(path: str | Path, ids: set[str]) -> set[tuple[str, int, date]]:
    """The (person, scheme number, month) keys of a records file, for some persons."""
    return {(r["id_number"], SCHEMES.index(r["scheme"]) + 1, codes.month(r["month"]))
            for r in _rows(path) if r.get("id_number") in ids}
