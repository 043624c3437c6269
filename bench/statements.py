"""``python -m bench.statements [--persons N] [--county CODE]``: statements sent to persons
(``tierfed statements``), per second, for the county of the demo data with the most persons.

The data set is the demo's (``tierfed demo``: the generator with seed 2025, 100,000 persons
by default, twelve months of 2025) on one national node of the benchmark cluster, built once.
Three runs over the same county, in this one process, each from an empty ``statement_sent``
and an empty folder:

- shipped, one file per person: the font cut once per batch of 200 statements;
- baseline, one file per person: every file embeds from the whole CJK font (parsed and
  subset for each statement: what a straightforward fpdf2 program does);
- shipped, one file for the county (the print shop's).

Each row splits the time between reading the API's statements (the GraphQL operation of 20
persons each) and rendering the PDFs; the rest is writing, fsync and recording.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from tierfed.config import parse
from tierfed.db import migrate
from tierfed.generator import Options, generate
from tierfed.importer import import_file
from tierfed.runtime import open_runtime
from tierfed.statements import run_statements

from . import cluster
from .dataset import national_tree

SECRET = "bench-statements-" + "x" * 32
KINDS = ("pools", "employers", "persons", "contributions", "benefits")


async def ensure(persons: int) -> str:
    """The demo's data set on a node database of the benchmark cluster, built once."""
    db = f"bench_statements_{persons}"
    data = cluster.BENCH_DIR / "data" / f"statements-{persons}"
    marker = data / f".loaded-{db}"
    if await cluster.exists(db) and marker.exists():
        return cluster.url(db)
    t0 = time.perf_counter()
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    generate(national_tree(), data, Options(persons=persons, seed=2025))
    url = await cluster.create(db)
    import asyncpg

    con = await asyncpg.connect(url)
    try:
        await migrate(con)
    finally:
        await con.close()
    rt = await open_runtime(config(), url, check_children=False)
    try:
        for kind in KINDS:
            if (data / f"{kind}.csv").exists():
                await import_file(rt.pool, rt.node, kind, data / f"{kind}.csv", progress=False)
    finally:
        await rt.close()
    marker.write_text("loaded\n")
    print(f"demo data set of {persons:,} persons built in {time.perf_counter() - t0:.0f} s")
    return url


def config() -> Any:
    return parse({"node": {"name": "bench-statements", "region": "000000", "check_children_at_start": False},
                  "auth": {"jwt_secret": SECRET}})


async def run(persons: int, county: str | None, baseline: bool = True) -> list[dict[str, Any]]:
    url = await ensure(persons)
    rt = await open_runtime(config(), url, check_children=False)
    rows = []
    try:
        if county is None:
            county = await rt.pool.fetchval(
                "select p.region_code from person p join region r on r.code = p.region_code where r.tier = 3 "
                "group by 1 order by count(*) desc, 1 limit 1")
        name = rt.tree.by_code[county].name
        cases = [("shipped, a file per person", False, True), ("baseline: whole font per file", False, False),
                 ("shipped, one file for the county", True, True)]
        for label, per_county, cut in cases if baseline else [cases[0], cases[2]]:
            await rt.pool.execute("delete from statement_sent")
            out = Path(tempfile.mkdtemp(prefix="bench-statements-"))
            try:
                rep = await run_statements(rt, county, 2025, out, per_county, progress=False, cut_font=cut)
                size = sum(f.stat().st_size for f in out.iterdir())
            finally:
                shutil.rmtree(out, ignore_errors=True)
            rows.append({"case": label, "county": f"{county} {name}", "statements": rep.written,
                         "files": rep.files, "seconds": rep.seconds, "per_s": rep.written / rep.seconds,
                         "read_s": rep.read_s, "render_s": rep.render_s, "bytes_per_statement": size / rep.written})
        await rt.pool.execute("delete from statement_sent")
    finally:
        await rt.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.statements")
    ap.add_argument("--persons", type=int, default=100_000, help="persons in the demo data set (the demo's: 100000)")
    ap.add_argument("--county", help="a county code (default: the one with the most persons)")
    ap.add_argument("--no-baseline", action="store_true", help="leave out the baseline (slow on a large county)")
    args = ap.parse_args()
    rows = asyncio.run(run(args.persons, args.county, not args.no_baseline))
    print(f"\nstatements for {rows[0]['county']}, demo data of {args.persons:,} persons")
    print(f"{'case':36} {'statements':>10} {'files':>6} {'seconds':>8} {'per s':>7} {'read s':>7} {'render s':>8} "
          f"{'KB each':>7}")
    for r in rows:
        print(f"{r['case']:36} {r['statements']:>10} {r['files']:>6} {r['seconds']:>8.1f} {r['per_s']:>7.1f} "
              f"{r['read_s']:>7.1f} {r['render_s']:>8.1f} {r['bytes_per_statement'] / 1024:>7.1f}")
    if not args.no_baseline:
        print(f"shipped / baseline (a file per person): {rows[0]['per_s'] / rows[1]['per_s']:.1f}x")


if __name__ == "__main__":
    main()
