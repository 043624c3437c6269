"""Imports by stage: reading (``source``), checking per kind (``checks``, ``rows``,
``records``), applying, and the history (``run``); SQL in ``store``."""

from .checks import Bad, checked, fen
from .report import MAX_REPORTED, ImportFailed, Progress, Report, RowError
from .run import KINDS, ImportRunRec, history, import_file

__all__ = ["Bad", "checked", "fen", "MAX_REPORTED", "ImportFailed", "Progress", "Report", "RowError", "KINDS",
           "history", "import_file", "ImportRunRec"]
