"""One import in its own process, timed inside and with its peak RSS:
``python -m bench.importrun CONFIG KIND FILE`` (tierfed's own ``import_file``), or
``python -m bench.importrun --raw DATABASE_URL FILE`` (the baseline: raw COPY of the
same CSV rows into a bare table, no checks, no index). Prints one JSON line. With
``BENCH_TIERFED_CODE=DIR`` in the environment, ``tierfed`` is imported from DIR (another
version of the package, for a before/after comparison in the same run)."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
from pathlib import Path

import asyncpg

RAW_TABLE = """create table bench_raw_contribution (
    id_number text, scheme text, month text, region_code text, employer_credit_code text,
    base numeric, employer_amount numeric, individual_amount numeric, individual_account_amount numeric)"""


async def tierfed_import(config: str, kind: str, path: str) -> dict:
    from tierfed.config import load
    from tierfed.imports import Progress, import_file
    from tierfed.runtime import open_runtime

    cfg = load(config)
    rt = await open_runtime(cfg, check_children=False)
    job = Progress()
    try:
        t0 = time.perf_counter()
        rep = await import_file(rt.pool, rt.node, kind, path, progress=False, job=job)
        dt = time.perf_counter() - t0
    finally:
        await rt.close()
    # ``phases``: seconds per stage (queued: the file's SHA-256 and the lock; reading: the COPY
    # of the lines; checking: every check; writing: partitions, insert, summaries).
    return {"kind": kind, "rows": rep.rows, "inserted": rep.inserted, "seconds": dt, "outcome": rep.outcome,
            "phases": job.seconds}


async def raw_copy(url: str, path: str) -> dict:
    con = await asyncpg.connect(url)
    try:
        await con.execute("drop table if exists bench_raw_contribution")
        await con.execute(RAW_TABLE)
        t0 = time.perf_counter()
        async with con.transaction():
            res = await con.copy_to_table("bench_raw_contribution", source=path, format="csv", header=True)
        dt = time.perf_counter() - t0
        rows = int(res.split()[-1])
        await con.execute("drop table bench_raw_contribution")
    finally:
        await con.close()
    return {"kind": "raw_copy", "rows": rows, "seconds": dt}


def main() -> None:
    args = sys.argv[1:]
    code = os.environ.get("BENCH_TIERFED_CODE")
    if code:  # another version of the tierfed package (bench.import10m --against)
        sys.path.insert(0, code)
    if args[0] == "--raw":
        out = asyncio.run(raw_copy(args[1], args[2]))
    else:
        out = asyncio.run(tierfed_import(args[0], args[1], args[2]))
    out["peak_rss"] = peak_rss()
    print(json.dumps(out), flush=True)


def peak_rss() -> int:
    """This process's own peak resident set, in bytes: VmHWM of its memory map. (``ru_maxrss``
    is not: Linux carries the parent's high-water mark over fork and exec, so a child of a large
    benchmark process reports the parent's size whatever it does itself.)"""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


if __name__ == "__main__":
    main()
