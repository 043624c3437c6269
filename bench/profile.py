"""``python -m bench.profile [--quick]``: where a node spends its time on case 2 and case 4.

The node runs under py-spy (sampling, from PyPI: ``pip install py-spy`` into the
virtualenv; it is not a dependency of tierfed) while the benchmark's own client
drives it; the collapsed stacks are summarised per function (self and total
time) and per layer (HTTP server, GraphQL execution, strawberry, asyncpg,
tierfed's own code), and written to ``bench/results/profile-<case>-<timestamp>.txt``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from . import cases, cluster
from .dataset import DataSet, Spec, ensure, single_spec
from .load import closed_loop, timed
from .servers import start_node
from .topology import NATION

RESULTS = Path(__file__).resolve().parent / "results"
LAYERS = (
    ("asyncpg", "asyncpg"), ("graphql-core", "graphql/"), ("strawberry", "strawberry/"),
    ("starlette", "starlette/"), ("uvicorn+h11", "uvicorn/"), ("uvicorn+h11", "h11/"), ("json", "json/"),
    ("aiodataloader", "aiodataloader"), ("jwt", "jwt/"), ("decimal", "_pydecimal"),
    ("tierfed", "tierfed/"), ("tierfed", "resolvers/"), ("tierfed", "schema/"), ("tierfed", "tiers/"),
    ("asyncio", "asyncio/"),
)


def layer(frame: str) -> str:
    for name, needle in LAYERS:
        if needle in frame:
            return name
    return "other"


def summarise(raw: Path, top: int = 30) -> str:
    self_t: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    by_layer: collections.Counter[str] = collections.Counter()
    total = idle = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        k = int(n)
        frames = stack.split(";")
        leaf = frames[-1]
        if "select (selectors.py" in leaf or "EpollSelector.select" in leaf or "_worker (concurrent" in leaf:
            idle += k
            continue
        total += k
        self_t[leaf] += k
        for f in set(frames):
            incl[f] += k
        # the innermost frame from a known layer owns the sample; reads and writes on sockets
        # run C code (asyncpg's protocol decodes rows inside data_received) under asyncio frames
        owner = "other"
        if "_read_ready__data_received" in leaf:
            owner = "socket reads (asyncpg row decoding, h11 parsing: C code)"
        elif "_SelectorSocketTransport.write" in leaf:
            owner = "socket writes"
        for f in reversed(frames) if owner == "other" else ():
            lay = layer(f)
            if lay != "other" and lay != "asyncio":
                owner = lay
                break
        by_layer[owner] += k
    out = [f"busy samples: {total} (idle in the event loop: {idle})", "", "by layer (innermost known frame):"]
    out += [f"  {100 * v / total:5.1f}%  {k}" for k, v in by_layer.most_common()]
    out += ["", "self time:"]
    out += [f"  {100 * v / total:5.1f}%  {k}" for k, v in self_t.most_common(top)]
    out += ["", "total time (inclusive):"]
    out += [f"  {100 * v / total:5.1f}%  {k}" for k, v in incl.most_common(top + 20)
            if "runpy" not in k and "run_forever" not in k and "_run_once" not in k]
    return "\n".join(out)


async def _sequential(f: Any, seconds: float) -> None:
    await timed(f, 1_000_000, warmup=0, budget_s=seconds)


async def _loaded(port: int, ops: Any, seconds: float) -> None:
    await closed_loop(port, ops, 16, seconds)


async def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.profile")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--persons", type=int)
    ap.add_argument("--database", help="profile over this existing single-node database instead")
    args = ap.parse_args(argv)
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if not spy:
        sys.exit("py-spy is not installed: .venv/bin/pip install py-spy")
    cluster.server()
    if args.database:
        ds = DataSet(Spec(0), {})
        ds.__class__ = type("Existing", (DataSet,), {"single_url": property(lambda self: cluster.url(args.database))})
    else:
        ds = await ensure(Spec(args.persons or (100_000 if args.quick else 1_000_000)))
    b = cases.Bench(args.quick, ds, None)
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for case in ("rollup", "dashboard"):
        raw = RESULTS / f"profile-{case}-{stamp}.raw"
        node = await start_node(single_spec(ds.single_url, f"profile-{case}"), 1)
        try:
            if case == "rollup":
                f = cases.sequential(node.port, cases.rollup_request(b.token()))
                drive = functools.partial(_sequential, f)
            else:
                ids = await cases.persons_of(ds.single_url, cases.PROVINCE, 2000)
                ops = cases.dashboard_ops(b.token(cases.PROVINCE), cases.PROVINCE, ids)
                drive = functools.partial(_loaded, node.port, ops)
            await drive(3)  # warm: imports done, caches and connections filled
            # Attach to the warm node (start-up and imports stay out of the profile).
            spy_proc = await asyncio.create_subprocess_exec(
                spy, "record", "--pid", str(node.pid), "-d", str(int(args.seconds)), "-r", "200", "-f", "raw",
                "-o", str(raw), "--nonblocking", stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL)
            await drive(args.seconds + 2)
            await spy_proc.wait()
        finally:
            node.stop()
        for _ in range(100):
            if raw.exists():
                break
            await asyncio.sleep(0.1)
        text = summarise(raw)
        (RESULTS / f"profile-{case}-{stamp}.txt").write_text(text)
        print(f"==== {case} ({NATION if case == 'rollup' else cases.PROVINCE})\n{text}\n", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
