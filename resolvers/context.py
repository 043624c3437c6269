"""Per-request context: the caller, the access chokepoint, the loaders and the remote calls.

Loaders are created per request (never at module level). ``Loaders`` are the
local, SQL-backed ones, shared by both passes of a federated query;
``summary`` combines local summaries with the children's and is made anew for
each pass, as the planning pass fills it with placeholders.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from aiodataloader import DataLoader
from strawberry.types import Info
from tierfed.tiers import budgetstore, changestore
from tierfed.tiers.employers import EmployerParts
from tierfed.tiers.figures import Summary
from tierfed.tiers.loading import Loader
from tierfed.tiers.node import Node
from tierfed.tiers.persons import PersonParts
from tierfed.tiers.remote import RemoteCalls
from tierfed.tiers.store import Store

from tierfed.auth import Access, Caller


def loader(batch: Callable[[list[Any]], Any]) -> DataLoader:
    async def load(keys: list[Any]) -> list[Any]:
        return await batch(keys)

    return Loader(load, max_batch_size=5000)


def by_key(fetch: Callable[[Sequence[Any]], Any], default: Any = None) -> DataLoader:
    async def batch(keys: list[Any]) -> list[Any]:
        found = await fetch(keys)
        return [found.get(k, default) if not isinstance(found, list) else found[i] for i, k in enumerate(keys)]

    return loader(batch)


LOADERS: dict[str, Callable[[Store], DataLoader]] = {
    "region": lambda s: by_key(s.regions),
    "agency": lambda s: by_key(s.agencies),
    "agencies_by_region": lambda s: by_key(s.agencies_by_region, []),
    "agencies_by_parent": lambda s: by_key(s.agencies_by_parent, []),
    "local_summary": lambda s: by_key(s.summaries),
    "pool": lambda s: by_key(s.pools),
    "pool_predecessors": lambda s: by_key(s.pools_by_successor, []),
    "pool_covering": lambda s: by_key(s.pools_covering),
    "pool_opening": lambda s: by_key(s.pool_openings),
    "pools_below": lambda s: by_key(s.pools_below, 0),
    "pool_chain": lambda s: by_key(lambda ids: changestore.chains(s.pool, list(ids)), []),
    "pool_remote_predecessors": lambda s: by_key(lambda ids: changestore.remote_predecessors_of(s.pool, list(ids)), []),
    "budget": lambda s: by_key(lambda keys: budgetstore.budgets(s.pool, list(keys))),
    "budget_steps": lambda s: by_key(lambda keys: budgetstore.steps(s.pool, list(keys))),
    "budget_parts": lambda s: by_key(lambda keys: budgetstore.parts(s.pool, list(keys))),
}


class Loaders:
    """The SQL-backed loaders of one request; each batch is one statement.

    A loader is made the first time a resolver asks for it: most operations use
    two or three of them (measured: +5-15 % dashboard requests/s).
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> DataLoader:
        make = LOADERS.get(name)
        if make is None:
            raise AttributeError(name)
        made = make(self._store)
        setattr(self, name, made)
        return made


class SummaryLoader(Loader):
    """Full summaries of (region, first, last): the node's own records plus every child's part."""

    def __init__(self, node: Node, local: DataLoader, remote: RemoteCalls) -> None:
        super().__init__(max_batch_size=5000)
        self.node = node
        self.local = local
        self.remote = remote

    async def batch_load_fn(self, keys: list[tuple[str, date, date, bool]]) -> list[Summary]:
        out: list[Summary | None] = [None] * len(keys)
        per_child: dict[str, tuple[Any, list[tuple[int, tuple[str, date, date, bool]]]]] = {}
        local_keys: list[tuple[int, tuple[str, date, date, bool]]] = []
        for i, key in enumerate(keys):
            region, first, last, compact = key
            owner = self.node.child_for(region)
            if owner is not None:
                per_child.setdefault(owner.name, (owner, []))[1].append((i, key))
                continue
            local_keys.append((i, key))
            for ch in self.node.children_within(region):
                per_child.setdefault(ch.name, (ch, []))[1].append((i, (ch.region, first, last, compact)))
        local = await self.local.load_many([k for _, k in local_keys])
        for (i, _), s in zip(local_keys, local):
            out[i] = s  # shared with the local loader's cache: merged into only through a copy below
        done: list[Summary] = []
        remote_idx = {i for _, items in per_child.values() for i, _ in items}
        for i, s in enumerate(out):
            if i in remote_idx:
                copy = Summary()
                if s is not None:
                    copy.merge(s)
                done.append(copy)
            else:
                done.append(s if s is not None else Summary())
        out = done  # type: ignore[assignment]
        for child, items in per_child.values():
            uniq = list(dict.fromkeys(k for _, k in items))
            answers = dict(zip(uniq, await self.remote.summaries(child, uniq)))
            for i, k in items:
                done[i].merge(answers[k])
        return done


@dataclass
class Context:
    node: Node
    store: Store
    caller: Caller
    access: Access
    loaders: Loaders
    remote: RemoteCalls
    summary: SummaryLoader
    persons: PersonParts
    employers: EmployerParts
    operation_name: str | None = None
    pii_reads: list[tuple[str, str]] = field(default_factory=list)
    runtime: Any = None


def ctx(info: Info) -> Context:
    return info.context  # type: ignore[no-any-return]
