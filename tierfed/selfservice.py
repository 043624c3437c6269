"""Self-service: a person or an employer reading their own records (Social Insurance Law art. 74).

A self token names its holder in ``sub``: a person's ID number (role SELF_PERSON)
or an employer's unified social credit code (role SELF_EMPLOYER), and carries no
other role. Such a token reaches the data through one gate, ``check``, run before
any resolver: the operation must be a query whose every field is on the role's
allowlist below, and whose one root field is bound to the token's subject
(``person(idNumber:)`` for a person, ``employer(creditCode:)`` for an employer).
Anything else (rollups, pools, other persons, the directory beyond names,
mutations, introspection) is FORBIDDEN before any SQL runs.

Behind the gate the ordinary person and employer paths answer (``tiers.persons``,
``tiers.employers``): the node's own part and its children's, which it asks with a
token it signs itself for the same subject and role (``child_token``) — the node's
authority, bound to that one person or employer, since the child's gate lets that
token make only the internal calls about its subject. Every read is recorded in
the PII audit (``pii_audit``, operation ``SELF_PERSON:<operation>``) on each node
that answers, and no answer of a self token is ever kept in the answer cache
(``tierfed.answers``).
"""

from __future__ import annotations

from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
)
from graphql.execution.values import VariableValues, get_argument_values

from . import codes
from .errors import TierfedError, UserError, forbidden

SELF_PERSON, SELF_EMPLOYER = "SELF_PERSON", "SELF_EMPLOYER"
SELF_ROLES = frozenset({SELF_PERSON, SELF_EMPLOYER})
TOKEN_TTL_S = 300

_REGION_NAMES = {"code", "name"}  # "no directory beyond names"
_PERSON_STATEMENT = {
    "Person": {"idNumber", "name", "region", "statement", "complete", "missing", "transfers"},
    "PersonalStatement": {"year", "schemes", "complete", "missing"},
    "PersonSchemeYear": {"scheme", "months", "contributionEmployer", "contributionIndividual", "individualAccount",
                         "benefitsPaid"},
    "InsuranceTransfer": {"id", "state", "from", "to", "effectiveFrom", "schemes"},
    "TransferredScheme": {"scheme", "individualAccount", "pooledFund"},
    "Region": _REGION_NAMES,
}
_EMPLOYER = {
    "Employer": {"creditCode", "name", "industryRiskClass", "region", "contributions", "complete", "missing"},
    "EmployerSchemeTotals": {"scheme", "employees", "contributorMonths", "contributionEmployer",
                             "contributionIndividual", "averageBase"},
    "Region": _REGION_NAMES,
}
# Per role: the fields a self token may reach, by type; the root field bound to the subject
# (and the argument that must equal it); the node-to-node call kinds and their subject key.
ALLOWED: dict[str, dict[str, set[str]]] = {
    SELF_PERSON: {"Query": {"person", "_tierCall"}, **_PERSON_STATEMENT},
    SELF_EMPLOYER: {"Query": {"employer", "_tierCall"}, **_EMPLOYER},
}
ROOT = {SELF_PERSON: ("person", "idNumber"), SELF_EMPLOYER: ("employer", "creditCode")}
CALLS = {SELF_PERSON: ({"person", "statement"}, "id"), SELF_EMPLOYER: ({"employer", "employer_totals"}, "code")}


def self_role(roles: frozenset[str] | set[str]) -> str | None:
    """The self role of a caller's roles, or None for agency staff and nodes."""
    for r in roles:
        if r in SELF_ROLES:
            return r
    return None


def subject(role: str, sub: str) -> str:
    """The normalized subject of a self token; ValueError naming what is wrong."""
    if role == SELF_PERSON:
        try:
            return codes.id_number(sub)
        except ValueError:
            raise ValueError("a SELF_PERSON token's subject must be the person's 18-character ID number") from None
    try:
        return codes.credit_code(sub)
    except ValueError:
        raise ValueError("a SELF_EMPLOYER token's subject must be the employer's 18-character credit code") from None


def check(schema: GraphQLSchema, role: str, sub: str, operation: Any, fragments: dict[str, FragmentDefinitionNode],
          variables: VariableValues | None) -> TierfedError | None:
    """The one gate of self tokens: None when the operation only reads the token's subject."""
    if operation.operation != OperationType.QUERY:
        return forbidden(f"a {role} token may only read: {operation.operation.value}s are not allowed")
    root = schema.query_type
    assert root is not None
    return _walk(schema, role, sub, root, operation.selection_set, fragments, variables, set())


def _walk(schema: GraphQLSchema, role: str, sub: str, parent: GraphQLObjectType, sel: SelectionSetNode,
          fragments: dict[str, FragmentDefinitionNode], variables: VariableValues | None, seen: set[str]) -> TierfedError | None:
    allowed = ALLOWED[role]
    for node in sel.selections:
        if isinstance(node, FieldNode):
            name = node.name.value
            if name == "__typename":
                continue
            if name not in allowed.get(parent.name, ()):
                return forbidden(f"a {role} token reads only its own records: {parent.name}.{name} is not "
                                 f"among them", field=f"{parent.name}.{name}")
            fdef = parent.fields[name]
            if parent is schema.query_type:
                problem = _bound(role, sub, name, get_argument_values(fdef, node, variables))
                if problem is not None:
                    return problem
            if node.selection_set is not None:
                child = get_named_type(fdef.type)
                if not isinstance(child, GraphQLObjectType):
                    return forbidden(f"a {role} token reads only its own records: {parent.name}.{name}")
                found = _walk(schema, role, sub, child, node.selection_set, fragments, variables, seen)
                if found is not None:
                    return found
        else:
            if isinstance(node, InlineFragmentNode):
                cond, inner = node.type_condition, node.selection_set
            else:
                assert isinstance(node, FragmentSpreadNode)
                frag = fragments.get(node.name.value)
                if frag is None or node.name.value in seen:
                    continue  # validation reports unknown or cyclic fragments
                cond, inner = frag.type_condition, frag.selection_set
                seen = seen | {node.name.value}
            target = parent if cond is None else schema.get_type(cond.name.value)
            if not isinstance(target, GraphQLObjectType):
                return forbidden(f"a {role} token reads only its own records: fragments on "
                                 f"{cond.name.value if cond else '?'} are not allowed")
            found = _walk(schema, role, sub, target, inner, fragments, variables, seen)
            if found is not None:
                return found
    return None


def _bound(role: str, sub: str, field: str, args: dict[str, Any]) -> TierfedError | None:
    """A root field's arguments must name the token's subject, and nobody else."""
    if field == "_tierCall":
        kinds, key = CALLS[role]
        if args.get("kind") not in kinds:
            return forbidden(f"a {role} token may not make the internal call {args.get('kind')!r}")
        for a in args.get("args") or []:
            if not isinstance(a, dict) or not _same(role, a.get(key), sub):
                return forbidden(f"a {role} token's internal calls must be about its own subject")
        return None
    want, arg = ROOT[role]
    if field != want or not _same(role, args.get(arg), sub):
        what = "person" if role == SELF_PERSON else "employer"
        return forbidden(f"a {role} token reads only its own {what}: {want}({arg}:) must be the token's subject",
                         argument=arg)
    return None


def _same(role: str, value: Any, sub: str) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return subject(role, value) == sub
    except ValueError:
        return False


def child_token(rt: Any, caller: Any, role: str) -> str:
    """The token a node sends its children for a self caller: signed by this node, for the same
    subject and role (the scope claim it carries is this node's region, which a self token's
    holder does not read by: tierfed.auth ignores it). A node that only verifies tokens forwards
    the caller's own (its children must then accept the same identity provider)."""
    if not rt.node.children:
        return str(caller.token)
    try:
        return str(rt.keys.sign(caller.sub, rt.node.region, [role], TOKEN_TTL_S))
    except UserError:  # no secret or private key to sign with
        return str(caller.token)


def audit_label(role: str, label: str) -> str:
    return f"{role}:{label}"
