"""The synthetic data set: valid identifiers, reproducible, realistic proportions."""

from __future__ import annotations

import csv
from datetime import date
from decimal import Decimal
from pathlib import Path

from tierfed.tiers.tree import Tree

from tierfed import codes
from tierfed.generator import Options, generate


def test_same_seed_same_files_and_valid_codes(tmp_path: Path, tree: Tree) -> None:
    opts = Options(persons=300, first=date(2025, 1, 1), last=date(2025, 3, 1), seed=3)
    generate(tree, tmp_path / "a", opts)
    generate(tree, tmp_path / "b", opts)
    for kind in ("persons", "employers", "contributions", "benefits", "pools"):
        assert (tmp_path / "a" / f"{kind}.csv").read_bytes() == (tmp_path / "b" / f"{kind}.csv").read_bytes()
    with (tmp_path / "a" / "persons.csv").open() as fh:
        persons = list(csv.DictReader(fh))
    assert all(codes.id_number(p["id_number"]) for p in persons)
    # about one in five is insured away from the province of household registration
    away = sum(p["id_number"][:2] != p["region_code"][:2] for p in persons) / len(persons)
    assert 0.05 < away < 0.4
    with (tmp_path / "a" / "employers.csv").open() as fh:
        assert all(codes.credit_code(e["credit_code"]) for e in csv.DictReader(fh))
    with (tmp_path / "a" / "contributions.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    pension = [r for r in rows if r["scheme"] == "PENSION" and r["employer_credit_code"]]
    assert pension and all(Decimal(r["employer_amount"]) == (Decimal(r["base"]) * Decimal("0.16")).quantize(
        Decimal("0.01"), rounding="ROUND_DOWN") for r in pension)
    employer_total = sum(Decimal(r["employer_amount"]) for r in rows)
    individual_total = sum(Decimal(r["individual_amount"]) for r in rows)
    assert employer_total > individual_total  # most are employees, whose employers pay twice their part


def test_split_by_node_keeps_employers_with_their_records(tmp_path: Path, tree: Tree) -> None:
    opts = Options(persons=600, first=date(2025, 1, 1), last=date(2025, 1, 1), seed=5)
    generate(tree, tmp_path, opts, split=lambda r: "sz" if tree.within(r, "440300") else "rest")
    for part in ("sz", "rest"):
        with (tmp_path / part / "employers.csv").open() as fh:
            registered = {e["credit_code"] for e in csv.DictReader(fh)}
        with (tmp_path / part / "contributions.csv").open() as fh:
            used = {r["employer_credit_code"] for r in csv.DictReader(fh)} - {""}
        assert used <= registered
