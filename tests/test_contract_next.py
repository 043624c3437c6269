"""The parts of the contract's next.graphql that issue 11 builds are served as written:
nothing of them broken (graphql-core's find_breaking_changes against the floor plus
those parts), and their descriptions word for word."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace as copy
from pathlib import Path

import pytest
from graphql import (
    DocumentNode,
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLObjectType,
    build_ast_schema,
    build_schema,
    find_breaking_changes,
    parse,
)

ROOT = Path(__file__).resolve().parent.parent
# beside a checkout of main, or of a worktree one level further down
CONTRACTS = [p / "shared" / "contract" for p in (ROOT.parent, ROOT.parent.parent)]
CONTRACT = next((p for p in CONTRACTS if (p / "next.graphql").exists()), CONTRACTS[0])

# The definitions of next.graphql built here, and of the extensions the fields built here.
TYPES = {"ChangeState", "TransferredScheme", "InsuranceTransfer", "ChangeParticipant", "Change",
         "TransferInsuranceInput", "TransferInsuranceResult", "FundFlowCategory", "FundFlow", "FundAccount",
         "RankBy", "RankEntry", "Ranking"}
EXTENSION_FIELDS = {"Person": {"transfers"}, "RaisePoolingLevelResult": {"state"}, "Mutation": {"transferInsurance"},
                    "Pool": {"transfersIn", "transfersOut", "account"}, "Query": {"changes", "ranking"}}


def built_parts(next_sdl: str) -> DocumentNode:
    doc = parse(next_sdl)
    keep = []
    for d in doc.definitions:
        name = d.name.value  # type: ignore[attr-defined]
        if d.kind.endswith("_extension"):
            fields = [f for f in d.fields or () if f.name.value in EXTENSION_FIELDS.get(name, set())]  # type: ignore[attr-defined]
            if fields:
                keep.append(copy(d, fields=tuple(fields)))
        elif name in TYPES:
            keep.append(d)
    return DocumentNode(definitions=tuple(keep))


@pytest.fixture(scope="module")
def served() -> str:
    return subprocess.run([sys.executable, "-m", "tierfed.cli", "schema"], capture_output=True, text=True,
                          timeout=120, check=True).stdout


@pytest.mark.skipif(not (CONTRACT / "next.graphql").exists(), reason="the shared contract is not beside this checkout")
def test_served_schema_keeps_the_next_parts_built_here(served: str) -> None:
    floor = parse((CONTRACT / "schema.graphql").read_text("utf-8"))
    parts = built_parts((CONTRACT / "next.graphql").read_text("utf-8"))
    assert len(parts.definitions) == len(TYPES) + len(EXTENSION_FIELDS)
    expected = build_ast_schema(DocumentNode(definitions=floor.definitions + parts.definitions))
    got = build_schema(served, assume_valid_sdl=True)
    assert find_breaking_changes(expected, got) == []
    # descriptions are part of the contract
    for name, t in expected.type_map.items():
        if name.startswith("__") or not (name in TYPES or name in EXTENSION_FIELDS):
            continue
        mine = got.type_map[name]
        if t.description:
            assert mine.description == t.description, name
        if isinstance(t, (GraphQLObjectType, GraphQLInputObjectType)):
            for fname, f in t.fields.items():
                if name in EXTENSION_FIELDS and fname not in EXTENSION_FIELDS[name]:
                    continue
                if f.description:
                    assert mine.fields[fname].description == f.description, f"{name}.{fname}"  # type: ignore[union-attr]
        if isinstance(t, GraphQLEnumType):
            assert set(mine.values) == set(t.values)  # type: ignore[union-attr]
