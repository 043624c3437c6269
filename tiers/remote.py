"""Calls to child nodes for one operation: at most one HTTP request per child.

A query on a node with children runs in two passes over the same resolvers.
The planning pass answers every remote need with a placeholder and records it;
then each child involved gets one request carrying all of its needs (the
summaries it must add up and the pieces of the operation it must answer),
all children concurrently; the replay pass reads those answers. Local loaders
are shared by both passes, so the database is read once.

Two kinds of need:
- summaries of regions inside the child's subtree, sent as one
  ``_tierSummaries(keys: ...)`` field;
- forwarded pieces: a field of the caller's operation (with its whole
  selection) that the child answers, e.g. ``region(code: "440300") { pool(...) {...} }``;
- internal calls: JSON arguments to a node-to-node handler (``_tierCall``), all
  calls of one kind sent as one list, e.g. the parts of persons a child holds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx
from graphql import FieldNode, FragmentSpreadNode, InlineFragmentNode, located_error

from tierfed import observe
from tierfed.codes import month_str
from tierfed.errors import Code, TierfedError
from tierfed.telemetry import child_headers, span

from .figures import Figures, Summary
from .node import Child

log = logging.getLogger("tierfed.remote")

# PLAN: every remote need answered by a placeholder and recorded. COLLECT: a pass after a round of
# requests: what was fetched is answered, a need not fetched yet is recorded for the next round
# (one more request per child) and answered by a placeholder. REPLAY: a need not fetched is asked
# at once (the last pass, after a bounded number of rounds). LIVE: every need asked at once.
PLAN, COLLECT, REPLAY, LIVE = "plan", "collect", "replay", "live"


# Where a child reported errors inside a piece's answer: a tree by response key (and list
# index), the error itself under ERROR at the place it was raised.
ERROR = "\x00error"
Errors = dict[Any, Any]


class Forwarded:
    """A child's answer to a forwarded field: its sub-fields are read by response key, and a
    sub-field the child failed fails again here, with the child's error (``errors``)."""

    __slots__ = ("data", "errors", "typename")

    def __init__(self, data: dict[str, Any], errors: Errors | None = None) -> None:
        self.data = data
        self.errors = errors
        # The object type it is, where a field's type is abstract (a gateway's _entities);
        # None where the field's type says it.
        self.typename: str | None = None

    def read(self, key: str, info: Any = None) -> tuple[Any, Errors | None]:
        """The value under ``key`` and the errors below it; raises the child's error when the
        child failed that very field, or a non-null field below it that made it null: then at
        that field's own path (``info``: the field being resolved here), as one node answers."""
        value = self.data.get(key)
        below = self.errors.get(key) if self.errors else None
        if value is None and below:
            sub, err = _first_at(below)
            if not sub or info is None:
                raise child_error(err)
            node = _field_below(info, sub)
            raise located_error(child_error(err), [node] if node is not None else info.field_nodes,
                                [*info.path.as_list(), *sub])
        return value, below


@dataclass(frozen=True)
class Piece:
    """A field of the caller's operation that a child answers: printed from the operation's
    syntax tree, and asked as a field of region ``region`` or, without one, as a root field."""

    region: str | None
    text: str


def wrap(value: Any, errors: Errors | None = None) -> Any:
    if isinstance(value, dict):
        return Forwarded(value, errors)
    if isinstance(value, list):
        return [wrap(v, errors.get(i) if errors else None) for i, v in enumerate(value)]
    return value


def child_error(err: dict[str, Any], node: str | None = None) -> TierfedError:
    """A child's error, raised again here with its code (TIER_UNAVAILABLE for one we do not know)."""
    ext = err.get("extensions") or {}
    try:
        code = Code(ext.get("code", Code.TIER_UNAVAILABLE.value))
    except ValueError:
        code = Code.TIER_UNAVAILABLE
    extra = {k: v for k, v in ext.items() if k != "code"}
    if node is not None:
        extra["node"] = node
    return TierfedError(code, str(err.get("message", "error at child node")), **extra)


def _first(tree: Errors) -> dict[str, Any]:
    return _first_at(tree)[1]


def _first_at(tree: Errors) -> tuple[list[Any], dict[str, Any]]:
    """The first error in ``tree`` and its path below the tree's top."""
    path: list[Any] = []
    while ERROR not in tree:
        step, tree = next(iter(tree.items()))
        path.append(step)
    return path, tree[ERROR]


def _field_below(info: Any, path: list[Any]) -> Any:
    """The field node of the caller's document at ``path`` (response keys, list indices
    skipped) below the field being resolved, through inline fragments and named ones."""
    nodes = list(info.field_nodes)
    found = None
    for step in path:
        if isinstance(step, int):
            continue
        found = None
        pending = [sel for n in nodes if n.selection_set for sel in n.selection_set.selections]
        while pending and found is None:
            sel = pending.pop(0)
            if isinstance(sel, FieldNode):
                if (sel.alias or sel.name).value == step:
                    found = sel
            elif isinstance(sel, InlineFragmentNode):
                pending.extend(sel.selection_set.selections)
            elif isinstance(sel, FragmentSpreadNode) and sel.name.value in info.fragments:
                pending.extend(info.fragments[sel.name.value].selection_set.selections)
        if found is None:
            return None
        nodes = [found]
    return found


def _file_error(tree: Errors, path: list[Any], err: dict[str, Any]) -> None:
    for step in path:
        tree = tree.setdefault(step, {})
    tree.setdefault(ERROR, err)


@dataclass
class ChildAnswer:
    summaries: dict[tuple[str, date, date, bool], Summary] = field(default_factory=dict)
    pieces: dict[Piece, Any] = field(default_factory=dict)
    piece_errors: dict[Piece, dict[str, Any]] = field(default_factory=dict)
    # errors the child reported inside a piece's answer, by path below the piece
    inner_errors: dict[Piece, Errors] = field(default_factory=dict)
    calls: dict[tuple[str, str], Any] = field(default_factory=dict)
    failure: str | None = None
    # TIER_UNAVAILABLE the child reported for a node below it (an error with no path beside its
    # data): relayed into this operation's errors, so the caller learns which node is missing.
    relayed: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ChildNeeds:
    summaries: list[tuple[str, date, date, bool]] = field(default_factory=list)
    pieces: list[Piece] = field(default_factory=list)
    variables: set[str] = field(default_factory=set)
    # kind -> the JSON text of each call's argument, in order of first need
    calls: dict[str, list[str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.summaries or self.pieces or self.calls)


# A parent's own NODE token on its requests to a child (ChildClients.assertion).
NODE_HEADER = "X-Tierfed-Node"


class ChildClients:
    """One pooled HTTP client per child, kept for the node's lifetime (recovers when a child returns)."""

    def __init__(self, children: list[Child]) -> None:
        self.clients = {
            c.name: httpx.AsyncClient(
                timeout=httpx.Timeout(c.timeout_s),
                limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
            )
            for c in children
        }
        # Requests per child (read by the benchmarks and the tests that count them).
        self.requests: dict[str, int] = {c.name: 0 for c in children}
        # GET /tierfed/version per child (tiers.versions): none while the child's link is up.
        self.version_requests: dict[str, int] = {c.name: 0 for c in children}
        # The NODE token this node signs for itself (tiers.personindex), sent with every request
        # to a child beside the caller's token (NODE_HEADER): the child then knows the request
        # comes from its parent node, which internal calls that answer unmasked ID numbers need.
        self.node_token: Callable[[str], str | None] | None = None
        self._assertions: dict[str, tuple[float, str]] = {}

    def assertion(self, child: str) -> str | None:
        """This node's NODE token for ``child`` (it names the child: no other node takes it),
        signed at most once a minute (it is valid for five)."""
        now = time.monotonic()
        kept = self._assertions.get(child)
        if kept is not None and now - kept[0] < 60:
            return kept[1]
        tok = self.node_token(child) if self.node_token is not None else None
        if tok:
            self._assertions[child] = (now, tok)
        return tok

    async def post(self, child: Child, token: str, document: str, variables: dict[str, Any]) -> dict[str, Any]:
        self.requests[child.name] += 1
        req = observe.current.get()
        started = time.perf_counter()
        call = observe.ChildCall(child.name, "unreachable", 0.0)
        try:
            with span(f"child {child.name}", **{"tierfed.child": child.name, "tierfed.child.region": child.region}):
                # inside the child's span: its traceparent names that span as the child's parent
                headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", **child_headers(req)}
                node = self.assertion(child.name)
                if node:
                    headers[NODE_HEADER] = node
                send = {"json": {"query": document, "variables": variables}, "headers": headers}
                try:
                    r = await self.clients[child.name].post(child.url, **send)  # type: ignore[arg-type]
                except (httpx.ReadError, httpx.RemoteProtocolError):
                    # A kept-alive connection the child closed (idle timeout) as it was reused: the
                    # forwarded operation is a query, so it is sent once more on a new connection.
                    r = await self.clients[child.name].post(child.url, **send)  # type: ignore[arg-type]
            call.outcome = "garbage"
            try:
                body = r.json()
            except ValueError:
                raise ValueError(f"HTTP {r.status_code} with a body that is not JSON") from None
            if not isinstance(body, dict) or ("data" not in body and "errors" not in body):
                raise ValueError(f"HTTP {r.status_code} with a body that is not a GraphQL response")
            call.outcome = "ok" if not body.get("errors") else "errors"
            ext = body.get("extensions")
            if isinstance(ext, dict) and isinstance(ext.get("timing"), dict):
                call.timing = ext["timing"]
            return body
        except httpx.TimeoutException:
            call.outcome = "timeout"
            raise
        finally:
            call.seconds = time.perf_counter() - started
            if req is not None:
                req.children.append(call)

    async def close(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self.clients.values()))


class RemoteCalls:
    """The remote side of one operation."""

    def __init__(self, clients: ChildClients | None, token: str | Callable[[str], str], variable_defs: dict[str, str],
                 variables: dict[str, Any], mode: str = LIVE) -> None:
        self.clients = clients
        self.token = token
        self.variable_defs = variable_defs
        self.variables = variables
        self.mode = mode
        self.needs: dict[str, ChildNeeds] = {}
        self.children: dict[str, Child] = {}
        self.answers: dict[str, ChildAnswer] = {}
        self.errors: list[TierfedError] = []
        self._reported: set[str] = set()
        # The planning pass left out a field that needs no child (tiers.layer's deferred fields).
        self.deferred = False

    # ------------------------------------------------------------ planning

    def _need(self, child: Child) -> ChildNeeds:
        self.children[child.name] = child
        return self.needs.setdefault(child.name, ChildNeeds())

    @property
    def again(self) -> bool:
        """Whether the planning pass must be followed by a second one: it recorded what children
        must answer, or left out figures that need none (tiers.layer's deferred fields)."""
        return self.deferred or any(self.needs.values())

    # ------------------------------------------------------------ the two needs

    async def summaries(self, child: Child, keys: list[tuple[str, date, date, bool]]) -> list[Summary]:
        """Full summaries (the child's own and its children's) of regions inside the child's subtree."""
        answer = self.answers.get(child.name)
        missing = answer is None or any(k not in answer.summaries for k in keys) and answer.failure is None
        if self.mode == PLAN or (self.mode == COLLECT and missing):
            need = self._need(child)
            need.summaries.extend(k for k in keys if k not in need.summaries)
            return [Summary() for _ in keys]
        if missing:
            answer = await self._live(child, ChildNeeds(summaries=list(keys)))
        assert answer is not None
        out = []
        for k in keys:
            if answer.failure is not None or k not in answer.summaries:
                s = Summary()
                s.mark_missing(k[0])
                self._report(child, answer.failure or "gave no answer for a region")
                out.append(s)
            else:
                out.append(answer.summaries[k])
        return out

    async def forward(self, child: Child, piece: Piece | str, used_variables: set[str], info: Any = None) -> Any:
        """The child's answer to one piece of the operation (None while planning), as objects
        read by response key."""
        if isinstance(piece, str):
            piece = Piece(None, piece)
        answer = self.answers.get(child.name)
        missing = answer is None or (piece not in answer.pieces and answer.failure is None)
        if self.mode == PLAN or (self.mode == COLLECT and missing):
            need = self._need(child)
            if piece not in need.pieces:
                need.pieces.append(piece)
            need.variables |= used_variables
            return None
        if missing:
            answer = await self._live(child, ChildNeeds(pieces=[piece], variables=set(used_variables)))
        assert answer is not None
        if answer.failure is not None:
            self._report(child, answer.failure)
            raise unavailable(child, answer.failure)
        err = answer.piece_errors.get(piece)
        if err is not None and answer.pieces.get(piece) is None:
            inner = answer.inner_errors.get(piece)
            sub, deep = _first_at(inner) if inner else ([], err)
            if sub and info is not None:  # a non-null field below failed and made the piece null
                node = _field_below(info, sub)
                raise located_error(child_error(deep, child.name), [node] if node is not None else info.field_nodes,
                                    [*info.path.as_list(), *sub])
            raise child_error(err, child.name)
        return wrap(answer.pieces.get(piece), answer.inner_errors.get(piece))

    async def call(self, child: Child, kind: str, arg: dict[str, Any], missing: str | None = None) -> Any:
        """The child's answer to one internal call (``_tierCall``); None while planning.
        Raises ChildFailed (after reporting TIER_UNAVAILABLE once) when the child gave none;
        with ``missing``, an empty answer (null or ``{}``) is TIER_UNAVAILABLE too, saying the child ``missing``."""
        key = json.dumps(arg, sort_keys=True, separators=(",", ":"))
        answer = self.answers.get(child.name)
        absent = answer is None or ((kind, key) not in answer.calls and answer.failure is None)
        if self.mode == PLAN or (self.mode == COLLECT and absent):
            listed = self._need(child).calls.setdefault(kind, [])
            if key not in listed:
                listed.append(key)
            return None
        if absent:
            answer = await self._live(child, ChildNeeds(calls={kind: [key]}))
        assert answer is not None
        if answer.failure is not None or (kind, key) not in answer.calls:
            reason = answer.failure or "gave no answer to an internal call"
            self._report(child, reason)
            raise ChildFailed(child, reason)
        got = answer.calls[(kind, key)]
        if not got and missing is not None:  # null, or the empty object of a call that found nothing
            raise TierfedError(Code.TIER_UNAVAILABLE, f"child node '{child.name}' {missing}", node=child.name)
        return got

    @property
    def planning(self) -> bool:
        return self.mode == PLAN

    # ------------------------------------------------------------ fetching

    @property
    def pending(self) -> bool:
        """Whether a pass recorded needs not fetched yet (a COLLECT pass: one more round)."""
        return any(self.needs.values())

    async def fetch_planned(self) -> None:
        """One request per child with everything the last pass recorded, all concurrently; the
        next pass answers what was fetched and records what it finds still missing (COLLECT)."""
        names = [n for n, need in self.needs.items() if need]
        results = await asyncio.gather(*(self._request(self.children[n], self.needs[n]) for n in names))
        for n, ans in zip(names, results):
            self._keep(n, ans)
        self.needs = {}
        self.mode = COLLECT

    async def _live(self, child: Child, needs: ChildNeeds) -> ChildAnswer:
        return self._keep(child.name, await self._request(child, needs))

    def _keep(self, name: str, ans: ChildAnswer) -> ChildAnswer:
        """A child's answer added to what it answered before in this operation."""
        self._relay(ans)
        prev = self.answers.setdefault(name, ChildAnswer())
        prev.summaries.update(ans.summaries)
        prev.pieces.update(ans.pieces)
        prev.piece_errors.update(ans.piece_errors)
        prev.inner_errors.update(ans.inner_errors)
        prev.calls.update(ans.calls)
        if ans.failure:
            prev.failure = ans.failure
        return prev

    async def _request(self, child: Child, needs: ChildNeeds) -> ChildAnswer:
        doc = build_document(needs, self.variable_defs, self.variables)
        answer = ChildAnswer()
        assert self.clients is not None
        try:
            token = self.token(child.name) if callable(self.token) else self.token  # a node's own: for that child
            body = await self.clients.post(child, token, doc.text, doc.variables)
        except httpx.TimeoutException:
            answer.failure = f"did not answer within {child.timeout_s:g} s"
            return answer
        except (httpx.HTTPError, ValueError, OSError) as e:
            answer.failure = f"could not be reached ({type(e).__name__}: {e})" if not isinstance(e, ValueError) \
                else f"answered garbage ({e})"
            return answer
        data = body.get("data") or {}
        errors = body.get("errors") or []
        if not isinstance(data, dict) or not isinstance(errors, list):
            answer.failure = "answered garbage (data or errors of the wrong shape)"
            return answer
        by_alias: dict[tuple[str, int | None], dict[str, Any]] = {}
        inner: dict[tuple[str, int | None], Errors] = {}
        for err in errors:
            path = err.get("path") if isinstance(err, dict) else None
            if path:
                idx = path[1] if len(path) > 1 and str(path[0]).startswith("e") and isinstance(path[1], int) else None
                rest = path[1 if idx is None else 2:]
                if rest:  # inside a piece's answer: failed again where it is read (Forwarded.read)
                    _file_error(inner.setdefault((str(path[0]), idx), {}), rest, err)
                by_alias.setdefault((str(path[0]), idx), err)
            elif data and isinstance(err, dict) and (err.get("extensions") or {}).get("code") == \
                    Code.TIER_UNAVAILABLE.value:
                answer.relayed.append(err)  # a node below the child did not answer it
            elif not data:
                # A request-level error (auth, validation): the whole answer is lost.
                ext = (err.get("extensions") or {}) if isinstance(err, dict) else {}
                code = ext.get("code")
                if code in (Code.UNAUTHENTICATED.value, Code.FORBIDDEN.value):
                    # The child refused the caller's token: forwarded pieces carry its error as it is;
                    # summaries and internal calls are lost, and say why (not "garbage").
                    for piece in doc.where:
                        answer.piece_errors[piece] = dict(err)
                    if needs.summaries or needs.calls:
                        answer.failure = f"refused the caller's token ({code}: {err.get('message')})"
                        return answer
                else:
                    answer.failure = f"refused the request: {err.get('message') if isinstance(err, dict) else err}"
                    return answer
        try:
            if needs.summaries:
                s_err = by_alias.get(("s", None))
                if s_err is not None and data.get("s") is None:
                    answer.failure = f"could not give its summaries: {s_err.get('message')}"
                    return answer
                for key, item in zip(needs.summaries, data["s"]):
                    answer.summaries[key] = summary_from_json(item)
            for kind, args in needs.calls.items():
                c_alias = doc.calls[kind]
                c_err = by_alias.get((c_alias, None))
                if c_err is not None and data.get(c_alias) is None:
                    answer.failure = f"refused an internal call: {c_err.get('message')}"
                    return answer
                for arg, item in zip(args, data[c_alias], strict=True):
                    answer.calls[(kind, arg)] = item
            for piece, (alias, idx) in doc.where.items():
                got = data.get(alias)
                answer.pieces[piece] = got if idx is None or got is None else got[idx]
                err = by_alias.get((alias, idx))
                if err is not None:
                    answer.piece_errors[piece] = err
                if (alias, idx) in inner:
                    answer.inner_errors[piece] = inner[(alias, idx)]
        except (KeyError, TypeError, ValueError, IndexError) as e:
            answer.failure = f"answered garbage ({type(e).__name__})"
        return answer

    def failure_of(self, region: str) -> TierfedError:
        """The TIER_UNAVAILABLE reported for the child of ``region``, taken back from the
        operation's errors so that a field which cannot answer without it raises it at its path."""
        for i, err in enumerate(self.errors):
            if (err.extensions or {}).get("region") == region:
                return self.errors.pop(i)
        return TierfedError(Code.TIER_UNAVAILABLE, f"child node of {region} gave no answer", region=region)

    def _relay(self, answer: ChildAnswer) -> None:
        """The nodes below a child that did not answer it, named in this operation's errors (once each)."""
        for err in answer.relayed:
            message = str(err.get("message"))
            if any(e.message == message for e in self.errors):
                continue
            ext = {k: v for k, v in (err.get("extensions") or {}).items() if k != "code"}
            self.errors.append(TierfedError(Code.TIER_UNAVAILABLE, message, **ext))
        answer.relayed = []

    def _report(self, child: Child, reason: str) -> None:
        if child.name in self._reported:
            return
        self._reported.add(child.name)
        self.errors.append(unavailable(child, reason))


class ChildFailed(Exception):
    """A child gave no answer to an internal call; TIER_UNAVAILABLE is already reported."""

    def __init__(self, child: Child, reason: str) -> None:
        super().__init__(reason)
        self.child = child


async def ask_children(remote: RemoteCalls, children: list[Child], kind: str,
                       arg: dict[str, Any]) -> tuple[list[Any], list[str], bool]:
    """The same internal call to several children, concurrently: their answers, the regions of
    those that gave none (TIER_UNAVAILABLE is reported), and whether this is the planning pass."""

    async def one(child: Child) -> tuple[Child, Any]:
        try:
            return child, await remote.call(child, kind, arg)
        except ChildFailed:
            return child, ChildFailed

    got = await asyncio.gather(*(one(c) for c in children))
    answers = [a for _, a in got if a is not None and a is not ChildFailed]
    return answers, [c.region for c, a in got if a is ChildFailed], any(a is None for _, a in got)


def unavailable(child: Child, reason: str) -> TierfedError:
    return TierfedError(
        Code.TIER_UNAVAILABLE,
        f"child node '{child.name}' ({child.region}) {reason}; its part of the answer is missing",
        node=child.name, region=child.region,
    )


@dataclass
class Document:
    """The one request to a child: its text, variables, and where each piece's answer is."""

    text: str
    variables: dict[str, Any]
    # piece -> (alias, index in that alias's list or None)
    where: dict[Piece, tuple[str, int | None]]
    # kind of internal call -> alias of its one _tierCall field
    calls: dict[str, str] = field(default_factory=dict)


def build_document(needs: ChildNeeds, variable_defs: dict[str, str], variables: dict[str, Any]) -> Document:
    """Summaries as one field; fields of regions grouped by selection into one ``_entities``
    field each (so a thousand regions are one root field); other pieces as aliased root fields."""
    parts = []
    if needs.summaries:
        keys = ", ".join(
            f'{{region: {json.dumps(r)}, from: "{month_str(f)}", to: "{month_str(t)}", compact: {str(c).lower()}}}'
            for r, f, t, c in needs.summaries)
        parts.append(f"s: _tierSummaries(keys: [{keys}])")
    where: dict[Piece, tuple[str, int | None]] = {}
    groups: dict[str, list[tuple[Piece, str]]] = {}
    others = []
    for piece in needs.pieces:
        if piece.region is not None:
            groups.setdefault(piece.text, []).append((piece, piece.region))
        else:
            others.append(piece)
    sent = {k: variables[k] for k in needs.variables if k in variables}
    defs = [variable_defs[v] for v in sorted(needs.variables) if v in variable_defs]
    # The request's own variables: under a prefix none of the caller's variables starts with.
    own = "tierfed"
    while any(v.startswith(own) for v in variable_defs):
        own += "_"
    for g, (selection, members) in enumerate(groups.items()):
        alias, var = f"e{g}", f"{own}E{g}"
        defs.append(f"${var}: [_Any!]!")
        sent[var] = [{"__typename": "Region", "code": code} for _, code in members]
        parts.append(f"{alias}: _entities(representations: ${var}) {{ ... on Region {{ {selection} }} }}")
        for i, (piece, _) in enumerate(members):
            where[piece] = (alias, i)
    for i, piece in enumerate(others):
        alias = f"f{i}"
        where[piece] = (alias, None)
        parts.append(f"{alias}: {piece.text}")
    calls: dict[str, str] = {}
    for i, (kind, args) in enumerate(needs.calls.items()):
        c_alias, c_var = f"c{i}", f"{own}C{i}"
        defs.append(f"${c_var}: [JSON!]!")
        sent[c_var] = [json.loads(a) for a in args]
        parts.append(f"{c_alias}: _tierCall(kind: {json.dumps(kind)}, args: ${c_var})")
        calls[kind] = c_alias
    head = f"query TierfedForward({', '.join(defs)})" if defs else "query TierfedForward"
    return Document(head + " {\n  " + "\n  ".join(parts) + "\n}", sent, where, calls)


def summary_to_json(s: Summary) -> dict[str, Any]:
    return {
        "complete": s.complete,
        "missing": list(s.missing),
        "rows": [[month_str(m), sc, *f.to_json()] for (m, sc), f in sorted(s.rows.items())],
    }


def summary_from_json(v: dict[str, Any]) -> Summary:
    s = Summary(complete=bool(v["complete"]), missing=[str(c) for c in v["missing"]])
    for row in v["rows"]:
        y, m = row[0].split("-")
        s.rows[(date(int(y), int(m), 1), int(row[1]))] = Figures.from_json(row[2:])
    return s
