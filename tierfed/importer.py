"""``tierfed import KIND FILE``: the entry point kept for its callers; the importer
lives in ``tierfed.imports`` (reading, checks per kind, applying, history)."""

from .imports import Bad, ImportFailed, Report, RowError, checked, fen, import_file

__all__ = ["Bad", "ImportFailed", "Report", "RowError", "checked", "fen", "import_file"]
