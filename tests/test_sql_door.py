"""One door for SQL: SQL text lives only in the stores (``*store.py``), the migration runner
(``tierfed/db.py``) and the embedded server's set-up (``tierfed/embedded.py``); everything
else asks them for typed records."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SQL = re.compile(r"(?is)\b(select\b.+\bfrom\b|insert\s+into\b|update\s+\w+\s+set\b|delete\s+from\b|"
                 r"create\s+(table|index|temp)|alter\s+table|truncate\s|with\s+recursive\b|"
                 r"select\s+(\$|\d|pg_|set_config|current_setting|txid|now\(\)|true\b|exists\b))")
DOORS = ("tierfed/db.py", "tierfed/embedded.py")


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def _text(node: ast.AST) -> str:
    """A string literal's text; an f-string's literal parts with its fields as ``{}``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "{}"
                       for v in node.values)
    return ""


def sql_outside_the_stores() -> list[str]:
    found = []
    for folder in ("tierfed", "tiers", "resolvers", "schema"):
        for p in sorted((ROOT / folder).rglob("*.py")):
            rel = p.relative_to(ROOT).as_posix()
            if rel.endswith("store.py") or rel in DOORS:
                continue
            tree = ast.parse(p.read_text(encoding="utf-8"))
            docs = _docstrings(tree)
            found += [f"{rel}:{n.lineno}" for n in ast.walk(tree) if id(n) not in docs and SQL.search(_text(n))]
    return found


def test_sql_lives_in_the_stores() -> None:
    found = sql_outside_the_stores()
    assert not found, f"SQL outside the stores (move it into a *store.py that returns typed records): {found}"


def test_the_check_finds_sql() -> None:
    """The scan recognises the statements the stores hold (so an empty finding means something)."""
    store = (ROOT / "tiers" / "store.py").read_text(encoding="utf-8")
    consts = [n.value for n in ast.walk(ast.parse(store)) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    assert sum(1 for c in consts if SQL.search(c)) >= 10
    assert SQL.search(_text(ast.parse('f"select {cols} from pool p where p.id = any($1)"').body[0].value))  # type: ignore[attr-defined]
