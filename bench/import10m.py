"""``python -m bench.import10m [--rows 10000000]``: one contributions file of about ten
million rows (the generator's own, 12 months of 2025), imported by tierfed into a
node holding its persons and employers, against a raw COPY of the same file into a
bare table in the same run; rows per second, the stages, and the importer's peak RSS
(flat whatever the file size: the file is streamed). Prints a table and writes
``bench/results/<timestamp>-import10m.json``."""

from __future__ import annotations

import argparse
import asyncio
import json
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
    db = f"import10m_p{persons}_run"
    if await cluster.exists(db):
        await cluster.drop(db)
    url = await cluster.create(db, template=base)
    try:
        cfg = single_spec(url, "run10m").write()
        print("  raw COPY ...", flush=True)
        raw = run_import(None, "raw", f, raw_url=url)
        print(f"  raw COPY: {raw['rows']:,} rows in {raw['seconds']:.1f} s; tierfed import ...", flush=True)
        imp = run_import(cfg, "contributions", f)
    finally:
        await cluster.drop(db)
    raw_rate = raw["rows"] / raw["seconds"]
    rate = imp["rows"] / imp["seconds"]
    phases = imp["phases"]
    unchecked = imp["rows"] / (imp["seconds"] - phases.get("checking", 0.0))
    out = {"file": str(f), "bytes": f.stat().st_size, "rows": imp["rows"], "import": imp, "raw_copy": raw,
           "ratio": rate / raw_rate, "without_checks_rows_per_s": unchecked, "at": time.strftime("%Y-%m-%d %H:%M:%S")}
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    path = results / f"{time.strftime('%Y%m%d-%H%M%S')}-import10m.json"
    path.write_text(json.dumps(out, indent=2))
    print(f"\n| what | rows/s | ratio |\n|---|---|---|\n"
          f"| tierfed import, {imp['rows']:,} contributions ({f.stat().st_size / 2**30:.2f} GiB) | {rate:,.0f} | "
          f"{rate / raw_rate:.2f}x raw COPY |\n"
          f"| the same without its checking stage | {unchecked:,.0f} | {unchecked / raw_rate:.2f}x |\n"
          f"| raw COPY of the same file into a bare table | {raw_rate:,.0f} | |\n"
          f"| importer peak RSS | {imp['peak_rss'] / 2**20:,.0f} MiB | |\n\n"
          f"stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items()) + f"\nresults in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
