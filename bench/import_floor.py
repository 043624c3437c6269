"""``python -m bench.import_floor [--rows 1000000] [--repeat 3]``: where the floor of a
contributions import is, statement by statement, against a raw COPY of the same file
measured in the same run (issue 13's target: an import at half the raw COPY's rows per
second, that is in at most twice its time).

On a clone of ``bench.import10m``'s base (persons, employers, pools; the same generated
file), each round runs in one transaction, rolled back at its end, the statements of
tierfed's direct path for a file of new months (``tierfed.imports.store``, not copies):
the ``COPY`` of the fields, the checked insert into the new months' partitions (and, apart,
its ``SELECT`` alone with and without the amounts' checks), the summaries' upsert, the
partitions' index builds. Each statement's wall time and its backend's CPU time (from
``/proc``: the server runs on this machine). The table ends with what the import must do
in its one transaction beyond what the raw COPY does, against the time the target leaves.

``--parallel`` measures instead the same work as PostgreSQL's parallel query could spread
it over the machine's cores inside the import's one transaction: the fields copied into an
unlogged table (a temporary table cannot be scanned by parallel workers), the lookups as
unlogged tables too, the direct path's checked ``SELECT`` (the same text) once as a parallel
aggregate of the summaries' leaf sums and once as a parallel ``CREATE TABLE AS``, without
its planner fences (``offset 0``, which keep a plan in one process) (an
``INSERT`` is never parallel), then the table's two indexes. Backend CPU is the leader's."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

import asyncpg
from tierfed.tiers.figures import SCHEME_ID
from tierfed.tiers.tree import NATION

from tierfed import codes
from tierfed.imports import store

from . import cluster
from .import10m import RECORDS_PER_PERSON_YEAR
from .importrun import RAW_TABLE

_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    """A backend's CPU time so far, in seconds (user + system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


class Timer:
    def __init__(self, con: asyncpg.Connection) -> None:
        self.con, self.pid = con, con.get_server_pid()
        self.round = 0
        # per label, per round: the wall and CPU seconds of its statements, summed
        self.seen: dict[str, dict[int, tuple[float, float]]] = defaultdict(dict)

    async def __call__(self, label: str, run: object) -> object:
        w0, c0 = time.perf_counter(), _cpu(self.pid)
        out = await run  # type: ignore[misc]
        w, c = self.seen[label].get(self.round, (0.0, 0.0))
        self.seen[label][self.round] = (w + time.perf_counter() - w0, c + _cpu(self.pid) - c0)
        return out


async def raw_copy(f: Path, t: Timer) -> int:
    """The baseline: the file COPYed into a bare table, timed; the rows it held."""
    con = t.con
    await con.execute("drop table if exists bench_raw_contribution")
    await con.execute(RAW_TABLE)
    async with con.transaction():
        res = await t("raw COPY into a bare table (the baseline)",
                      con.copy_to_table("bench_raw_contribution", source=str(f), format="csv", header=True))
    await con.execute("drop table bench_raw_contribution")
    return int(str(res).split()[-1])


async def one_round(url: str, f: Path, header: list[str], t: Timer) -> int:
    con = t.con
    sql = store.CONTRIBUTIONS
    rows = await raw_copy(f, t)
    tr = con.transaction()
    await tr.start()
    try:
        await con.execute(store.LOOKUPS[0])
        regions = [r[0] for r in await con.fetch("select code from region where parent_code is not null")]
        await con.copy_records_to_table("import_region", records=[(c,) for c in regions])
        await con.execute(store.LOOKUPS[1], codes.MIN_MONTH, codes.MAX_MONTH)
        await con.execute(store.LOOKUPS[2], list(SCHEME_ID), list(SCHEME_ID.values()))
        for q in (*store.LOOKUPS[3:], store.ANALYZE_REGIONS):
            await con.execute(q)
        await con.execute(store.lines_csv(header))
        await t("COPY of the fields into import_line (the import's reading)",
                con.copy_to_table("import_line", source=str(f), columns=header, format="csv", header=True,
                                  force_not_null=header))
        months = [m for _, m in await con.fetch(store.FILE_MONTHS)]
        first, body = sql.direct.split("\n", 1)
        assert first.startswith("insert into "), first
        lean = body[:body.index("where (x.emp")] + "where (x.emp = '' or x.em is not null) and x.a_n <= x.i_n"
        await t("the checked insert's SELECT alone (count)", con.fetchval(f"select count(*) from ({body}) z"))
        await t("  the same without the amounts' checks", con.fetchval(f"select count(*) from ({lean}) z"))
        before, after = store.new_months(sql.table, months)
        for q in before:
            await con.execute(q)
        await t("the checked insert into the new months (checking)", con.execute(sql.direct))
        await t("the summaries' upsert", con.execute(sql.summarise_from(store.new_table(sql.table)), NATION))
        for q in after:
            label = ("the primary keys built (all partitions)" if "primary key" in q
                     else "the employer indexes built (all partitions)" if "create index" in q
                     else "detach, attach, drop (all partitions)")
            await t(label, con.execute(q))
    finally:
        await tr.rollback()
    return rows


# --parallel: the lookups and the fields in tables that parallel workers can read (unlogged, not temporary)
_PAR_SETTINGS = ("set local parallel_setup_cost = 0; set local parallel_tuple_cost = 0; "
                 "set local min_parallel_table_scan_size = 0; set local max_parallel_workers_per_gather = 2; "
                 "set local max_parallel_maintenance_workers = 2")
_PAR_LOOKUPS = (
    "create unlogged table par_region as select code from region where parent_code is not null",
    """create unlogged table par_scheme_month as
       select sc.v as scheme_v, to_char(d, 'YYYY-MM') as month_v, sc.id, d::date as m
       from unnest($1::text[], $2::smallint[]) sc (v, id), generate_series($3::date, $4::date, '1 month') d""",
)


async def parallel_round(f: Path, header: list[str], t: Timer) -> int:
    """The direct path's work as parallel query could do it (see the module's docstring)."""
    con = t.con
    sql = store.CONTRIBUTIONS
    rows = await raw_copy(f, t)
    body = sql.direct.split("\n", 1)[1]
    body = (body.replace("from import_line", "from par_line")
            .replace("import_scheme_month", "par_scheme_month").replace("import_region", "par_region")
            .replace(" offset 0", ""))  # the fences keep a plan on one process: a Limit node cannot be split
    cols = ", ".join(store.CONTRIBUTION_COLUMNS)
    checked = f"({body}) z ({cols})"
    fen = ", ".join(f"tierfed_int8_sum((z.{c} * 100)::int8)" for c in ("employer_amount", "individual_amount",
                                                                    "individual_account_amount", "base"))
    tr = con.transaction()
    await tr.start()
    try:
        await con.execute(_PAR_SETTINGS)
        await con.execute(_PAR_LOOKUPS[0])
        await con.execute(_PAR_LOOKUPS[1], list(SCHEME_ID), list(SCHEME_ID.values()), codes.MIN_MONTH,
                          codes.MAX_MONTH)
        await con.execute("create unlogged table par_line (" + ", ".join(f'"{c}" text' for c in header) + ")")
        await t("COPY of the fields into an unlogged table", con.copy_to_table(
            "par_line", source=str(f), columns=header, format="csv", header=True, force_not_null=header))
        await t("analyze (the planner needs the row counts)", con.execute(
            "analyze par_line; analyze par_region; analyze par_scheme_month"))
        plan = "\n".join(r[0] for r in await con.fetch(f"explain select count(*) from {checked}"))
        if "Gather" not in plan:
            raise SystemExit("PostgreSQL chose no parallel plan:\n" + plan)
        await t("the checked SELECT as a parallel aggregate of the leaf sums", con.fetch(
            f"select region_code, month, scheme, count(*), {fen} from {checked} group by 1, 2, 3"))
        await t("the checked SELECT as a parallel CREATE TABLE AS", con.execute(
            f"create table par_new as select * from {checked}"))
        await t("the primary key built", con.execute("alter table par_new add primary key (id_number, scheme, month)"))
        await t("the employer index built", con.execute(
            "create index on par_new (employer_credit_code, month) where employer_credit_code is not null"))
    finally:
        await tr.rollback()
    return rows


async def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.import_floor")
    ap.add_argument("--rows", type=int, default=1_000_000, help="about how many contribution records")
    ap.add_argument("--repeat", type=int, default=3, help="rounds, medians reported")
    ap.add_argument("--parallel", action="store_true",
                    help="measure the work as parallel query inside the transaction could spread it instead")
    args = ap.parse_args(argv)
    persons = int(args.rows / RECORDS_PER_PERSON_YEAR)
    cluster.server()
    f = cluster.BENCH_DIR / "data" / f"import10m_p{persons}" / "contributions.csv"
    base = f"import10m_p{persons}_base"
    if not f.exists() or not await cluster.exists(base):
        print(f"run `python -m bench.import10m --rows {args.rows}` first (it builds {f} and {base})")
        return 2
    with f.open() as fh:
        header = fh.readline().strip().split(",")
    db = f"import10m_p{persons}_floor"
    if await cluster.exists(db):
        await cluster.drop(db)
    url = await cluster.create(db, template=base)
    con = await asyncpg.connect(url)
    t = Timer(con)
    try:
        await con.execute("set work_mem = '256MB'; set maintenance_work_mem = '256MB'")
        for rnd in range(args.repeat):
            t.round = rnd
            rows = await (parallel_round(f, header, t) if args.parallel else one_round(url, f, header, t))
            print(f"  round {rnd + 1} done", flush=True)
    finally:
        await con.close()
        await cluster.drop(db)
    med = {k: (statistics.median(w for w, _ in v.values()), statistics.median(c for _, c in v.values()))
           for k, v in t.seen.items()}
    raw = med["raw COPY into a bare table (the baseline)"][0]
    lines = [f"| statement, {rows:,} contributions (median of {args.repeat}) | wall (s) | backend CPU (s) | "
             "wall / raw COPY |", "| --- | --- | --- | --- |"]
    lines += [f"| {k} | {w:.2f} | {c:.2f} | {w / raw:.2f}x |" for k, (w, c) in med.items()]
    if args.parallel:
        total = sum(w for k, (w, _) in med.items() if not k.startswith("raw COPY"))
        lines.append(f"| all of the above but the baseline (no summaries' upsert, no attach) | {total:.2f} | | "
                     f"{total / raw:.2f}x |")
    else:
        beyond = sum(med[k][0] for k in ("the summaries' upsert", "the primary keys built (all partitions)",
                                        "the employer indexes built (all partitions)"))
        lines.append(f"| the summaries and the index builds alone (no reading, no checks, no insert) | {beyond:.2f} "
                     f"| | {beyond / raw:.2f}x |")
    print("\n" + "\n".join(lines) + f"\n\nat half the raw COPY's rows per second the whole import has "
          f"{2 * raw:.2f} s; load average {os.getloadavg()[0]:.1f} ({date.today()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
