"""Data sets for the benchmarks, built with tierfed's own generator and import path.

One generation (seeded) split by the demo topology feeds every database:

- ``<key>_base``: migrated, with the pools, employers and persons of the whole
  nation; the template of ``<key>_single`` and of case 1's scratch databases;
- ``<key>_single``: one national node holding every record;
- ``<key>_fed_<node>``: the demo topology, each node holding its own part.

A manifest (``.tierfed/bench/datasets/<key>.json``) is written last, with what
the build measured (the full import against a raw COPY of the same rows, the
importer's peak RSS); a later run with the same parameters finds it and reuses
the databases, only applying migrations that are pending.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
from tierfed.tiers.tree import RegionRec, Tree

from tierfed import codes, generator
from tierfed.cli import tree_from_shipped
from tierfed.db import migrate, shipped_regions

from . import cluster
from .topology import NATION, NodeSpec, free_port, provinces, split_for

KINDS_BASE = ("pools", "employers", "persons")
KINDS_RECORDS = ("contributions", "benefits")
FIRST, LAST = date(2025, 1, 1), date(2025, 12, 1)
SEED = 2025
DATA_VERSION = 2  # of the way bench/ builds a data set (2: repeated ID numbers renumbered)


def log(msg: str) -> None:
    print(f"  [data] {msg}", file=sys.stderr, flush=True)


def national_tree() -> Tree:
    return tree_from_shipped(shipped_regions(), RegionRec, Tree)


@dataclass(frozen=True)
class Spec:
    persons: int
    seed: int = SEED

    @property
    def key(self) -> str:
        """Named by its parameters alone: a rerun with the same parameters reuses the data set even
        when tierfed's generator has changed since (the manifest records which generator made it;
        ``--rebuild`` makes it again)."""
        h = hashlib.sha256(repr((self.persons, self.seed, FIRST, LAST, DATA_VERSION)).encode()).hexdigest()[:8]
        return f"bench_p{self.persons}_{h}"

    @property
    def data_dir(self) -> Path:
        return cluster.BENCH_DIR / "data" / self.key

    @property
    def manifest_path(self) -> Path:
        return cluster.BENCH_DIR / "datasets" / f"{self.key}.json"

    def db(self, part: str) -> str:
        return f"{self.key}_{part}"

    def fed_nodes(self) -> list[str]:
        return ["central", *(n for n, _ in provinces())]


@dataclass
class DataSet:
    spec: Spec
    manifest: dict[str, Any]

    @property
    def single_url(self) -> str:
        return cluster.url(self.spec.db("single"))

    def fed_url(self, node: str) -> str:
        return cluster.url(self.spec.db(f"fed_{node}"))

    @property
    def slice_file(self) -> Path:
        return self.spec.data_dir / "slice" / "contributions.csv"


def single_spec(url: str, name: str = "single") -> NodeSpec:
    return NodeSpec(name, NATION, url)


def fed_specs(spec: Spec) -> list[NodeSpec]:
    """Central first, then the province nodes (ports are filled in when started)."""
    # placeholder ports, distinct, until the nodes are started
    provs = [NodeSpec(n, r, cluster.url(spec.db(f"fed_{n}")), port=i + 1) for i, (n, r) in enumerate(provinces())]
    central = NodeSpec("central", NATION, cluster.url(spec.db("fed_central")), children=provs, port=free_port())
    for p in provs:  # each province pushes its version to the central node (tiers.links)
        p.parent_url = central.url
    return [central, *provs]


def run_import(config: Path | None, kind: str, path: Path, raw_url: str | None = None,
               code: Path | None = None) -> dict[str, Any]:
    """tierfed's import (or the raw COPY baseline) in a child process; its JSON report. ``code``: a
    directory holding another version of the ``tierfed`` package to import with (a before/after
    comparison in the same run); its other packages are this checkout's."""
    args = ["--raw", raw_url, str(path)] if raw_url else [str(config), kind, str(path)]
    env = {**os.environ, "PYTHONPATH": str(cluster.ROOT)}
    if code:
        env["BENCH_TIERFED_CODE"] = str(code)
    p = subprocess.run([sys.executable, "-m", "bench.importrun", *args], capture_output=True, text=True,
                       cwd=cluster.ROOT, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"import {kind} {path} failed:\n{p.stderr[-4000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


async def _migrate(url: str) -> None:
    con = await asyncpg.connect(url)
    try:
        await migrate(con)
    finally:
        await con.close()


async def _vacuum(url: str) -> None:
    con = await asyncpg.connect(url)
    try:
        await con.execute("vacuum (analyze)")
    finally:
        await con.close()


class UniqueIds:
    """Around ``generator.id_number``: the generator draws a 3-digit sequence number per
    (household region, birth date), so at a million persons a few ID numbers repeat and
    the persons file fails its own import. A repeat gets the next free sequence number
    (and its check character); no extra random draw is made, so every other value of the
    data set is exactly what the generator writes."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.repeats = 0
        self.original = generator.id_number

    def __call__(self, rng: Any, household: str, born: date) -> str:
        idn = self.original(rng, household, born)
        if idn in self.seen:
            self.repeats += 1
            seq = int(idn[14:17])
            while idn in self.seen:
                seq = (seq + 1) % 1000
                first17 = idn[:14] + f"{seq:03d}"
                idn = first17 + codes.id_check_char(first17)
        self.seen.add(idn)
        return idn

    def __enter__(self) -> UniqueIds:
        generator.id_number = self  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: Any) -> None:
        generator.id_number = self.original  # type: ignore[assignment]
        self.seen.clear()


def _git_commit() -> str:
    p = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=cluster.ROOT)
    return p.stdout.strip()


def _write_slice(src: Path, dst: Path, rows: int) -> int:
    dst.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with src.open("r", encoding="utf-8") as fi, dst.open("w", encoding="utf-8") as fo:
        fo.write(fi.readline())
        for line in fi:
            if n >= rows:
                break
            fo.write(line)
            n += 1
    return n


async def ensure(spec: Spec, rebuild: bool = False) -> DataSet:
    """The data set of ``spec``: reused when its manifest and databases exist, built otherwise."""
    dbs = [spec.db("base"), spec.db("single"), *(spec.db(f"fed_{n}") for n in spec.fed_nodes())]
    if not rebuild and spec.manifest_path.exists() and all([await cluster.exists(d) for d in dbs]):
        manifest = json.loads(spec.manifest_path.read_text())
        for d in dbs:
            await _migrate(cluster.url(d))  # pending migrations only; a no-op when up to date
        log(f"reusing data set {spec.key} ({manifest['contributions']:,} contribution records, "
            f"built {manifest['built_at']})")
        return DataSet(spec, manifest)
    return DataSet(spec, await build(spec))


async def build(spec: Spec) -> dict[str, Any]:
    t_all = time.perf_counter()
    spec.manifest_path.unlink(missing_ok=True)
    tree = national_tree()
    data = spec.data_dir
    log(f"generating {spec.persons:,} persons x 12 months into {data} ...")
    t0 = time.perf_counter()
    with UniqueIds() as uniq:
        counts = generator.generate(tree, data, generator.Options(persons=spec.persons, first=FIRST, last=LAST,
                                                                  seed=spec.seed), split=split_for(tree))
    gen_s = time.perf_counter() - t0
    contributions = sum(c["contributions"] for c in counts.values())
    log(f"generated {contributions:,} contribution records in {gen_s:.0f} s")
    nodes = spec.fed_nodes()
    run_dir = cluster.BENCH_DIR / "run" / spec.key

    # base: migrated, with pools, employers and persons of the whole nation
    base_url = await cluster.create(spec.db("base"))
    await _migrate(base_url)
    base_cfg = single_spec(base_url, "base").write(run_dir)
    for kind in KINDS_BASE:
        for n in nodes:
            run_import(base_cfg, kind, data / n / f"{kind}.csv")
    log("base database ready (pools, employers, persons)")

    # single national node: clone of base + every record, the import measured
    single_url = await cluster.create(spec.db("single"), template=spec.db("base"))
    single_cfg = single_spec(single_url).write(run_dir)
    imports = []
    for n in nodes:
        rep = run_import(single_cfg, "contributions", data / n / "contributions.csv")
        imports.append(rep)
        log(f"single: contributions of {n}: {rep['rows']:,} rows in {rep['seconds']:.1f} s "
            f"({rep['rows'] / rep['seconds']:,.0f} rows/s)")
    raws = []
    for n in nodes:
        raws.append(run_import(None, "raw", data / n / "contributions.csv", raw_url=single_url))
    for n in nodes:
        run_import(single_cfg, "benefits", data / n / "benefits.csv")
    log("single node loaded; vacuum analyze ...")
    await _vacuum(single_url)

    # the demo topology: each node its own part, two imports at a time
    specs = {s.name: s for s in fed_specs(spec)}
    sem = asyncio.Semaphore(2)

    async def load(n: str) -> None:
        async with sem:
            u = await cluster.create(spec.db(f"fed_{n}"))
            await _migrate(u)
            cfg = specs[n].write(run_dir)
            for kind in (*KINDS_BASE, *KINDS_RECORDS):
                f = data / n / f"{kind}.csv"
                if f.exists():
                    await asyncio.to_thread(run_import, cfg, kind, f)
            await _vacuum(u)
            log(f"federated node {n} loaded")

    await asyncio.gather(*(load(n) for n in nodes))

    sliced = _write_slice(data / "central" / "contributions.csv", data / "slice" / "contributions.csv",
                          max(contributions // 10, 1000))
    imp_rows = sum(r["rows"] for r in imports)
    imp_s = sum(r["seconds"] for r in imports)
    raw_rows = sum(r["rows"] for r in raws)
    raw_s = sum(r["seconds"] for r in raws)
    manifest = {
        "key": spec.key,
        "spec": asdict(spec),
        "period": [FIRST.isoformat(), LAST.isoformat()],
        "built_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "counts": counts,
        "persons": spec.persons,
        "contributions": contributions,
        "benefits": sum(c["benefits"] for c in counts.values()),
        "generate_seconds": gen_s,
        "generator_sha256": hashlib.sha256(Path(generator.__file__).read_bytes()).hexdigest(),
        "git_commit": _git_commit(),
        "repeated_ids_renumbered": uniq.repeats,
        "full_import": {"rows": imp_rows, "seconds": imp_s, "rows_per_s": imp_rows / imp_s,
                        "peak_rss": max(r["peak_rss"] for r in imports), "files": imports},
        "full_raw_copy": {"rows": raw_rows, "seconds": raw_s, "rows_per_s": raw_rows / raw_s, "files": raws},
        "slice_rows": sliced,
        "db_bytes": {d: await cluster.size(spec.db(d)) for d in ("single", *(f"fed_{n}" for n in nodes))},
        "build_seconds": time.perf_counter() - t_all,
    }
    spec.manifest_path.parent.mkdir(parents=True, exist_ok=True)
    spec.manifest_path.write_text(json.dumps(manifest, indent=2))
    log(f"data set {spec.key} built in {manifest['build_seconds']:.0f} s")
    return manifest
