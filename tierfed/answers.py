"""The answer cache: serialized answers kept while the data versions they were computed
from are unchanged (README "Fresh answers at cache speed").

An entry is filed under the operation (its normalized text and name), its variables
and what of the caller changes an answer (scope and roles), and holds the subtree
version it was computed at (``tiers.versions``). It is served only when the version
read for the new request, before any figure, is the same; otherwise it is dropped.
The bytes held are bounded (``[cache].max_bytes``), least recently used first out.

Never cached: mutations; answers with errors (a failed child, a refusal); requests
of a PII_READER (its answers may unmask ID numbers, each read of which is audited,
here or at a child); requests of a self token (``tierfed.selfservice``: each of its reads is
audited, and its answers are its holder's alone); the internal node-to-node fields and the PII audit log, whose
tables carry no version; requests whose subtree version could not be read.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from graphql import DocumentNode, FieldNode, OperationDefinitionNode, OperationType, print_ast

from . import codes
from .auth import Caller
from .selfservice import self_role

# Root fields whose answers read tables without a version, or that must be read fresh.
UNCACHED_ROOTS = frozenset({"piiReads", "changes"})  # changes: its tables move no version (migration 0016)


@dataclass(frozen=True)
class Entry:
    version: str
    body: bytes
    etag: str


_NORMALIZED: dict[str, str] = {}


def _normalized(query: str, document: DocumentNode) -> str:
    """The hash of the printed document, remembered by the query's text (hashing the document
    itself would walk it on every request)."""
    h = _NORMALIZED.get(query)
    if h is None:
        if len(_NORMALIZED) >= 512:
            _NORMALIZED.clear()
        h = _NORMALIZED[query] = hashlib.sha256(print_ast(document).encode()).hexdigest()
    return h


def cacheable(operation: OperationDefinitionNode, caller: Caller) -> bool:
    """May this operation's answer for this caller be served from or kept in the cache?"""
    if operation.operation != OperationType.QUERY or caller.has("PII_READER"):
        return False
    if self_role(caller.roles) is not None:
        return False
    for sel in operation.selection_set.selections:
        if not isinstance(sel, FieldNode):  # fragments at the root: not worth looking into
            return False
        name = sel.name.value
        if name.startswith("_tier") or name in UNCACHED_ROOTS:
            return False
    return True


def cache_key(query: str, document: DocumentNode, operation_name: str | None, variables: dict[str, Any],
              caller: Caller) -> str:
    """The operation, its variables, and the caller's scope and roles: never the token itself.
    And the current month: figures "as of now" (a pool's balance, a fund report's last month)
    move with the calendar, which moves no version."""
    parts = [_normalized(query, document), operation_name or "",
             json.dumps(variables, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
             caller.scope, ",".join(sorted(caller.roles)), codes.current_month().isoformat()]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def etag(key: str, version: str) -> str:
    return '"' + hashlib.sha256(f"{key}@{version}".encode()).hexdigest()[:32] + '"'


def matches(if_none_match: str | None, tag: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(t.strip().removeprefix("W/") == tag for t in if_none_match.split(","))


class AnswerCache:
    """Answers by key, each valid at one version; at most ``max_bytes`` of answers held."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, version: str) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        if entry.version != version:  # the data moved: this answer can never be served again
            self._drop(key)
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def put(self, key: str, version: str, body: bytes) -> Entry:
        entry = Entry(version, body, etag(key, version))
        if key in self._entries:
            self._drop(key)
        if len(body) > self.max_bytes:
            return entry
        self._entries[key] = entry
        self.bytes += len(body)
        while self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))
        return entry

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key)
        self.bytes -= len(entry.body)

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0
