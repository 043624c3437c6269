"""``python -m tests.typecheck``: mypy over the ``tierfed`` package as it is installed.

The package maps folders of this repository into one package (``tierfed.schema`` is
``schema/``, and so on: ``[tool.setuptools] package-dir`` in pyproject.toml). An editable
install serves that mapping through an import hook, which mypy cannot follow: run on the
folders, mypy would see every ``tierfed.schema``/``resolvers``/``tiers`` import as unknown
(``Any``) and check much less than it seems. So this builds the package's tree of symbolic
links (``build/typecheck``), from the same mapping, and checks it as one package.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / "build" / "typecheck"  # ignored by git; kept between runs so mypy's cache holds


def link_tree(into: Path) -> Path:
    """``into/tierfed``: the installed package's layout, made of links to this repository's files."""
    mapping: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for package, folder in sorted(mapping.items()):
        target = into.joinpath(*package.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for f in (ROOT / folder).glob("*.py"):
            (target / f.name).symlink_to(f)
    return into / "tierfed"


def main() -> int:
    shutil.rmtree(TREE / "tierfed", ignore_errors=True)
    link_tree(TREE)
    r = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
                        "--cache-dir", str(TREE / ".mypy_cache"), "-p", "tierfed"],
                       cwd=TREE, env={"MYPYPATH": str(TREE), "PATH": "/usr/bin:/bin"})
    return r.returncode


if __name__ == "__main__":
    raise SystemExit(main())
