"""Turning a field of the caller's operation into a piece a child node can answer.

The piece is the field as written (arguments, directives, the whole selection)
with fragment spreads inlined, so the child's answer has exactly the shape the
caller asked for; variables stay variables and travel with the request.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLResolveInfo, print_ast
from graphql.language import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    Node,
    SelectionNode,
    SelectionSetNode,
    VariableNode,
)


def _inline_opt(sel: SelectionSetNode | None, fragments: dict[str, FragmentDefinitionNode]) -> SelectionSetNode | None:
    return None if sel is None else _inline(sel, fragments)


def _inline(sel: SelectionSetNode, fragments: dict[str, FragmentDefinitionNode]) -> SelectionSetNode:
    out: list[SelectionNode] = []
    for s in sel.selections:
        if isinstance(s, FragmentSpreadNode):
            frag = fragments[s.name.value]
            out.append(InlineFragmentNode(type_condition=frag.type_condition, directives=s.directives,
                                          selection_set=_inline(frag.selection_set, fragments)))
        elif isinstance(s, InlineFragmentNode):
            out.append(InlineFragmentNode(type_condition=s.type_condition, directives=s.directives,
                                          selection_set=_inline(s.selection_set, fragments)))
        elif isinstance(s, FieldNode):
            out.append(FieldNode(alias=s.alias, name=s.name, arguments=s.arguments, directives=s.directives,
                                 selection_set=_inline_opt(s.selection_set, fragments)))
    return SelectionSetNode(selections=tuple(out))


def _variables(node: Any, acc: set[str]) -> None:
    if isinstance(node, VariableNode):
        acc.add(node.name.value)
        return
    if isinstance(node, Node):
        for k in node.keys:
            if k != "loc":
                _variables(getattr(node, k), acc)
    elif isinstance(node, (list, tuple)):
        for n in node:
            _variables(n, acc)


def field_piece(info: GraphQLResolveInfo, keep_alias: bool) -> tuple[str, set[str]]:
    """The current field as text, and the variables it uses.

    With ``keep_alias`` false (a root field the caller will alias) the field
    nodes merged under one response key are printed as one field without alias.
    """
    nodes = info.field_nodes
    frags = info.fragments
    if keep_alias:
        printed = [FieldNode(alias=n.alias, name=n.name, arguments=n.arguments, directives=n.directives,
                             selection_set=_inline_opt(n.selection_set, frags)) for n in nodes]
    else:
        sels: list[SelectionNode] = []
        for n in nodes:
            inl = _inline_opt(n.selection_set, frags)
            if inl is not None:
                sels.extend(inl.selections)
        first = nodes[0]
        printed = [FieldNode(name=first.name, arguments=first.arguments, directives=(),
                             selection_set=SelectionSetNode(selections=tuple(sels)) if sels else None)]
    used: set[str] = set()
    _variables(printed, used)
    return " ".join(print_ast(n).replace("\n", " ") for n in printed), used


def variable_definitions(info: GraphQLResolveInfo) -> dict[str, str]:
    return {d.variable.name.value: print_ast(d) for d in (info.operation.variable_definitions or ())}
