"""What an import answers: the report (the same for the CLI, HTTP and the history),
the bad rows, and the progress of a running import."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from tierfed.errors import UserError

MAX_REPORTED = 1000


@dataclass(frozen=True)
class RowError:
    line: int
    column: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.reason}"


def field_count(got: int, width: int) -> str:
    """The reason of a row with another number of fields than the header."""
    hint = " (a value holding a comma must be quoted: \"8,000.00\")" if got > width else ""
    return f"has {got} fields; the header has {width}{hint}"


class ImportFailed(UserError):
    """A file with bad rows: nothing was imported. ``errors`` holds the first thousand
    by line, ``total`` how many there are; ``report`` the report with outcome rejected."""

    def __init__(self, path: str, errors: list[RowError], total: int) -> None:
        self.errors = errors
        self.total = total
        self.report: Report | None = None
        more = f" (and {total - len(errors)} more)" if total > len(errors) else ""
        super().__init__(f"{path}: {total} bad row(s){more}; nothing was imported")


@dataclass
class Report:
    """The outcome of one import. ``warnings`` are messages that did not block it."""

    kind: str
    rows: int
    inserted: int
    unchanged: int
    outcome: str = "imported"  # imported | unchanged | rejected | failed
    file_name: str = ""
    sha256: str = ""
    import_id: int | None = None
    version: int | None = None
    same_as: int | None = None
    seconds: float = 0.0
    bad_rows: int = 0
    errors: list[RowError] = field(default_factory=list)
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    # records files: the first and last month of the file's records ("YYYY-MM")
    first_month: str | None = None
    last_month: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["errors"] = [asdict(e) for e in self.errors]
        return out


@dataclass
class Progress:
    """A running import, as a job shows it: rows read from the file, checked, written."""

    _phase: str = "queued"  # queued | reading | checking | writing | done
    rows_read: int = 0
    rows_checked: int = 0
    rows_written: int = 0
    started: float = field(default_factory=time.time)
    # seconds spent in each phase so far (the benchmarks read them)
    seconds: dict[str, float] = field(default_factory=dict)
    _since: float = field(default_factory=time.perf_counter)

    @property
    def phase(self) -> str:
        return self._phase

    @phase.setter
    def phase(self, value: str) -> None:
        now = time.perf_counter()
        self.seconds[self._phase] = self.seconds.get(self._phase, 0.0) + now - self._since
        self._phase, self._since = value, now

    def to_json(self) -> dict[str, Any]:
        return {"phase": self.phase, "rows_read": self.rows_read, "rows_checked": self.rows_checked,
                "rows_written": self.rows_written, "seconds": round(time.time() - self.started, 3)}
