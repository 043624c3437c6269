"""The frontend recipe, run as documented: GraphQL Code Generator makes TypeScript types
from ``schema.graphql`` and the dashboard's operations, and ``tsc --strict`` compiles code
that uses them (and refuses code that reads a field the operation did not ask for).
Persisted operations in tierfed's and Apollo's format are served by a real node.

The npm pieces live in ``tests/codegen/`` (``package.json`` and its lock), installed with
``npm ci`` when missing, as ``tests/gateway/`` is; skipped only without node/npm or network.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import node_client
from tests.test_apollo_gateway import NETWORK_ERRORS

CODEGEN = Path(__file__).parent / "codegen"
ROOT = CODEGEN.parent.parent
OPERATIONS = ROOT / "dashboard" / "operations.graphql"
PACKAGES = ("@graphql-codegen/cli", "@graphql-codegen/typescript-operations", "graphql", "typescript")


@pytest.fixture(scope="module")
def node() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node and npm are needed for the codegen test and are not on PATH")
    nm = CODEGEN / "node_modules"
    if all((nm / p / "package.json").is_file() for p in PACKAGES):
        return node
    try:
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=CODEGEN,
                              capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.skip("npm ci in tests/codegen did not finish within 300 s (no network?)")
    if done.returncode != 0:
        if NETWORK_ERRORS.search(done.stdout + done.stderr):
            pytest.skip("npm ci in tests/codegen failed: the npm registry is not reachable")
        pytest.fail(f"npm ci in tests/codegen failed:\n{(done.stdout + done.stderr)[-4000:]}")
    return node


def test_operations_file_is_what_the_dashboard_sends(node: str) -> None:
    done = subprocess.run([node, "operations.mjs"], cwd=CODEGEN, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert OPERATIONS.read_text("utf-8") == done.stdout, \
        "regenerate: node tests/codegen/operations.mjs > dashboard/operations.graphql"


@pytest.mark.slow
def test_codegen_types_compile_and_catch_mistakes(node: str, tmp_path: Path) -> None:
    bin_ = CODEGEN / "node_modules" / ".bin"
    generated = CODEGEN / "generated" / "graphql.ts"
    generated.unlink(missing_ok=True)
    done = subprocess.run([str(bin_ / "graphql-codegen"), "--config", "codegen.yml"], cwd=CODEGEN,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    ts = generated.read_text("utf-8")
    for name in ("DashboardQuery", "DashboardQueryVariables", "RegionDirectoryQuery", "PoolHistoryQuery", "PersonQuery"):
        assert f"export type {name} =" in ts, name
    assert "/** Basic pension insurance for employees. */" in ts  # descriptions become doc comments
    tsc = subprocess.run([str(bin_ / "tsc"), "-p", "tsconfig.json"], cwd=CODEGEN, capture_output=True, text=True,
                         timeout=180)
    assert tsc.returncode == 0, tsc.stdout + tsc.stderr
    # A field the operation does not select is a compile error, so the types are real.
    wrong = CODEGEN / "wrong.ts"
    wrong.write_text('import type { DashboardQuery } from "./generated/graphql";\n'
                     "export const x = (q: DashboardQuery) => q.rollup.totals[0].averageBase;\n")
    try:
        bad = subprocess.run([str(bin_ / "tsc"), "--strict", "--noEmit", "--skipLibCheck", "wrong.ts"], cwd=CODEGEN,
                             capture_output=True, text=True, timeout=180)
    finally:
        wrong.unlink()
    assert bad.returncode != 0 and "averageBase" in bad.stdout, bad.stdout + bad.stderr


@pytest.mark.parametrize("fmt", ["persisted-query-manifest.json", "persisted-operations.json"])
async def test_persisted_operations_in_both_formats_are_served(loaded_db: str, tmp_path: Path, fmt: str) -> None:
    from tests.test_cli_schema import tierfed

    r = tierfed("persist", str(OPERATIONS), "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    manifest = json.loads((tmp_path / "persisted-query-manifest.json").read_text())
    assert manifest["format"] == "apollo-persisted-query-manifest" and manifest["version"] == 1
    ops = {o["name"]: o for o in manifest["operations"]}
    assert set(ops) == {"Dashboard", "RegionDirectory", "PoolHistory", "Person"}
    assert json.loads((tmp_path / "persisted-operations.json").read_text()) == \
        {o["id"]: o["body"] for o in manifest["operations"]}
    http = {"persisted_only": True, "persisted_operations_file": str(tmp_path / fmt)}
    async with node_client(loaded_db, http=http) as c:
        ext = {"persistedQuery": {"version": 1, "sha256Hash": ops["Dashboard"]["id"]}}
        variables = {"region": "440000", "period": {"from": "2025-01", "to": "2025-06"}, "schemes": ["PENSION"]}
        body = (await c.http.post("/graphql", json={"extensions": ext, "variables": variables},
                                  headers={"Authorization": (await _auth())})).json()
        assert "errors" not in body, body
        assert body["data"]["rollup"]["totals"][0]["scheme"] == "PENSION"
        assert body["data"]["region"]["code"] == "440000"
        refused = (await c.http.post("/graphql", json={"query": "{ nation { code } }"},
                                     headers={"Authorization": (await _auth())})).json()
        assert refused["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def _auth() -> str:
    from tests.conftest import token

    return f"Bearer {token()}"


def test_a_tampered_apollo_manifest_is_refused(tmp_path: Path) -> None:
    from tierfed.persisted import load, sha256

    good = {"format": "apollo-persisted-query-manifest", "version": 1,
            "operations": [{"id": sha256("query A { nation { code } }"), "name": "A", "type": "query",
                            "body": "query A { nation { code } }"}]}
    assert load(json.dumps(good)) == {good["operations"][0]["id"]: "query A { nation { code } }"}
    good["operations"][0]["body"] = "query A { nation { name } }"
    with pytest.raises(ValueError, match="not the sha256 of its body"):
        load(json.dumps(good))
