"""``python -m bench.import10m [--rows 10000000]``: one contributions file of about ten
million rows (the generator's own, 12 months of 2025), imported by tierfed into a
node holding its persons and employers, against a raw COPY of the same file into a
bare table in the same run; rows per second, the stages, and the importer's peak RSS
(flat whatever the file size: the file is streamed). Prints a table and writes
``bench/results/<timestamp>-import10m.json``. ``--repeat N``: N rounds, medians;
``--against DIR``: every round also imports with the tierfed package found in DIR (the
code before a change), so that before and after are measured in the same run."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from datetime import date
from pathlib import Path

from tierfed import generator

from . import cluster
from .dataset import SEED, UniqueIds, _migrate, national_tree, run_import, single_spec

RECORDS_PER_PERSON_YEAR = 37.8  # the generator's mix, measured on the 1M-person data set


async def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.import10m")
    ap.add_argument("--rows", type=int, default=10_000_000, help="about how many contribution records")
    ap.add_argument("--repeat", type=int, default=1, help="rounds (raw COPY, imports), medians reported")
    ap.add_argument("--against", type=Path, help="a directory holding another version of the tierfed package "
                    "(e.g. `git archive main tierfed | tar -x -C DIR`), imported in every round too: before/after")
    args = ap.parse_args(argv)
    persons = int(args.rows / RECORDS_PER_PERSON_YEAR)
    cluster.server()
    data = cluster.BENCH_DIR / "data" / f"import10m_p{persons}"
    f = data / "contributions.csv"
    if not f.exists():
        print(f"  generating {persons:,} persons x 12 months into {data} ...", flush=True)
        with UniqueIds():
            generator.generate(national_tree(), data, generator.Options(persons=persons, first=date(2025, 1, 1),
                                                                        last=date(2025, 12, 1), seed=SEED))
    base = f"import10m_p{persons}_base"
    if not await cluster.exists(base):
        url = await cluster.create(base)
        await _migrate(url)
        cfg = single_spec(url, "base10m").write()
        for kind in ("pools", "employers", "persons"):
            run_import(cfg, kind, data / f"{kind}.csv")
    else:
        await _migrate(cluster.url(base))
    codes: dict[str, Path | None] = {"import": None}
    if args.against:
        codes["before"] = args.against.resolve()
    runs: dict[str, list[dict]] = {"raw_copy": [], **{k: [] for k in codes}}
    db = f"import10m_p{persons}_run"
    for rnd in range(args.repeat):
        # Each round: the raw COPY, then each import into a fresh clone of the base (the order
        # of the imports alternates between rounds so that neither always runs second).
        order = list(codes) if rnd % 2 == 0 else list(reversed(codes))
        for name in ["raw_copy", *order]:
            if await cluster.exists(db):
                await cluster.drop(db)
            url = await cluster.create(db, template=base)
            try:
                if name == "raw_copy":
                    rep = run_import(None, "raw", f, raw_url=url)
                else:
                    rep = run_import(single_spec(url, "run10m").write(), "contributions", f, code=codes[name])
            finally:
                await cluster.drop(db)
            runs[name].append(rep)
            print(f"  round {rnd + 1}: {name:8} {rep['rows']:,} rows in {rep['seconds']:.1f} s "
                  f"({rep['rows'] / rep['seconds']:,.0f} rows/s, peak RSS {rep['peak_rss'] / 2**20:,.0f} MiB)", flush=True)
    raw_rate = statistics.median(r["rows"] / r["seconds"] for r in runs["raw_copy"])
    out: dict = {"file": str(f), "bytes": f.stat().st_size, "rounds": args.repeat, "runs": runs,
                 "raw_copy_rows_per_s": raw_rate, "at": time.strftime("%Y-%m-%d %H:%M:%S"),
                 "load_average": os.getloadavg()}
    table = ["| what | rows/s (median) | ratio to raw COPY | peak RSS | stages (median s) |", "|---|---|---|---|---|"]
    for name in codes:
        reps = runs[name]
        rate = statistics.median(r["rows"] / r["seconds"] for r in reps)
        unchecked = statistics.median(r["rows"] / (r["seconds"] - r["phases"].get("checking", 0.0)) for r in reps)
        phases = {k: statistics.median(r["phases"].get(k, 0.0) for r in reps) for k in reps[0]["phases"]}
        rss = max(r["peak_rss"] for r in reps)
        out[name] = {"rows": reps[0]["rows"], "rows_per_s": rate, "ratio": rate / raw_rate,
                     "without_checks_rows_per_s": unchecked, "phases": phases, "peak_rss": rss}
        label = "tierfed import (this checkout)" if name == "import" else f"tierfed import ({args.against})"
        table.append(f"| {label}, {reps[0]['rows']:,} contributions ({f.stat().st_size / 2**30:.2f} GiB) | "
                     f"{rate:,.0f} | {rate / raw_rate:.2f}x | {rss / 2**20:,.0f} MiB | "
                     + ", ".join(f"{k} {v:.1f}" for k, v in phases.items()) + " |")
        table.append(f"| &nbsp;&nbsp;the same without its checking stage | {unchecked:,.0f} | {unchecked / raw_rate:.2f}x | | |")
    raw_rss = max(r["peak_rss"] for r in runs["raw_copy"])
    table.append(f"| raw COPY of the same file into a bare table | {raw_rate:,.0f} | | {raw_rss / 2**20:,.0f} MiB | |")
    out["ratio"] = out["import"]["ratio"]
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    path = results / f"{time.strftime('%Y%m%d-%H%M%S')}-import10m.json"
    path.write_text(json.dumps(out, indent=2))
    print("\n" + "\n".join(table) + f"\n\n{args.repeat} round(s), load average {os.getloadavg()[0]:.1f}; "
          f"results in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
