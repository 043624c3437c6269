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
import io
import json
import logging
from collections.abc import Iterator
from datetime import date
from pathlib import Path

from tierfed import codes
from tierfed.runtime import Runtime
from tierfed.tiers.figures import SCHEMES

from . import store
from .report import Report
from .source import Source

log = logging.getLogger("tierfed.imports")

TOLD = ("persons", "contributions", "benefits")
MAX_WARNINGS = 1000


async def after_import(rt: Runtime, rep: Report, path: str | Path) -> list[str]:
    """Tell the parent and add the federation's warnings to ``rep``; returns what could not be done."""
    # Every ancestor learns this node's new version before the import is reported done (tiers.links).
    problems = [await rt.links.announce()]
    if rep.kind not in TOLD or not rep.inserted:
        return [p for p in problems if p]
    told = await rt.index.tell_parent()
    if told is not None and rt.cfg.parent is not None:
        # The parent may take its index of this node as whole while its lease runs: the import is
        # done once that lease has run out (it then asks this node, or reads its feed, first).
        await rt.links.wait_out_lease(f"person index: {told}")
    problems.append(told)
    if rep.kind == "contributions" and rep.first_month and rep.last_month:
        span = (codes.month(rep.first_month), codes.month(rep.last_month))
        try:
            found, problem = await rt.index.duplicate_warnings(rt.store, *span, lambda ids: record_keys(path, ids))
        except Exception as e:  # noqa: BLE001 - the import is committed: its warnings are a courtesy
            log.exception("import %s: the duplicate insurance warnings could not be made", rep.import_id)
            found, problem = [], f"the warnings of records held elsewhere could not be made ({type(e).__name__})"
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
    """The rows of a records file as dicts, streamed, read as the import read it: gzip told by
    its first bytes (an upload's spool file has no .gz name), the header's names stripped of
    spaces and a byte order mark, the values of spaces."""
    with Source(Path(path), Path(path).name, ())._binary() as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        reader = csv.reader(text)
        header = [h.strip().lstrip("\ufeff") for h in next(reader, [])]
        for row in reader:
            yield {h: v.strip() for h, v in zip(header, row)}


def record_keys(path: str | Path, ids: set[str]) -> set[tuple[str, int, date]]:
    """The (person, scheme number, month) keys of a records file, for some persons (the file was
    imported: every row is a good one)."""
    return {(r["id_number"].upper(), SCHEMES.index(r["scheme"]) + 1, codes.month(r["month"]))
            for r in _rows(path) if r.get("id_number", "").upper() in ids}
