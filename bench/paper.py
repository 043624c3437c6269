"""``python -m bench.paper [RESULTS.json]``: the scale on paper, from measured figures.

Takes what a full run measured (bytes per record, import and COPY rates, summary
bytes per row, the rollup's flatness, the dashboard's request rate) and the
published 2023 national figures, and sizes a real deployment. Every output line
says which inputs are measured here and which are assumptions; nothing in it is
measured at that scale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tierfed.generator import PROVINCES

from .dataset import national_tree

# 2023 national figures (millions of insured), as issue 7 quotes them.
INSURED_2023 = {"pension": 1066, "medical": 1334, "unemployment": 244, "work_injury": 302}
RESULTS = Path(__file__).resolve().parent / "results"


def latest_full() -> Path:
    files = sorted(p for p in RESULTS.glob("*.json") if not p.name.endswith("-quick.json")
                   and not p.name.startswith("profile"))
    if not files:
        sys.exit("no full run in bench/results: run `make bench` first")
    return files[-1]


def gib(b: float) -> str:
    return f"{b / 2**30:,.0f} GiB" if b < 2**40 else f"{b / 2**40:,.1f} TiB"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else latest_full()
    r = json.loads(path.read_text())
    res = r["results"]
    st = {k: (float(v) if isinstance(v, str) else v) for k, v in res["storage"].items()}
    b_per_rec = st["bytes_per_contribution"]
    ben_ratio = st["benefit_records"] / st["contribution_records"]
    b_per_ben = st["benefit_bytes"] / max(st["benefit_records"], 1)
    b_per_summary = st["summary_bytes"] / max(st["summary_rows"], 1)
    imp = res["import"]["import_rows_per_s"]
    raw = res["import"]["raw_copy_rows_per_s"]
    tree = national_tree()
    total_pop = sum(p for p, _ in PROVINCES.values())
    person_schemes = sum(INSURED_2023.values()) * 1e6
    per_year = 12 * person_schemes  # upper bound: one record per insured person, scheme and month
    lines = [f"Inputs measured in {path.name} ({r['mode']} run, {r['started'][:10]}):",
             f"- {b_per_rec:,.0f} B per contribution record with its primary-key index "
             f"({st['contribution_records']:,} records, {st['contribution_partitions']} monthly partitions)",
             f"- {b_per_ben:,.0f} B per benefit record; {ben_ratio:.2f} benefit records per contribution record "
             "(the generator's mix)",
             f"- {b_per_summary:,.0f} B per summary row ({st['summary_rows']:,} rows)",
             f"- import {imp:,.0f} rows/s (one stream, validation and summaries); raw COPY {raw:,.0f} rows/s",
             "",
             "Assumed (not measured): one contribution record per insured person, scheme and month "
             "(an upper bound: residents' pension and medical schemes pay yearly); a province's share "
             "of the records equals its share of the 2020 census population (the generator's weights).",
             "",
             f"National: {person_schemes / 1e6:,.0f}M person-schemes x 12 = {per_year / 1e9:,.1f}B contribution "
             f"records a year; {gib(per_year * b_per_rec)} a year of contribution tables, "
             f"{gib(per_year * ben_ratio * b_per_ben)} of benefits.",
             "",
             "| node | share | records/year | records/month partition | storage/year (contrib. + benefits) "
             "| import of one month, one stream | same at raw COPY speed | summary rows/year | summary size/year |",
             "|---|---|---|---|---|---|---|---|---|"]
    rows = []
    for code, (pop, _) in PROVINCES.items():
        share = pop / total_pop
        rows.append((share, code))
    rows.sort(reverse=True)
    picks = [rows[0], rows[len(rows) // 2], rows[-1]]
    for share, code in picks:
        recs = per_year * share
        month = recs / 12
        regions = tree.size(code)
        summ = regions * 12 * 5
        lines.append(
            f"| {tree.by_code[code].name} ({code}) | {share:.1%} | {recs / 1e9:,.2f}B | {month / 1e6:,.0f}M | "
            f"{gib(recs * b_per_rec + recs * ben_ratio * b_per_ben)} | {month / imp / 3600:,.1f} h | "
            f"{month / raw / 3600:,.2f} h | {summ:,} | {summ * b_per_summary / 2**20:,.1f} MiB |")
    nat_regions = len(tree)
    lines.append(f"| central (000000), whole nation | 100% | {per_year / 1e9:,.1f}B | {per_year / 12 / 1e6:,.0f}M | "
                 f"{gib(per_year * b_per_rec * (1 + ben_ratio * b_per_ben / b_per_rec))} | "
                 f"{per_year / 12 / imp / 3600:,.0f} h | {per_year / 12 / raw / 3600:,.1f} h | "
                 f"{nat_regions * 60:,} | {nat_regions * 60 * b_per_summary / 2**20:,.1f} MiB |")
    dash = res.get("dashboard", {}).get("runs", {})
    if dash:
        best = max(dash.values(), key=lambda v: v["req_per_s"])
        st_op = best["per_op"].get("statement", {})
        lines += ["", f"Reads (measured): the provincial dashboard mix ran at {best['req_per_s']:,.0f} req/s on this "
                      f"2-core machine (person statement p50 {st_op.get('median_ms', 0):,.1f} ms); the rollup is flat "
                      f"in record count (case 3), so dashboard capacity does not shrink as records grow, while "
                      "person statements read the records (one index probe per monthly partition) and grow with the "
                      "partitions a year spans."]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
