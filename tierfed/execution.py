"""Running one GraphQL operation on a node: parse and validate (cached), limits,
then one pass, or two passes when children are involved (see ``tiers.remote``)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import traceback
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FragmentDefinitionNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    StringValueNode,
    execute,
    parse,
    print_ast,
    validate,
)
from graphql.execution.values import get_variable_values
from graphql.validation import NoSchemaIntrospectionCustomRule, ValidationRule, specified_rules

from . import limits, observe, selfservice
from .auth import Access, Caller
from .errors import Code, TierfedError, database_down, database_unavailable
from .resolvers import permissions
from .resolvers.context import Context, Loaders, SummaryLoader
from .resolvers.held import DEFERRED, ENTITIES, HELD
from .runtime import Runtime
from .schema.root import schema
from .telemetry import current_span, span
from .tiers import layer
from .tiers.employers import EmployerParts, EmployerReads
from .tiers.persons import PersonParts, PersonReads
from .tiers.remote import LIVE, PLAN, REPLAY, RemoteCalls
from .tiers.store import record_pii_reads

log = logging.getLogger("tierfed.execution")
GRAPHQL_SCHEMA = schema._schema


class RequestError(Exception):
    """The request could not run at all (parse, validation, limits): no data."""

    def __init__(self, errors: list[GraphQLError]) -> None:
        self.errors = errors


@lru_cache(maxsize=512)
def _parse(query: str) -> DocumentNode | GraphQLError:
    try:
        return parse(query, max_tokens=20_000)
    except GraphQLError as e:
        return e


NUL_MESSAGE = "strings may not contain the NUL character (U+0000)"
SURROGATE_MESSAGE = ("strings must be valid Unicode: a lone surrogate (\\ud800 to \\udfff, half of a UTF-16 "
                     "pair) is not a character; send the character itself or its whole pair")


def unstorable(value: Any) -> str | None:
    """Why a string inside ``value`` (keys too) cannot be taken, or None: U+0000, which no
    PostgreSQL text can store, or a lone surrogate (JSON's ``"\\ud800"``), which is no character
    and cannot be written as UTF-8 anywhere (a log line, a cache key, an answer).

    (String literals in the document are refused by validation: ``execution.NoNulInStringsRule``.)
    """
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if "\x00" in v:
                return NUL_MESSAGE
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return SURROGATE_MESSAGE
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return None


class NoNulInStringsRule(ValidationRule):
    """PostgreSQL text cannot hold U+0000: a string literal holding one is refused here, once per document."""

    def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
        if "\x00" in node.value:
            self.report_error(GraphQLError(NUL_MESSAGE, node))


@lru_cache(maxsize=512)
def _validate(query: str, introspection: bool) -> tuple[GraphQLError, ...]:
    doc = _parse(query)
    assert isinstance(doc, DocumentNode)
    rules = [*specified_rules, NoNulInStringsRule] + ([] if introspection else [NoSchemaIntrospectionCustomRule])
    return tuple(validate(GRAPHQL_SCHEMA, doc, rules, max_errors=20))


@dataclass
class Prepared:
    document: DocumentNode
    operation: OperationDefinitionNode
    variable_defs: dict[str, str]
    # What the PII audit records as "which operation": its name, or for an anonymous
    # one the sha256 of its text (the hash a persisted operation is registered under).
    label: str = ""


def is_subscription(query: Any, operation_name: Any) -> bool:
    """Whether ``query`` (a request's text) is a subscription: its operation (by name), parsed
    through the parse cache; False for anything that does not parse or name one operation."""
    if not isinstance(query, str):
        return False
    doc = _cached(_parse, "parse", query)
    if isinstance(doc, GraphQLError):
        return False
    try:
        op = _operation(doc, operation_name if isinstance(operation_name, str) else None)
    except RequestError:
        return False
    return op.operation == OperationType.SUBSCRIPTION


def _operation(doc: DocumentNode, operation_name: str | None) -> OperationDefinitionNode:
    ops = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name:
        ops = [o for o in ops if o.name and o.name.value == operation_name]
        if not ops:
            raise RequestError([GraphQLError(f"no operation named {operation_name!r} in the document")])
    elif len(ops) > 1:
        raise RequestError([GraphQLError("the document has several operations: name one with operationName")])
    if not ops:
        raise RequestError([GraphQLError("the document has no operation to run")])
    return ops[0]


# Rounds of requests to children an operation may take before what is still missing is asked as
# it comes: each round is at most one request per child (a pass finds what the next must ask).
ROUNDS = 3

# A forwarded request's aliases and root fields: bounded by the node above's limits, not these.
FORWARDED_UNBOUNDED = 10**9


def prepare(rt: Runtime, query: str, operation_name: str | None, variables: dict[str, Any],
            forwarded: bool = False) -> Prepared:
    """Parse, check the limits, validate and coerce the variables; RequestError when the request cannot run.

    Limits come before validation: they are linear in the document and bounded by
    the cost limit, while validation of a hostile document is not (see ``limits``).
    ``forwarded``: the request was sent by a node above this one on a caller's behalf (its
    NODE token verified beside the caller's): that node held the caller's operation to its own
    limits, and its request, which gives each piece a root field and an alias of its own,
    is not held to this node's limits of aliases and root fields (depth and cost still are).
    """
    with span("graphql.parse_validate"):
        return _prepare(rt, query, operation_name, variables, forwarded)


def _cached(cache: Any, name: str, *args: Any) -> Any:
    """A call of an lru_cache'd function, its hit or miss recorded for the metrics."""
    hits = cache.cache_info().hits
    out = cache(*args)
    req = observe.current.get()
    if req is not None:
        result = "hit" if cache.cache_info().hits > hits else "miss"
        req.cache.append((name, result))
        if req.tracer is not None:  # the cache check, on the parse/validate span
            current_span().set_attribute(f"tierfed.cache.{name}", result)
    return out


def _prepare(rt: Runtime, query: str, operation_name: str | None, variables: dict[str, Any],
             forwarded: bool = False) -> Prepared:
    doc = _cached(_parse, "parse", query)
    if isinstance(doc, GraphQLError):
        raise RequestError([doc])
    op = _operation(doc, operation_name)
    frags = {d.name.value: d for d in doc.definitions if isinstance(d, FragmentDefinitionNode)}
    try:
        lim = rt.cfg.limits
        if forwarded:
            lim = dataclasses.replace(lim, max_aliases=FORWARDED_UNBOUNDED, max_root_fields=FORWARDED_UNBOUNDED)
        limits.check(GRAPHQL_SCHEMA, op, frags, variables, rt.tree, lim)
        errors = _cached(_validate, "validate", query, rt.cfg.introspection)
        if errors:
            raise RequestError(list(errors))
        coerced = get_variable_values(GRAPHQL_SCHEMA, op.variable_definitions or (), variables, max_errors=20)
    except TierfedError as e:
        raise RequestError([e]) from None
    except RecursionError:
        raise RequestError([limits.too_complex("query or variables are nested too deeply")]) from None
    if isinstance(coerced, list):
        # Variables that do not fit their types: a request error, so the answer has no data.
        raise RequestError(coerced)
    defs = {d.variable.name.value: print_ast(d) for d in (op.variable_definitions or ())}
    label = op.name.value if op.name else "sha256:" + hashlib.sha256(query.encode()).hexdigest()
    return Prepared(doc, op, defs, label)


layer.install(GRAPHQL_SCHEMA, HELD, DEFERRED, ENTITIES)
permissions.install(GRAPHQL_SCHEMA)  # outermost: a field is checked before it is forwarded or resolved


async def run(rt: Runtime, caller: Caller, prepared: Prepared, variables: dict[str, Any],
              operation_name: str | None) -> ExecutionResult:
    self_role = selfservice.self_role(caller.roles)
    token = caller.token
    if self_role is not None:
        # The one gate of self tokens: the operation reads its holder only, or nothing runs.
        frags = {d.name.value: d for d in prepared.document.definitions if isinstance(d, FragmentDefinitionNode)}
        coerced = get_variable_values(GRAPHQL_SCHEMA, prepared.operation.variable_definitions or (), variables)
        denied = selfservice.check(GRAPHQL_SCHEMA, self_role, caller.sub, prepared.operation, frags,
                                   None if isinstance(coerced, list) else coerced)
        if denied is not None:
            return ExecutionResult(None, [denied])
        token = selfservice.child_token(rt, caller, self_role)
    loaders = Loaders(rt.store)
    person_reads, employer_reads = PersonReads(rt.store), EmployerReads(rt.store)  # shared by both passes
    access = Access(caller, rt.tree)
    two_pass = prepared.operation.operation == OperationType.QUERY and bool(rt.node.children)
    remote = RemoteCalls(rt.clients, token, prepared.variable_defs, variables, PLAN if two_pass else LIVE)

    def context() -> Context:
        return Context(rt.node, rt.store, caller, access, loaders, remote,
                       SummaryLoader(rt.node, loaders.local_summary, remote),
                       PersonParts(rt.node, person_reads, remote, access.may, rt.index.is_current),
                       EmployerParts(rt.node, employer_reads, remote, access.may),
                       prepared.label or operation_name, runtime=rt)


    async def once(ctx: Context) -> ExecutionResult:
        req = observe.current.get()
        if req is not None:
            req.passes += 1
        res = execute(GRAPHQL_SCHEMA, prepared.document, context_value=ctx, variable_values=variables,
                      operation_name=operation_name)
        return await res if asyncio.iscoroutine(res) or asyncio.isfuture(res) else res  # type: ignore[return-value]

    ctx = context()
    with span("graphql.plan" if two_pass else "graphql.execute"):
        result = await once(ctx)
    if remote.again:
        # The planning pass answered every child's part with a placeholder (and left out the
        # figures that need no child): ask each child involved once, then run the operation
        # again with their answers. An operation that needed neither is done: the planning
        # pass was the answer. A pass that finds more to ask (fields below what a child
        # answered: a person's region held by another child) asks it in one more round, one
        # request per child again, up to ROUNDS; a last pass asks what is still missing as it comes.
        for _ in range(ROUNDS):
            with span("graphql.children"):
                await remote.fetch_planned()
            ctx = context()
            with span("graphql.execute"):
                result = await once(ctx)
            if not remote.pending:
                break
        else:
            remote.mode = REPLAY
            ctx = context()
            with span("graphql.execute"):
                result = await once(ctx)
    if remote.errors:
        result = ExecutionResult(result.data, [*(result.errors or []), *remote.errors])
    if self_role is not None:  # every read of a self token is audited, on every node that answers it
        ctx.pii_reads.append((caller.sub, selfservice.audit_label(self_role, prepared.label or operation_name or "")))
    if ctx.pii_reads:
        await record_pii_reads(rt.pool, caller.sub, caller.scope, ctx.pii_reads)
    return result


CONTRACT_CODES = frozenset(c.value for c in Code)


def _argument_error(err: BaseException | None) -> bool:
    """graphql-core's own check of an argument at execution (a null for a non-null argument)."""
    return isinstance(err, GraphQLError) and not err.extensions and err.message.startswith("Argument '")


def format_error(err: GraphQLError) -> dict[str, Any]:
    """Every error leaves with a contract code; anything unexpected is masked and logged.

    Errors with a code (raised on purpose, or forwarded from a child node) keep it.
    Errors of the request itself (syntax, validation, variable and argument coercion,
    where our scalar parsers raise ValueError with a message that says what to fix)
    are BAD_USER_INPUT. Anything else raised while executing is a bug or an outage:
    the client gets a reference, the log gets the traceback.
    """
    original = err.original_error
    ext = dict(err.extensions or {})
    if isinstance(original, GraphQLError) and original.extensions:
        ext = {**original.extensions, **ext}
    out: dict[str, Any]
    if ext.get("code") in CONTRACT_CODES:
        out = dict(err.formatted)
        out["extensions"] = ext
        return out
    request_error = err.path is None and (original is None or isinstance(original, (GraphQLError, ValueError)))
    if request_error or _argument_error(original):
        out = dict(err.formatted)
        out["extensions"] = {**ext, "code": Code.BAD_USER_INPUT.value}
        return out
    return masked(original or err, err.path)


def masked(exc: BaseException, path: list[str | int] | None = None) -> dict[str, Any]:
    """An internal error as the client sees it: a code and a reference to the log entry, nothing else.

    A lost database is no bug: it gets its own retryable code (and no traceback in the log)."""
    if database_down(exc):
        log.warning("database unavailable at %s: %s", observe.redact(str(path), 500), type(exc).__name__)
        return {**database_unavailable().formatted, **({"path": path} if path else {})}
    ref = uuid.uuid4().hex[:12]
    # The path's aliases are the caller's words, and an exception's text can carry values (asyncpg
    # appends its DETAIL: "Key (id_number)=(...)"): both redacted, the traceback with them.
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    log.error("internal error %s at %s\n%s", ref, observe.redact(str(path), 500), observe.redact(trace, 64_000))
    req = observe.info()
    if req is not None:
        req.error_refs.append(ref)
    out: dict[str, Any] = {"message": f"Internal server error (reference {ref})",
                           "extensions": {"code": Code.INTERNAL_SERVER_ERROR.value}}
    if path:
        out["path"] = path
    return out
