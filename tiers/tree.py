"""The division tree in memory: routing, scope and cost estimates read it without SQL.

Every node holds the whole tree (public and small: 3,210 regions). It is
loaded from the node's database at start and reloaded when an import of
regions sends a NOTIFY on ``tierfed_tree``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .vocabulary import TIER_NAMES

NATION = "000000"


@dataclass(frozen=True, slots=True)
class RegionRec:
    code: str
    name: str
    tier: int
    parent_code: str | None
    ancestors: tuple[str, ...]  # from the nation down, excluding the region


class Tree:
    def __init__(self, regions: Iterable[RegionRec]) -> None:
        self.by_code: dict[str, RegionRec] = {r.code: r for r in regions}
        kids: dict[str, list[str]] = {}
        for r in self.by_code.values():
            if r.parent_code is not None:
                kids.setdefault(r.parent_code, []).append(r.code)
        self.children: dict[str, tuple[str, ...]] = {k: tuple(sorted(v)) for k, v in kids.items()}
        self._size: dict[str, int] = {}

    def __contains__(self, code: object) -> bool:
        return code in self.by_code

    def __len__(self) -> int:
        return len(self.by_code)

    def get(self, code: str) -> RegionRec | None:
        return self.by_code.get(code)

    def kids(self, code: str) -> tuple[str, ...]:
        return self.children.get(code, ())

    def within(self, code: str, root: str) -> bool:
        """True when ``code`` is ``root`` or one of its descendants."""
        r = self.by_code.get(code)
        return r is not None and (code == root or root in r.ancestors)

    def subtree(self, code: str) -> Iterator[str]:
        stack = [code]
        while stack:
            c = stack.pop()
            yield c
            stack.extend(reversed(self.kids(c)))

    def size(self, code: str) -> int:
        """Number of regions in the subtree, the region included."""
        if code not in self._size:
            self._size[code] = 1 + sum(self.size(k) for k in self.kids(code))
        return self._size[code]

    def tier_name(self, code: str) -> str:
        return TIER_NAMES[self.by_code[code].tier]
