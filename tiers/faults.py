"""Fault injection for crash tests: stop this node dead at a named step of a change.

Off by default. ``TIERFED_CRASH_AT`` names one or more steps (comma-separated,
e.g. ``coordinator-after-decision``); when the node reaches one it exits at
once with ``os._exit`` (no cleanup, no flush of anything but the log line), as
``kill -9`` would stop it. The steps are listed in docs/CHANGES.md.
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger("tierfed.faults")

POINTS = (
    "coordinator-after-intent",
    "coordinator-after-reservation-1",
    "coordinator-after-reservation-2",
    "coordinator-after-decision",
    "coordinator-mid-commit",
    "participant-before-reserve",
    "participant-after-reserve",
    "participant-before-apply",
    # tierfed statements: a file written under its temporary name / renamed into place, not yet recorded
    "statements-before-rename",
    "statements-before-record",
)

ENV = "TIERFED_CRASH_AT"


def crash_point(name: str) -> None:
    """Exit the process dead when ``name`` is one of the configured crash points."""
    wanted = os.environ.get(ENV)
    if wanted and name in (w.strip() for w in wanted.split(",")):
        print(f"tierfed: crash point {name} reached, exiting dead", file=sys.stderr, flush=True)
        os._exit(137)
