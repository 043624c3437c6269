"""Operation limits, checked on the parsed document before it is validated or run.

Depth, aliases and root fields are counted with fragments expanded, on every
path a query can take, inline fragments and spreads on unions (``_entities``)
included; introspection counts its aliases and one per field. The cost is an
estimate of how many fields the answer will hold: list fields multiply by
their expected length, and where the region is known (``rollup(region:)``,
``region(code:)``, ``nation``) the tree gives exact child counts, so a
``byChild``/``byMonth`` rollup over the nation costs far more than one over a
county: cost grows with subtree size times months.

The walk runs before validation because validation itself is not free: the
overlapping-fields rule compares the fields of a selection set pairwise, so a
selection set that repeats one field thousands of times would hold the event
loop for seconds. A repeated response key (other than ``__typename``) therefore
counts against ``max_aliases`` like an alias, and every field visited counts
towards ``max_cost``, which bounds the walk itself.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SchemaMetaFieldDef,
    SelectionSetNode,
    TypeMetaFieldDef,
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
# Lists whose length a ``limit`` argument bounds (with its default).
LIMITED = {("Query", "poolingChanges"): 50, ("Query", "piiReads"): 100}
# ... or a ``first`` argument (with its default).
FIRST = {("Query", "imports"): 50, ("Query", "changes"): 50, ("Query", "duplicateInsurance"): 100}
RANKING_FIRST = 20  # Query.ranking's default first: the length of its entries
META_FIELDS = {"__schema": SchemaMetaFieldDef, "__type": TypeMetaFieldDef}


def too_complex(message: str, **extra: Any) -> TierfedError:
    return TierfedError(Code.QUERY_TOO_COMPLEX, message, **extra)


@dataclass
class Ctx:
    regions: tuple[str, ...] | None = None
    months: int = 12
    schemes: int = 5
    first: int | None = None  # a ranking's first: the length of its entries


def _months(start: Any, end: Any) -> int | None:
    try:
        return len(codes.months(codes.month(start), codes.month(end)))
    except (ValueError, TypeError, AttributeError):
        return None


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

    def region_arg(self, node: FieldNode, name: str) -> str | None:
        code = self.arg(node, name)
        return code if isinstance(code, str) and code in self.tree else None

    def fields(self, parent: GraphQLNamedType | None, sel: SelectionSetNode,
               visited: set[str] | None = None) -> list[tuple[FieldNode, GraphQLNamedType | None]]:
        """The fields of a selection set with fragments expanded, each with the type it is selected on.

        As in execution, a fragment is expanded once per selection set: spreading it
        twice selects the same fields, and fragments spreading fragments cannot blow up.
        """
        visited = set() if visited is None else visited
        out: list[tuple[FieldNode, GraphQLNamedType | None]] = []
        for s in sel.selections:
            if isinstance(s, FieldNode):
                out.append((s, parent))
            elif isinstance(s, InlineFragmentNode):
                cond = self.schema.get_type(s.type_condition.name.value) if s.type_condition else parent
                out.extend(self.fields(cond, s.selection_set, visited))
            elif isinstance(s, FragmentSpreadNode):
                name = s.name.value
                frag = self.fragments.get(name)
                if frag is not None and name not in visited:
                    visited.add(name)
                    cond = self.schema.get_type(frag.type_condition.name.value)
                    out.extend(self.fields(cond, frag.selection_set, visited))
        return out

    def count_aliases(self, n: int) -> None:
        self.aliases += n
        if self.aliases > self.limits.max_aliases:
            raise too_complex(
                f"operation uses more than this node's limit of {self.limits.max_aliases} aliases "
                "(a field repeated in one selection set counts as an alias)", limit="max_aliases")

    def add_cost(self, n: int) -> None:
        self.cost += n
        if self.cost > self.limits.max_cost:
            raise too_complex(
                f"query would cost more than this node's limit of {self.limits.max_cost} "
                "(estimated fields in the answer): ask for fewer regions, months or nested byChild levels",
                limit="max_cost")

    def walk(self, parent: GraphQLNamedType | None, sel: SelectionSetNode, mult: int, depth: int,
             ctx: Ctx, meta: bool = False) -> None:
        if depth > self.limits.max_depth and not meta:
            raise too_complex(f"query is nested deeper than this node's limit of {self.limits.max_depth} levels",
                              limit="max_depth")
        self.depth = max(self.depth, depth)
        fields = self.fields(parent, sel)
        keys = Counter((f.alias or f.name).value for f, _ in fields)
        self.count_aliases(sum(1 for f, _ in fields if f.alias is not None)
                           + sum(n - 1 for k, n in keys.items() if k != "__typename"))
        for f, owner in fields:
            name = f.name.value
            self.add_cost(mult)
            if name == "_tierSummaries":
                self.add_cost(mult * self.summary_rows(f))
            if f.selection_set is None:
                continue
            fdef = META_FIELDS.get(name) if name.startswith("__") else \
                getattr(owner, "fields", {}).get(name)  # unions have no fields of their own
            if fdef is None:
                continue
            t, is_list = fdef.type, False
            while isinstance(t, (GraphQLNonNull, GraphQLList)):
                is_list = is_list or isinstance(t, GraphQLList)
                t = t.of_type
            if meta or name in META_FIELDS:
                # Introspection: graphql-core's MaxIntrospectionDepthRule bounds its nesting and
                # the answer is the schema, whatever the data; GraphiQL's own query nests 15
                # levels. Its fields count once each, and its aliases count.
                self.walk(t, f.selection_set, mult, depth + 1, Ctx(), meta=True)
                continue
            owner_name = owner.name if owner is not None else ""
            child_ctx, factor = self.step(owner_name, name, f, ctx, is_list)
            self.walk(t, f.selection_set, mult * factor, depth + 1, child_ctx)

    def summary_rows(self, f: FieldNode) -> int:
        """``_tierSummaries`` answers JSON rows per key and month (and scheme): count key-months.

        A parent's 120-month ``byChild`` rollup three levels deep over a large province
        asks for about 200 keys: 24,000, within the default. Counting schemes too would
        refuse what the parent itself allowed.
        """
        keys = self.arg(f, "keys")
        if not isinstance(keys, list):
            return MAX_FANOUT * 12
        return sum((_months(k.get("from"), k.get("to")) if isinstance(k, dict) else None) or 1 for k in keys)

    def _first(self, f: FieldNode, default: int) -> int:
        """A list's length as its ``first`` argument bounds it (the field refuses a bad one)."""
        first = self.arg(f, "first")
        return max(first, 1) if isinstance(first, int) and not isinstance(first, bool) else default

    def step(self, parent: str, name: str, f: FieldNode, ctx: Ctx, is_list: bool) -> tuple[Ctx, int]:
        if parent == "Query" and name == "rollup":
            period = self.arg(f, "period")
            months = _months(period.get("from"), period.get("to")) if isinstance(period, dict) else None
            schemes = self.arg(f, "schemes")
            code = self.region_arg(f, "region")
            return Ctx((code,) if code else None, max(months or 12, 1),
                       len(schemes) if isinstance(schemes, list) and schemes else 5), 1
        if parent == "Query" and name in ("region", "nation"):
            code = NATION if name == "nation" else self.region_arg(f, "code")
            return Ctx((code,) if code else None), 1
        if (parent, name) in (("Rollup", "byChild"), ("Region", "children")):
            if ctx.regions is None:
                return Ctx(None, ctx.months, ctx.schemes), MAX_FANOUT
            kids = tuple(k for r in ctx.regions for k in self.tree.kids(r))
            n = len(kids) // len(ctx.regions) if ctx.regions else 0
            return Ctx(kids, ctx.months, ctx.schemes), max(n, 1)
        if (parent, name) == ("Rollup", "byMonth"):
            return ctx, ctx.months
        if name == "totals":
            return ctx, ctx.schemes
        if (parent, name) in (("Rollup", "region"), ("Rollup", "byChild")):
            return ctx, 1
        if (parent, name) == ("Query", "ranking"):
            return Ctx(first=self._first(f, RANKING_FIRST)), 1
        if (parent, name) == ("Ranking", "entries"):
            return Ctx(), ctx.first or RANKING_FIRST
        if not is_list:
            return Ctx(None, ctx.months, ctx.schemes) if parent != "Rollup" else ctx, 1
        if (parent, name) == ("Query", "_entities"):
            reps = self.arg(f, "representations")
            return Ctx(), max(len(reps), 1) if isinstance(reps, list) else MAX_FANOUT
        if (parent, name) in LIMITED:
            limit = self.arg(f, "limit")
            return Ctx(), limit if isinstance(limit, int) and limit > 0 else LIMITED[(parent, name)]
        if (parent, name) in FIRST:
            return Ctx(), self._first(f, FIRST[(parent, name)])
        return Ctx(), FIXED_LENGTH.get((parent, name), 10)


def check(schema: GraphQLSchema, operation: OperationDefinitionNode, fragments: dict[str, FragmentDefinitionNode],
          variables: dict[str, Any], tree: Tree, limits: Limits) -> Analysis:
    """Raise QUERY_TOO_COMPLEX when the operation is over any limit; return the figures otherwise."""
    root = {"query": schema.query_type, "mutation": schema.mutation_type,
            "subscription": schema.subscription_type}.get(operation.operation.value)
    a = Analysis(schema, fragments, variables if isinstance(variables, dict) else {}, tree, limits)
    roots = a.fields(root, operation.selection_set)
    if len(roots) > limits.max_root_fields:
        raise too_complex(f"operation has {len(roots)} root fields, over this node's limit of "
                          f"{limits.max_root_fields}", limit="max_root_fields")
    a.walk(root, operation.selection_set, 1, 1, Ctx())
    return a
