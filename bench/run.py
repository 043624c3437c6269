"""``python -m bench.run [--quick]``: build or reuse the data sets, run every case with its
baselines, print the table and write ``bench/results/<timestamp>.json``.

Full: 1,000,000 persons x 12 months (about 37M contribution records with the
generator's scheme mix), and the 100,000-person set for case 3. Quick: a tenth
of each (100,000 and 10,000 persons) and shorter load runs; under two minutes
once its data sets exist (building them the first time takes a few minutes more).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from . import budgets, cases, cluster, fresh, funds, live, telemetry
from .cases import Bench, Row
from .dataset import Spec, ensure

RESULTS = Path(__file__).resolve().parent / "results"
CASES = {
    "import": cases.case_import,
    "rollup": cases.case_rollup,
    "scale": cases.case_scale,
    "dashboard": cases.case_dashboard,
    "federation": cases.case_federation,
    "soak": cases.case_soak,
    "persons": cases.case_persons,
    "postgraphile": None,  # filled below (optional module)
    "storage": cases.storage,
    "telemetry": telemetry.case_telemetry,
    "fresh": fresh.case_fresh,
    "budgets": budgets.case_budgets,
    "funds": funds.case_funds,
    "live": live.case_live,
}





def machine() -> dict[str, Any]:
    def sh(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, cwd=cluster.ROOT).stdout.strip()
        except OSError:
            return ""

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    return {
        "nproc": sh("nproc"), "free_h": sh("free", "-h"), "cpu_model": cpu, "python": sys.version.split()[0],
        "postgres": cluster.server().psql("show server_version;").splitlines()[2].strip(),
        "postgres_settings": cluster.SETTINGS, "kernel": platform.release(),
        "git_commit": sh("git", "rev-parse", "--short", "HEAD"),
        "git_dirty": bool(sh("git", "status", "--porcelain", "--", ".", ":(exclude)bench", ":(exclude)BENCHMARKS.md")),
    }


def table(rows: list[Row]) -> str:
    heads = ("case", "measurement", "median", "p99", "ratio", "target")
    cols = [[r.case, r.what, r.median, r.p99, r.ratio, r.target] for r in rows]
    w = [max(len(h), *(len(c[i]) for c in cols)) if cols else len(h) for i, h in enumerate(heads)]
    line = "| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(heads)) + " |"
    sep = "|" + "|".join("-" * (x + 2) for x in w) + "|"
    body = ["| " + " | ".join(c[i].ljust(w[i]) for i in range(len(heads))) + " |" for c in cols]
    return "\n".join([line, sep, *body])


async def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a tenth of the data, short load runs (< 2 min)")
    ap.add_argument("--only", help="comma-separated cases: " + ",".join(CASES))
    ap.add_argument("--skip", default="", help="comma-separated cases to leave out")
    ap.add_argument("--persons", type=int, help="override the data set size (development)")
    ap.add_argument("--rebuild", action="store_true", help="build the data sets again even if they exist")
    ap.add_argument("--soak-seconds", type=float, help="length of the load run of issue 5 (default 60, quick 8)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    persons = args.persons or (100_000 if args.quick else 1_000_000)
    print(f"tierfed bench ({'quick' if args.quick else 'full'}): {persons:,} persons x 12 months", flush=True)
    cluster.server()
    data = await ensure(Spec(persons), args.rebuild)
    small = await ensure(Spec(max(persons // 10, 1000)), args.rebuild)
    built_s = time.perf_counter() - t0
    b = Bench(args.quick, data, small, soak_seconds=args.soak_seconds)
    try:
        from . import postgraphile
        CASES["postgraphile"] = postgraphile.case_postgraphile
    except ImportError:
        CASES.pop("postgraphile")
    default = list(CASES)
    wanted = [c for c in (args.only.split(",") if args.only else default) if c not in args.skip.split(",")]
    failures = {}
    timings = {}
    for name in wanted:
        fn = CASES.get(name)
        if fn is None:
            continue
        print(f"  case {name} ...", flush=True)
        tc = time.perf_counter()
        try:
            await fn(b)
        except Exception as e:  # noqa: BLE001 - a failed case is reported, the others still run
            failures[name] = f"{type(e).__name__}: {e}"
            b.rows.append(Row(name, f"FAILED: {type(e).__name__}: {str(e)[:150]}"))
            traceback.print_exc()
        finally:
            b.stop_all()
        timings[name] = time.perf_counter() - tc
    out = {
        "started": started, "command": " ".join([Path(sys.executable).name, "-m", "bench.run", *(argv or sys.argv[1:])]),
        "mode": "quick" if args.quick else "full", "machine": machine(),
        "data_set": {k: v for k, v in data.manifest.items() if k != "full_import"} | {
            "full_import": {k: v for k, v in data.manifest["full_import"].items() if k != "files"}},
        "small_data_set": {"key": small.manifest["key"], "contributions": small.manifest["contributions"]},
        "results": b.results, "notes": b.notes, "failures": failures, "case_seconds": timings,
        "data_seconds": built_s, "total_seconds": time.perf_counter() - t0,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}{'-quick' if args.quick else ''}.json"
    path.write_text(json.dumps(out, indent=2, default=str))
    print()
    print(table(b.rows))
    for note in b.notes:
        print(f"\n{note}")
    print(f"\n{len(wanted)} cases in {out['total_seconds']:.0f} s (data sets {built_s:.0f} s); "
          f"results in {path.relative_to(cluster.ROOT)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
