"""Operation limits, checked on the parsed document before anything runs.

Depth, aliases and root fields are counted with fragments expanded. The cost
is an estimate of how many fields the answer will hold: list fields multiply
by their expected length, and where the region is known (``rollup(region:)``,
``region(code:)``, ``nation``) the tree gives exact child counts, so a
``byChild``/``byMonth`` rollup over the nation costs far more than one over a
county: cost grows with subtree size times months.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    value_from_ast_untyped,
)

from . import codes
from .config import Limits
from .errors import Code, TierfedError
from .tiers.tree import NATION, Tree

MAX_FANOUT = 40
FIXED_LENGTH = {
    ("Rollup", "totals"): 5, ("MonthTotals", "totals"): 5, ("Region", "ancestors"): 3,
    ("Region", "agencies"): 2, ("Agency", "children"): 30, ("PersonalStatement", "schemes"): 5,
    ("CentralAdjustment", "provinces"): 31, ("Rollup", "missing"): 4, ("CentralAdjustment", "missing"): 4,
    ("Pool", "predecessors"): 30, ("Query", "poolingOverview"): 5, ("SchemePooling", "levels"): 4,
    ("PoolingLevelCount", "regions"): 100,
}


def too_complex(message: str, **extra: Any) -> TierfedError:
    return TierfedError(Code.QUERY_TOO_COMPLEX, message, **extra)


@dataclass
class Ctx:
    regions: tuple[str, ...] | None = None
    months: int = 12
    schemes: int = 5


class Analysis:
    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode],
                 variables: dict[str, Any], tree: Tree, limits: Limits) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.tree = tree
        self.limits = limits
        self.aliases = 0
        self.depth = 0
        self.cost = 0

    def arg(self, node: FieldNode, name: str) -> Any:
        for a in node.arguments or ():
            if a.name.value == name:
                try:
                    return value_from_ast_untyped(a.value, self.variables)
                except Exception:  # noqa: BLE001 - a malformed literal fails validation later
                    return None
        return None

    def fields(self, sel: SelectionSetNode, seen: frozenset[str] = frozenset()) -> list[FieldNode]:
        out: list[FieldNode] = []
        for s in sel.selections:
            if isinstance(s, FieldNode):
                out.append(s)
            elif isinstance(s, InlineFragmentNode):
                out.extend(self.fields(s.selection_set, seen))
            elif isinstance(s, FragmentSpreadNode):
                name = s.name.value
                frag = self.fragments.get(name)
                if frag is not None and name not in seen:  # cycles fail validation; do not loop here
                    out.extend(self.fields(frag.selection_set, seen | {name}))
        return out

    def walk(self, parent: GraphQLObjectType, sel: SelectionSetNode, mult: int, depth: int, ctx: Ctx) -> None:
        if depth > self.limits.max_depth:
            raise too_complex(f"query is nested deeper than this node's limit of {self.limits.max_depth} levels",
                              limit="max_depth")
        self.depth = max(self.depth, depth)
        for f in self.fields(sel):
            if f.alias is not None:
                self.aliases += 1
            name = f.name.value
            self.cost += mult
            if self.cost > self.limits.max_cost:
                raise too_complex(
                    f"query would cost more than this node's limit of {self.limits.max_cost} "
                    "(estimated fields in the answer): ask for fewer regions, months or nested byChild levels",
                    limit="max_cost")
            if f.selection_set is None or name.startswith("__"):
                continue
            fdef = parent.fields.get(name)
            if fdef is None:
                continue
            t, is_list = fdef.type, False
            while isinstance(t, (GraphQLNonNull, GraphQLList)):
                is_list = is_list or isinstance(t, GraphQLList)
                t = t.of_type
            if not isinstance(t, GraphQLObjectType):
                continue
            child_ctx, factor = self.step(parent.name, name, f, ctx, is_list)
            self.walk(t, f.selection_set, mult * factor, depth + 1, child_ctx)

    def step(self, parent: str, name: str, f: FieldNode, ctx: Ctx, is_list: bool) -> tuple[Ctx, int]:
        if parent == "Query" and name == "rollup":
            code = self.arg(f, "region")
            period = self.arg(f, "period") or {}
            months = 12
            try:
                months = len(codes.months(codes.month(period.get("from")), codes.month(period.get("to"))))
            except (ValueError, TypeError, AttributeError):
                pass
            schemes = self.arg(f, "schemes")
            return Ctx((code,) if code in self.tree else None, max(months, 1),
                       len(schemes) if isinstance(schemes, list) and schemes else 5), 1
        if parent == "Query" and name in ("region", "nation"):
            code = NATION if name == "nation" else self.arg(f, "code")
            return Ctx((code,) if code in self.tree else None), 1
        if (parent, name) in (("Rollup", "byChild"), ("Region", "children")):
            if ctx.regions is None:
                return Ctx(None, ctx.months, ctx.schemes), MAX_FANOUT
            kids = tuple(k for r in ctx.regions for k in self.tree.kids(r))
            n = max(len(kids), 1) // max(len(ctx.regions), 1) if ctx.regions else MAX_FANOUT
            return Ctx(kids, ctx.months, ctx.schemes), max(n, 1)
        if (parent, name) == ("Rollup", "byMonth"):
            return ctx, ctx.months
        if name == "totals":
            return ctx, ctx.schemes
        if (parent, name) in (("Rollup", "region"), ("Rollup", "byChild")):
            return ctx, 1
        if not is_list:
            return Ctx(None, ctx.months, ctx.schemes) if parent != "Rollup" else ctx, 1
        if (parent, name) == ("Query", "_tierSummaries"):
            keys = self.arg(f, "keys")
            return Ctx(), len(keys) if isinstance(keys, list) else MAX_FANOUT
        if (parent, name) == ("Query", "poolingChanges"):
            limit = self.arg(f, "limit")
            return Ctx(), limit if isinstance(limit, int) and limit > 0 else 50
        return Ctx(), FIXED_LENGTH.get((parent, name), 10)


def check(schema: GraphQLSchema, operation: OperationDefinitionNode, fragments: dict[str, FragmentDefinitionNode],
          variables: dict[str, Any], tree: Tree, limits: Limits) -> Analysis:
    """Raise QUERY_TOO_COMPLEX when the operation is over any limit; return the figures otherwise."""
    root = {"query": schema.query_type, "mutation": schema.mutation_type}.get(operation.operation.value)
    a = Analysis(schema, fragments, variables, tree, limits)
    roots = a.fields(operation.selection_set)
    if len(roots) > limits.max_root_fields:
        raise too_complex(f"operation has {len(roots)} root fields, over this node's limit of "
                          f"{limits.max_root_fields}", limit="max_root_fields")
    if root is not None:
        a.walk(root, operation.selection_set, 1, 1, Ctx())
    if a.aliases > limits.max_aliases:
        raise too_complex(f"operation uses {a.aliases} aliases, over this node's limit of {limits.max_aliases}",
                          limit="max_aliases")
    return a
