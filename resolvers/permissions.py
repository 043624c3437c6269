"""Who may read or change what: one rule per field, applied by the executor before the
field's resolver runs (``install``), so that no resolver checks roles or scope by hand.

A rule names the roles that may use a field, and the region whose records it reads or
changes (from its arguments, its parent object or this node), which must lie inside the
caller's token scope. The checks themselves are ``tierfed.auth.Access``'s: the refusals
say the same whichever field refuses. Fields whose answer is filtered by the caller's
scope rather than refused (a person's registrations, the pools overview) say so with
``filtered``, and do it through ``Access.may``. Every field of the schema has a rule here,
by its coordinate or by its type (``tests/test_permissions.py`` walks them all).

To add a field: add its coordinate to FIELDS (a root field always; a field of a type
whose other fields are open needs one only when it reads another region's records).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from graphql import GraphQLObjectType, GraphQLResolveInfo, GraphQLSchema, default_field_resolver
from strawberry.types import Info
from tierfed.tiers.budgets import RETURNERS, STEPS
from tierfed.tiers.layer import is_forwarded

from .common import subtree_region
from .held import budget_region, pool_region, root_region
from .pools import parse_pool_id

RegionOf = Callable[[Any, GraphQLResolveInfo, dict[str, Any]], Awaitable[str | None]]


@dataclass(frozen=True)
class Rule:
    """``roles``: any one of them (refused naming the last); ``node``: the caller's scope must
    cover this node's whole region; ``region``: the region whose records the field reads
    (None: nothing to check), checked to be inside the scope; ``result``: the region of the
    answer itself, checked after the resolver; ``filtered``: how the field filters instead."""

    roles: tuple[str, ...] = ()
    action: str = ""
    node: bool = False
    region: RegionOf | None = None
    result: Callable[[Any], str] | None = None
    what: str = "records"
    filtered: str = ""

    @property
    def checks(self) -> bool:
        return bool(self.roles or self.node or self.region or self.result)


def arg(path: str, default_scope: bool = False) -> RegionOf:
    """The region named by argument ``path`` (``input.region``: a field of an input object):
    well formed, known, inside this node's subtree (BAD_USER_INPUT otherwise, before any scope
    check); the caller's scope when omitted."""

    async def region(root: Any, info: GraphQLResolveInfo, args: dict[str, Any]) -> str | None:
        value: Any = args
        for step in path.split("."):
            value = _get(value, step)
        if value is None:
            return str(info.context.caller.scope) if default_scope else None
        return subtree_region(info, str(value))  # type: ignore[arg-type]

    return region


def _get(value: Any, name: str) -> Any:
    """An argument, or a field of an input object (held under its GraphQL or its Python name)."""
    snake = "".join(f"_{ch.lower()}" if ch.isupper() else ch for ch in name)
    if isinstance(value, dict):
        return value[name] if name in value else value.get(snake)
    return getattr(value, snake, None)


def pool_arg(path: str) -> RegionOf:
    """The region of the pool id at argument ``path``: well formed, inside this node's subtree."""

    async def region(root: Any, info: GraphQLResolveInfo, args: dict[str, Any]) -> str | None:
        value: Any = args
        for step in path.split("."):
            value = _get(value, step)
        return None if value is None else subtree_region(info, parse_pool_id(str(value)))  # type: ignore[arg-type]

    return region


def step_role(info: Any, role: str, action: str) -> None:
    """A step whose role depends on what is stored, asked once the state is read: returning a
    budget is its reviewer's from SUBMITTED, its approver's from REVIEWED (tiers/budgets.py
    RETURNERS). The field's rule has checked the scope and that the caller holds one of them."""
    info.context.access.role(role, action)


def _budget_step(to: str, action: str) -> Rule:
    return Rule(roles=(STEPS[to][2],), action=action, region=pool_arg("poolId"), what="budgets")


async def root_region_in_subtree(root: Any, info: GraphQLResolveInfo, args: dict[str, Any]) -> str | None:
    """The parent region's, when it is inside this node's subtree (outside it the field answers null)."""
    code = await root_region(root, info, args)
    return code if info.context.node.in_subtree(code) else None


def call_region(info: Info, value: object, what: str) -> str:
    """A region named by a parent's internal call (``_tierCall``): checked as a rule checks an
    argument's region, for the kinds that read a region's records with the caller's token."""
    code = subtree_region(info, str(value))
    info.context.access.region(code, what)
    return code


OPEN = Rule()
OPERATOR_OR_AUDITOR = ("OPERATOR", "AUDITOR")
INTERNAL = Rule(filtered="node to node: each call kind checks its caller (the NODE role, or the scope of "
                         "the regions it names) where it is dispatched (resolvers/internal.py)")

FIELDS: dict[str, Rule] = {
    # The directory is public inside the federation: any valid token.
    "Query.nation": OPEN,
    "Query.region": OPEN,
    "Query.agency": OPEN,
    "Query._service": OPEN,
    "Query._entities": Rule(filtered="each entity's reference resolver: pools inside the scope only"),
    "Query.rollup": Rule(region=arg("region"), what="rollups"),
    "Query.pool": Rule(region=pool_region, what="pools"),
    "Query.person": Rule(filtered="only the registrations and records inside the scope; ID numbers masked "
                                  "without PII_READER (resolvers/persons.py, through Access.may and Access.pii)"),
    "Query.employer": Rule(filtered="only the records inside the scope (tiers/employers.py, through Access.may)"),
    "Query.centralAdjustment": Rule(node=True, what="the central adjustment (it needs every province of this node)"),
    "Query.duplicateInsurance": Rule(region=arg("region"), what="duplicate insurance records"),
    "Query.piiReads": Rule(roles=("AUDITOR",), action="reading the audit of ID number reads", node=True,
                           what="the audit log of this node"),
    "Query.poolingOverview": Rule(filtered="only pools inside the scope (through Access.may)"),
    "Query.poolingChanges": Rule(roles=OPERATOR_OR_AUDITOR, action="reading pooling changes",
                                 region=arg("region", default_scope=True), what="pooling changes"),
    "Query.imports": Rule(roles=OPERATOR_OR_AUDITOR, action="reading the history of imports",
                          filtered="only imports by callers inside the scope (the history's query)"),
    "Query.changes": Rule(roles=OPERATOR_OR_AUDITOR, action="reading changes", node=True, what="changes"),
    "Query._tierSummaries": Rule(filtered="each key's region checked against the scope (resolvers/internal.py)"),
    "Query._tierCall": INTERNAL,
    "Query._tierPools": Rule(filtered="only pools inside the scope (through Access.may)"),
    "Mutation.raisePoolingLevel": Rule(roles=("OPERATOR",), action="raisePoolingLevel", region=arg("input.region"),
                                       what="pools"),
    "Mutation.transferInsurance": Rule(roles=("OPERATOR",), action="transferInsurance", region=arg("input.to"),
                                       what="transfers"),
    "Mutation._tierPersonsChanged": Rule(roles=("NODE",), action="_tierPersonsChanged"),
    "Query.ranking": Rule(region=arg("region"), what="rankings"),
    "Query.fundReport": Rule(region=arg("region"), what="fund reports"),
    "Mutation.settleCentralAdjustment": Rule(roles=("OPERATOR",), action="settleCentralAdjustment", node=True,
                                             what="the central adjustment (it needs every province of this node)"),
    # Fund budgets (issue 16): read inside the scope; each step by its role over the pool's region.
    "Query.budget": Rule(region=budget_region, what="budgets"),
    "Query.compiledBudget": Rule(region=arg("region"), what="budgets"),
    "Query.budgetExecution": Rule(region=arg("region"), what="budgets"),
    "Mutation.startBudget": Rule(roles=("OPERATOR",), action="startBudget", region=pool_arg("input.poolId"),
                                 what="budgets"),
    "Mutation.editBudget": Rule(roles=("OPERATOR",), action="editBudget", region=pool_arg("input.poolId"),
                                what="budgets"),
    "Mutation.submitBudget": _budget_step("SUBMITTED", "submitBudget"),
    "Mutation.reviewBudget": _budget_step("REVIEWED", "reviewBudget"),
    "Mutation.approveBudget": _budget_step("APPROVED", "approveBudget"),
    "Mutation.returnBudget": Rule(roles=tuple(RETURNERS.values()), action="returnBudget", region=pool_arg("poolId"),
                                  what="budgets"),
    # Live answers run as the query field of the same name (tierfed/live.py), under its rule.
    **{f"Subscription.{name}": Rule(filtered=f"run as Query.{name}, with that field's rule")
       for name in ("nation", "region", "rollup", "pool", "employer", "centralAdjustment")},
    # Fields that read another region's records than the object they hang below.
    "Region.pool": Rule(region=root_region_in_subtree, result=lambda p: p.region_code, what="pools"),
}

# Every other field: its type's rule. Objects of these types are only reached through a
# field checked above (or are public directory data), so their fields are open.
TYPES: dict[str, Rule] = {name: OPEN for name in (
    "Region", "Agency", "Period", "Rollup", "SchemeTotals", "MonthTotals", "Pool", "FundAccount", "FundFlow",
    "Person", "PersonalStatement", "PersonSchemeYear", "Employer", "EmployerSchemeTotals", "InsuranceTransfer",
    "TransferredScheme", "CentralAdjustment", "ProvinceAdjustment", "DuplicateInsurance", "PiiRead",
    "PoolingChange", "SchemePooling", "PoolingLevelCount", "RaisePoolingLevelResult", "TransferInsuranceResult",
    "Change", "ChangeParticipant", "ImportRun", "_Service",
    "Budget", "BudgetBasis", "BudgetExecution", "BudgetGrowth", "BudgetLine", "BudgetPart", "BudgetStates",
    "BudgetStep", "CompiledBudget", "ExecutionLine", "ExecutionTotal", "SchemeBudget",
    "Ranking", "RankEntry", "FundReport", "FundReportScheme", "SettleCentralAdjustmentResult", "AdjustmentBooking")}


def rule_for(type_name: str, field_name: str) -> Rule | None:
    return FIELDS.get(f"{type_name}.{field_name}") or (TYPES.get(type_name)
                                                        if type_name not in ("Query", "Mutation", "Subscription")
                                                        else None)


def install(schema: GraphQLSchema) -> None:
    """Wrap every field whose rule checks something; once, at start."""
    for coordinate, rule in FIELDS.items():
        if not rule.checks:
            continue
        type_name, field_name = coordinate.split(".")
        gtype = schema.type_map[type_name]
        assert isinstance(gtype, GraphQLObjectType), coordinate
        fdef = gtype.fields[field_name]
        fdef.resolve = _checked(rule, fdef.resolve or default_field_resolver)


async def before(rule: Rule, root: Any, info: GraphQLResolveInfo, args: dict[str, Any]) -> None:
    """The checks of ``rule`` that need no answer: roles, this node's region, the region read."""
    access = info.context.access
    if rule.roles:
        access.any_role(rule.roles, rule.action)
    if rule.node:
        access.region(info.context.node.region, rule.what)
    if rule.region is not None:
        code = await rule.region(root, info, args)
        if code is not None:
            access.region(code, rule.what)


def _checked(rule: Rule, resolve: Any) -> Any:
    async def field(root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
        if is_forwarded(root):  # a child's answer: the child applied the rule
            return resolve(root, info, **args)
        access = info.context.access
        await before(rule, root, info, args)
        got = resolve(root, info, **args)
        if isinstance(got, Awaitable):
            got = await got
        if rule.result is not None and got is not None and not is_forwarded(got):
            access.region(rule.result(got), rule.what)
        return got

    return field
