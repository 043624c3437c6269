"""Node configurations the benchmarks write as TOML: a single national node, or the
demo topology (a central node and the demo's three province nodes)."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierfed.demo import PROVINCE_NODES

from .cluster import BENCH_DIR

NATION = "000000"
SECRET = secrets.token_urlsafe(32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class NodeSpec:
    name: str
    region: str
    database_url: str
    port: int = 0
    children: list[NodeSpec] = field(default_factory=list)
    extra_toml: str = ""  # further tables, e.g. [telemetry]
    # [cache].max_bytes: 0 (the answer cache off) unless a case measures it, so the cases
    # from before the cache keep measuring answers computed on every request.
    cache_bytes: int = 0
    # [parent].url: the node this one pushes its version to (tiers.links); "" for none.
    parent_url: str = ""
    link_lease_s: float | None = None  # [node].link_lease_s, the default when None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    def toml(self) -> str:
        def q(s: str) -> str:
            return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

        lines = [
            "[node]",
            f"name = {q(self.name)}",
            f"region = {q(self.region)}",
            f"listen = {q(f'127.0.0.1:{self.port or 1}')}",
            f"database_url = {q(self.database_url)}",
            "check_children_at_start = false",
            *([f"link_lease_s = {self.link_lease_s}"] if self.link_lease_s is not None else []),
            "",
            "[auth]",
            f"jwt_secret = {q(SECRET)}",
            "",
            "[cache]",
            f"max_bytes = {self.cache_bytes}",
            "",
        ]
        for c in self.children:
            lines += ["[[children]]", f"name = {q(c.name)}", f"region = {q(c.region)}",
                      f"url = {q(c.url)}", "timeout_s = 30", ""]
        if self.parent_url:
            lines += ["[parent]", 'name = "parent"', f"url = {q(self.parent_url)}", "timeout_s = 10", ""]
        return "\n".join(lines) + self.extra_toml

    def write(self, run_dir: Path | None = None) -> Path:
        d = run_dir or (BENCH_DIR / "run")
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"{self.name}.toml"
        p.write_text(self.toml(), "utf-8")
        return p


def provinces() -> list[tuple[str, str]]:
    """(node name, region) of the demo's province nodes."""
    return [(name, region) for name, region, _ in PROVINCE_NODES]


def split_for(tree: Any) -> Callable[[str], str]:
    """The demo's split of records: the province node holding the region, else 'central'."""
    owner: dict[str, str] = {}
    for name, region in provinces():
        for code in tree.subtree(region):
            owner[code] = name

    def split(region: str) -> str:
        return owner.get(region, "central")

    return split
