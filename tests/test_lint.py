"""The code stays ruff- and mypy-clean (configured in pyproject.toml)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("tool, args", [
    ("ruff", ["check", *(d for d in ("schema", "resolvers", "tiers", "tierfed", "migrations", "tests", "bench")
                         if (ROOT / d).is_dir())]),
    ("mypy", ["typecheck"]),  # run as tests/typecheck.py says: over the package as installed
])
def test_clean(tool: str, args: list[str]) -> None:
    exe = Path(sys.executable).with_name(tool)
    if not exe.exists() and shutil.which(tool) is None:
        # CI installs the test extras: a missing linter there is a broken set-up, not a skip.
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is not installed in CI: `pip install -e '.[test]'` should bring it")
        pytest.skip(f"{tool} is not installed (it comes with `pip install -e '.[test]'`)")
    command = [sys.executable, "-m", "tests.typecheck"] if args == ["typecheck"] else \
        [str(exe if exe.exists() else tool), *args]
    r = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
