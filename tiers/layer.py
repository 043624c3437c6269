"""The federation layer: fields answered by the node that holds their region, and the
reading of what a child answered, installed once on the executable schema.

One declaration (a ``Held`` per field, listed in ``resolvers/held.py``) says which
fields are answered where a region's records live, and how to find that region from
the field's parent object and arguments. ``install`` wraps those fields: when a child
node holds the region, the field is cut from the caller's operation (its syntax tree,
fragments inlined, printed with ``print_ast``: see ``tiers.forward``) and asked of that
child, grouped with everything else the operation needs from it into one request
(``tiers.remote``); otherwise the field's own resolver runs, on this node's records.

What a child answers is JSON shaped as the caller asked. The fields of every type
reachable from a held field read it by response key, so resolvers never see it: they
are only ever called for objects this node holds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    GraphQLUnionType,
    default_field_resolver,
    get_named_type,
    is_leaf_type,
)

from tierfed.errors import Code, TierfedError

from .forward import entity_piece, field_piece, field_piece_as
from .remote import Forwarded, Piece, wrap


class AnyChild:
    """The region is not known on this node: every child is asked, the first answer wins."""


ANY_CHILD = AnyChild()
Where = Callable[[Any, GraphQLResolveInfo, dict[str, Any]], Awaitable["str | AnyChild | None"]]


@dataclass(frozen=True)
class Held:
    """A field answered by the node holding a region.

    ``where(parent, info, args)`` names the region (or ``ANY_CHILD``, or None for "answer
    here"); it runs before the resolver, so it also checks the arguments that name the
    region. ``on_region`` says the field hangs below that region's object and is asked as
    one of its fields (many regions' fields travel as one ``_entities`` call), or as the
    region's field ``as_region_field`` names; otherwise the field is a root field, asked as
    it is written.
    """

    where: Where
    on_region: bool = False
    # A field of another type than Region that stands for a field of the region's object:
    # ``as_region_field(parent, args)`` gives that field's name and arguments, and the child
    # is asked for it (with the caller's selection) as one of the region's fields.
    as_region_field: Callable[[Any, dict[str, Any]], tuple[str, dict[str, Any]]] | None = None
    # The child refusing the caller (FORBIDDEN: the answer lies outside the caller's scope)
    # answers null, as the field's own resolver does for regions this node holds.
    refused_as_null: bool = False
    # For a field that may not be null: its answer when the child holding the region does not
    # answer (``unavailable(parent, info, args, region)``), incomplete and saying so, so that
    # the rest of the operation's answer stands (TIER_UNAVAILABLE names the child all the same).
    unavailable: Callable[[Any, Any, dict[str, Any], str], Any] | None = None


Load = Callable[[Any, Any], Awaitable[Any]]  # (parent, info): graphql-core's info, or strawberry's around it


def install(schema: GraphQLSchema, held: Mapping[str, Held], deferred: Mapping[str, Load] | None = None,
            entities: Mapping[str, tuple[str, str]] | None = None) -> None:
    """Wrap the held fields and the fields of every type a child's answer can fill, once; and
    the ``deferred`` fields: figures computed from what they load (``deferred[field]``), which
    never ask a child otherwise. The planning pass only loads (so that what comes from children
    is asked for) and computes nothing; the operation then runs a second time.

    ``entities`` routes a gateway's ``_entities``: a reference to an entity of a type listed
    there (type name: the held root field that finds it, and its key) is that field's
    answer, asked of the child holding it when a child does (``_held_entities``)."""
    query = schema.query_type
    if entities and query is not None and "_entities" in query.fields:
        fdef = query.fields["_entities"]
        fdef.resolve = _held_entities(fdef.resolve or default_field_resolver, held, entities)
    for coordinate, load in (deferred or {}).items():
        fdef = _field(schema, coordinate)
        fdef.resolve = _deferred(fdef.resolve or default_field_resolver, load, _is_list(fdef.type))
    for coordinate, decl in held.items():
        type_name, field_name = coordinate.split(".")
        gtype = schema.type_map[type_name]
        assert isinstance(gtype, GraphQLObjectType), coordinate
        fdef = gtype.fields[field_name]
        fdef.resolve = _held(decl, fdef.resolve or default_field_resolver, fdef)
    for gtype in _reachable(schema, held):
        for fdef in gtype.fields.values():
            fdef.resolve = _reading(fdef.resolve or default_field_resolver, is_leaf_type(get_named_type(fdef.type)))
        if gtype.is_type_of is not None:
            gtype.is_type_of = _forwarded_or(gtype.name, gtype.is_type_of)


def _reachable(schema: GraphQLSchema, held: Mapping[str, Held]) -> list[GraphQLObjectType]:
    """The object types whose objects can come from a child's answer."""
    todo = [get_named_type(_field(schema, c).type) for c in held]
    seen: dict[str, GraphQLObjectType] = {}
    while todo:
        t = todo.pop()
        if isinstance(t, (GraphQLInterfaceType, GraphQLUnionType)):
            todo.extend(schema.get_possible_types(t))
            continue
        if not isinstance(t, GraphQLObjectType) or t.name in seen:
            continue
        seen[t.name] = t
        todo.extend(get_named_type(f.type) for f in t.fields.values())
    return list(seen.values())


def _field(schema: GraphQLSchema, coordinate: str) -> GraphQLField:
    type_name, field_name = coordinate.split(".")
    gtype = schema.type_map[type_name]
    assert isinstance(gtype, GraphQLObjectType), coordinate
    return gtype.fields[field_name]


def is_forwarded(value: Any) -> bool:
    """Whether ``value`` is (part of) a child's answer, read by response key."""
    return type(value) is Forwarded


def _reading(resolve: Any, leaf: bool = False) -> Any:
    """``leaf``: a scalar or enum field, whose value is kept as the child sent it (a JSON
    scalar's object is data, not an object to read by response key)."""

    def field(root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
        if type(root) is Forwarded:
            value, errors = root.read(str(info.path.key), info)
            return value if leaf else wrap(value, errors)
        return resolve(root, info, **args)

    return field


def _deferred(resolve: Any, load: Load, is_list: bool) -> Any:
    async def field(root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
        remote = info.context.remote
        if remote.planning and type(root) is not Forwarded:
            remote.deferred = True
            await load(root, info)
            return [] if is_list else None
        got = resolve(root, info, **args)
        return await got if isinstance(got, Awaitable) else got

    return field


def _forwarded_or(type_name: str, is_type_of: Any) -> Any:
    def check(obj: Any, info: GraphQLResolveInfo) -> Any:
        if type(obj) is Forwarded:
            return obj.typename is None or obj.typename == type_name
        return is_type_of(obj, info)

    return check


def _held_entities(resolve: Any, held: Mapping[str, Held], entities: Mapping[str, tuple[str, str]]) -> Any:
    """``_entities``: the references this node holds resolved as before (each type's reference
    resolver); a reference whose region a child holds is that child's answer to the held
    root field that finds it, with the caller's selection on its type, under the caller's
    token (the child applies the caller's scope). A reference the held field's ``where``
    refuses (a malformed key) is left to the reference resolver, which words it."""

    async def field(root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
        reps = args.get("representations") or []
        c = info.context
        routed: dict[int, tuple[Any, str, str, dict[str, Any]]] = {}
        for i, rep in enumerate(reps):
            typename = rep.get("__typename") if isinstance(rep, dict) else None
            if not isinstance(typename, str) or typename not in entities:
                continue
            coordinate, key = entities[typename]
            if set(rep) != {"__typename", key} or not isinstance(rep[key], str):
                continue
            try:
                where = await held[coordinate].where(None, info, {key: rep[key]})
            except TierfedError:
                continue
            owner = c.node.child_for(where) if isinstance(where, str) else None
            if owner is not None:
                routed[i] = (owner, typename, coordinate.split(".")[1], {key: rep[key]})
        if not routed:
            got = resolve(root, info, **args)
            return await got if isinstance(got, Awaitable) else got
        here = resolve(root, info, **{**args, "representations": [r for i, r in enumerate(reps) if i not in routed]})
        rest = iter(await here if isinstance(here, Awaitable) else here)
        return [_entity(c, info, *routed[i]) if i in routed else next(rest) for i in range(len(reps))]

    return field


async def _entity(c: Any, info: GraphQLResolveInfo, child: Any, type_name: str, name: str,
                  args: dict[str, Any]) -> Any:
    text, used = entity_piece(info, type_name, name, args)
    got = await c.remote.forward(child, Piece(None, text), used)
    if type(got) is Forwarded:
        got.typename = type_name
    return got


def _held(decl: Held, resolve: Any, fdef: GraphQLField) -> Any:
    is_list = _is_list(fdef.type)

    async def field(root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
        if type(root) is Forwarded:
            return wrap(*root.read(str(info.path.key), info))
        where = await decl.where(root, info, args)
        c = info.context
        if isinstance(where, AnyChild):
            for child in c.node.children:
                got = await _ask(c, child, info, None, is_list)
                if got is not None:
                    return got
            return None
        owner = c.node.child_for(where) if where is not None else None
        if owner is None:
            got = resolve(root, info, **args)
            return await got if isinstance(got, Awaitable) else got
        as_field = decl.as_region_field(root, args) if decl.as_region_field is not None else None
        try:
            return await _ask(c, owner, info, where if decl.on_region else None, is_list, as_field)
        except TierfedError as e:
            if decl.refused_as_null and e.code is Code.FORBIDDEN:
                return None
            if decl.unavailable is not None and where is not None and e.code is Code.TIER_UNAVAILABLE:
                return decl.unavailable(root, info, args, where)
            raise

    return field


async def _ask(c: Any, child: Any, info: GraphQLResolveInfo, on_region: str | None, is_list: bool,
               as_field: tuple[str, dict[str, Any]] | None = None) -> Any:
    """The child's answer to the current field, as objects the reading fields understand;
    while the operation is being planned, a placeholder of the field's shape."""
    if as_field is not None:
        text, used = field_piece_as(info, "Region", *as_field)
    else:
        text, used = field_piece(info, keep_alias=on_region is not None)
    got = await c.remote.forward(child, Piece(on_region, text), used, info if on_region is None else None)
    if got is None:
        return [] if is_list and c.remote.planning else None
    if on_region is None:
        return got
    assert isinstance(got, Forwarded)
    return wrap(*got.read(str(info.path.key), info))


def _is_list(t: Any) -> bool:
    if isinstance(t, GraphQLNonNull):
        t = t.of_type
    return isinstance(t, GraphQLList)
