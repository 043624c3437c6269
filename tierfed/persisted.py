"""Persisted operations: registered documents a client sends by hash.

Two file formats, both read by ``[http].persisted_operations_file``:
- tierfed's own: a JSON object of ``{sha256 hex of the text: operation text}``;
- Apollo's persisted query list (``apollo-persisted-query-manifest`` version 1), as
  Apollo Client's persisted-queries link and GraphOS use:
  ``{"format": ..., "version": 1, "operations": [{"id", "name", "type", "body"}]}``.
``tierfed persist OPERATIONS.graphql --out DIR`` writes both from a GraphQL document:
each operation with the fragments it uses, printed canonically, hashed with sha256.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    OperationDefinitionNode,
    Visitor,
    parse,
    print_ast,
    visit,
)

from .errors import Code, TierfedError

APOLLO_FORMAT = "apollo-persisted-query-manifest"


def operation_text(stored: dict[str, str], persisted_only: bool, params: dict[str, Any]) -> str | None:
    """The text of the operation a request names: the registered one its hash names (GraphQL
    over HTTP's ``documentId`` or Apollo's ``extensions.persistedQuery.sha256Hash``), else the
    ``query`` it sends, which a node running registered operations only refuses. The same for
    queries, mutations and subscriptions, over any transport. TierfedError saying what to fix."""
    ext = params.get("extensions") or {}
    pq = ext.get("persistedQuery") if isinstance(ext, dict) else None
    doc_id = params.get("documentId") or (pq.get("sha256Hash") if isinstance(pq, dict) else None)
    query = params.get("query")
    if doc_id is not None:
        if not isinstance(doc_id, str):
            raise TierfedError(Code.BAD_USER_INPUT, "a persisted operation hash must be a sha256 hex string")
        text = stored.get(doc_id)
        if text is None:
            raise TierfedError(Code.BAD_USER_INPUT, f"persisted operation {doc_id[:80]} is not registered on this node")
        if isinstance(query, str) and query and sha256(query) != doc_id:
            raise TierfedError(Code.BAD_USER_INPUT, "query does not match its persisted operation hash")
        return text
    if persisted_only:
        raise TierfedError(Code.BAD_USER_INPUT,
                           "this node runs registered operations only: send extensions.persistedQuery.sha256Hash")
    return query if isinstance(query, str) else None


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _spreads(node: Any) -> set[str]:
    found: set[str] = set()

    class Collect(Visitor):
        def enter_fragment_spread(self, n: FragmentSpreadNode, *_: Any) -> None:
            found.add(n.name.value)

    visit(node, Collect())
    return found


def operations(text: str) -> list[dict[str, str]]:
    """Each named operation of a document with the fragments it uses: name, type, body."""
    doc: DocumentNode = parse(text)
    frags = {d.name.value: d for d in doc.definitions if isinstance(d, FragmentDefinitionNode)}
    out = []
    for op in doc.definitions:
        if not isinstance(op, OperationDefinitionNode):
            continue
        if op.name is None:
            raise ValueError("every persisted operation needs a name")
        used: list[str] = []
        todo = sorted(_spreads(op))
        while todo:
            name = todo.pop(0)
            if name in used:
                continue
            if name not in frags:
                raise ValueError(f"operation {op.name.value} uses fragment {name}, which the document does not define")
            used.append(name)
            todo.extend(sorted(_spreads(frags[name]) - set(used)))
        body = "\n\n".join([print_ast(op), *(print_ast(frags[n]) for n in sorted(used))])
        out.append({"name": op.name.value, "type": op.operation.value, "body": body})
    return out


def node_format(ops: list[dict[str, str]]) -> dict[str, str]:
    return {sha256(o["body"]): o["body"] for o in ops}


def apollo_manifest(ops: list[dict[str, str]]) -> dict[str, Any]:
    return {"format": APOLLO_FORMAT, "version": 1,
            "operations": [{"id": sha256(o["body"]), **o} for o in ops]}


def load(text: str) -> dict[str, str]:
    """The ``{hash: text}`` a node serves from either format; ValueError says what is wrong."""
    data = json.loads(text)
    if isinstance(data, dict) and data.get("format") == APOLLO_FORMAT:
        if data.get("version") != 1:
            raise ValueError(f"{APOLLO_FORMAT} version {data.get('version')!r} is not supported (only 1)")
        out = {}
        for i, op in enumerate(data.get("operations") or []):
            if not isinstance(op, dict) or not isinstance(op.get("id"), str) or not isinstance(op.get("body"), str):
                raise ValueError(f"operations[{i}]: expected an object with string id and body")
            if sha256(op["body"]) != op["id"]:
                raise ValueError(f"operations[{i}] ({op.get('name')}): id is not the sha256 of its body")
            out[op["id"]] = op["body"]
        return out
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ValueError("expected a JSON object of {sha256: operation text} or an Apollo persisted query manifest")
    return dict(data)
