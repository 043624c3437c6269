"""A node as data: its region, the children holding parts of its subtree, and the
one place that decides where a region's records live."""

from __future__ import annotations

from dataclasses import dataclass

from tierfed.config import NodeConfig
from tierfed.errors import UserError

from .tree import Tree


@dataclass(frozen=True)
class Child:
    name: str
    region: str
    url: str
    timeout_s: float


class Node:
    """Routing over the tree: local, or which child holds a region."""

    def __init__(self, cfg: NodeConfig, tree: Tree) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.region = cfg.region
        self.tree = tree
        # This node's data version read just before the tree was loaded (tiers.versions): part of
        # the version answers are filed under, so no answer outlives the tree it was computed with.
        self.tree_version = 0
        self.children = [Child(c.name or c.region, c.region, c.url, c.timeout_s) for c in cfg.children]
        check_topology(cfg, tree)
        self._owner: dict[str, Child] = {}
        for ch in self.children:
            for code in tree.subtree(ch.region):
                self._owner[code] = ch

    def in_subtree(self, code: str) -> bool:
        return self.tree.within(code, self.region)

    def child_for(self, code: str) -> Child | None:
        """The child node that holds ``code``'s records, or None when this node does."""
        return self._owner.get(code)

    def children_within(self, code: str) -> list[Child]:
        """Children whose region lies strictly inside ``code``'s subtree (``code`` held here)."""
        return [c for c in self.children if c.region != code and self.tree.within(c.region, code)]

    def holds_whole(self, code: str) -> bool:
        """True when this node holds every record of ``code``'s subtree."""
        return self.in_subtree(code) and self.child_for(code) is None and not self.children_within(code)

    def provinces(self) -> list[str]:
        """The provinces this node answers for, in code order."""
        root = self.tree.by_code[self.region]
        if root.tier == 0:
            return [c for c in self.tree.kids(self.region) if self.tree.by_code[c].tier == 1]
        return [self.region] if root.tier == 1 else []


def check_topology(cfg: NodeConfig, tree: Tree) -> None:
    """Children must be known regions strictly inside the node's subtree, without overlaps."""
    if cfg.region not in tree:
        raise UserError(f"config [node].region {cfg.region} names no region in the division tree")
    seen: dict[str, str] = {}
    for c in cfg.children:
        if c.region not in tree:
            raise UserError(f"config [[children]] {c.name}: region {c.region} names no region in the division tree")
        if c.region == cfg.region or not tree.within(c.region, cfg.region):
            raise UserError(
                f"config [[children]] {c.name}: region {c.region} is outside this node's subtree {cfg.region}")
        if c.region in seen:
            raise UserError(f"config [[children]]: region {c.region} is listed twice")
        for other in seen:
            if tree.within(c.region, other) or tree.within(other, c.region):
                raise UserError(f"config [[children]]: regions {other} and {c.region} overlap")
        seen[c.region] = c.name
    urls = [c.url for c in cfg.children]
    dup = {u for u in urls if urls.count(u) > 1}
    if dup:
        raise UserError(f"config [[children]]: url {sorted(dup)[0]} is listed twice")
