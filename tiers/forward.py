"""Turning a field of the caller's operation into a piece a child node can answer.

The piece is the field as written (arguments, directives, the whole selection)
with fragment spreads inlined, so the child's answer has exactly the shape the
caller asked for; variables stay variables and travel with the request.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLEnumType, GraphQLField, GraphQLObjectType, GraphQLResolveInfo, get_named_type, print_ast
from graphql.language import (
    ArgumentNode,
    BooleanValueNode,
    EnumValueNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    NameNode,
    Node,
    SelectionNode,
    SelectionSetNode,
    StringValueNode,
    ValueNode,
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
        first = nodes[0]
        printed = [FieldNode(name=first.name, arguments=first.arguments, directives=(),
                             selection_set=_merged_selection(info))]
    used: set[str] = set()
    _variables(printed, used)
    return " ".join(print_ast(n).replace("\n", " ") for n in printed), used


def _merged_selection(info: GraphQLResolveInfo) -> SelectionSetNode | None:
    sels: list[SelectionNode] = []
    for n in info.field_nodes:
        inl = _inline_opt(n.selection_set, info.fragments)
        if inl is not None:
            sels.extend(inl.selections)
    return SelectionSetNode(selections=tuple(sels)) if sels else None


def _literal(value: Any, gtype: Any) -> ValueNode:
    if isinstance(get_named_type(gtype), GraphQLEnumType):
        return EnumValueNode(value=str(value))
    if isinstance(value, bool):
        return BooleanValueNode(value=value)
    if isinstance(value, int):
        return IntValueNode(value=str(value))
    return StringValueNode(value=str(value))


def _arguments(fdef: GraphQLField, args: dict[str, Any]) -> tuple[ArgumentNode, ...]:
    """``args`` as literal arguments of the field ``fdef`` (each typed as the field declares it)."""
    return tuple(ArgumentNode(name=NameNode(value=k), value=_literal(v, fdef.args[k].type)) for k, v in args.items())


def _printed(node: FieldNode) -> tuple[str, set[str]]:
    """A field built here as one line of text, and the variables it uses."""
    used: set[str] = set()
    _variables(node, used)
    return print_ast(node).replace("\n", " "), used


def field_piece_as(info: GraphQLResolveInfo, type_name: str, name: str, args: dict[str, Any]) -> tuple[str, set[str]]:
    """The current field's selection asked as field ``name`` of ``type_name`` with the values
    ``args`` (checked against that field's arguments), under the current field's response key;
    and the variables the selection uses."""
    gtype = info.schema.type_map[type_name]
    assert isinstance(gtype, GraphQLObjectType), type_name
    node = FieldNode(alias=NameNode(value=str(info.path.key)), name=NameNode(value=name),
                     arguments=_arguments(gtype.fields[name], args), directives=(),
                     selection_set=_merged_selection(info))
    return _printed(node)


def entity_piece(info: GraphQLResolveInfo, type_name: str, name: str, args: dict[str, Any]) -> tuple[str, set[str]]:
    """A gateway's ``_entities`` selection for one entity of ``type_name``, asked as the root
    field ``name`` with the values ``args`` (the field that finds such an entity by its key):
    the fragments on that type (or on no type, or on the entities' union) and the fields beside
    them, fragments inlined; and the variables it uses."""
    query = info.schema.query_type
    assert query is not None
    kept: list[SelectionNode] = []
    for s in (_merged_selection(info) or SelectionSetNode(selections=())).selections:
        if isinstance(s, InlineFragmentNode) and s.type_condition is not None \
                and s.type_condition.name.value not in (type_name, get_named_type(info.return_type).name):
            continue  # another type's fragment: not this entity's
        kept.append(s)
    node = FieldNode(name=NameNode(value=name), arguments=_arguments(query.fields[name], args), directives=(),
                     selection_set=SelectionSetNode(selections=tuple(kept)))
    return _printed(node)


def variable_definitions(info: GraphQLResolveInfo) -> dict[str, str]:
    return {d.variable.name.value: print_ast(d) for d in (info.operation.variable_definitions or ())}
