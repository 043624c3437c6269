"""``tierfed statements`` run as a real process against real nodes: the figures read back from
the PDFs with pdftotext equal the API's (months held on three nodes included), one file per
person or per county, a rerun writes nothing twice, a kill -9 at any point leaves no half-written
file and the rerun finishes the rest, and every bad input is refused with nothing written."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests import test_persons_federation
from tests.conftest import SECRET, load_dataset, node_config, token
from tests.test_persons_federation import (
    NODES,
    P1,
    P2,
    P3,
    P4,
    PARENT,
    STATEMENT,
    Fed,
    expected_statement,
)
from tierfed import codes
from tierfed.statement_pdf import SCHEME_NAMES

fed = test_persons_federation.fed  # the four-node topology, started anew for this module

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext (poppler-utils) is not installed")
SCHEME_OF = {v: k for k, v in SCHEME_NAMES.items()}
GUANGDONG = [P1, P2, P3, P4]  # registered in Guangzhou or Shenzhen


def write_config(tmp: Path, db: str, name: str = "central", region: str = "000000",
                 children: list[tuple[str, str, str]] = ()) -> Path:  # type: ignore[assignment]
    lines = [f'[node]\nname = "{name}"\nregion = "{region}"\ndatabase_url = "{db}"\n',
             f'[auth]\njwt_secret = "{SECRET}"\n']
    for child, creg, url in children:
        lines.append(f'[[children]]\nname = "{child}"\nregion = "{creg}"\nurl = "{url}"\ntimeout_s = 30\n')
    p = tmp / f"{name}.toml"
    p.write_text("\n".join(lines), "utf-8")
    return p


def central_config(fed: Fed, tmp: Path) -> Path:
    kids = [(c, NODES[c], fed.nodes[c].url) for c, p in PARENT.items() if p == "central"]
    return write_config(tmp, fed.dbs["central"], children=kids)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tierfed.cli", "statements", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})})


async def acli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI in a thread: the nodes it asks run on this test's event loop."""
    return await asyncio.to_thread(cli, *args, env=env)


def read_pdf(path: Path) -> list[dict[str, Any]]:
    """The statements of a PDF as pdftotext reads them: one per page starting with the title."""
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout
    out = []
    for page in text.split("社会保险个人权益记录单（")[1:]:
        name = re.search(r"姓名：(\S+)", page)
        idn = re.search(r"公民身份号码：(\S+)", page)
        year = re.match(r"(\d{4})年度", page)
        assert name and idn and year, page
        schemes = []
        for line in page.splitlines():
            cells = line.split()
            if cells and cells[0] in SCHEME_OF:
                schemes.append({"scheme": SCHEME_OF[cells[0]], "months": int(cells[1]),
                                "contributionEmployer": cells[2], "contributionIndividual": cells[3],
                                "individualAccount": cells[4], "benefitsPaid": cells[5]})
        total = next(line.split()[1:] for line in page.splitlines() if line.split()[:1] == ["合计"])
        out.append({"name": name.group(1), "idNumber": idn.group(1), "year": int(year.group(1)),
                    "schemes": schemes, "total": total})
    return out


async def sent_rows(db: str) -> list[tuple[str, int, str, str]]:
    con = await asyncpg.connect(db)
    try:
        return [tuple(r) for r in await con.fetch(  # type: ignore[misc]
            "select id_number, year, delivery, file from statement_sent order by 1, 3")]
    finally:
        await con.close()


def _guessed(name: str) -> list[str]:
    """The ID numbers a file name gives away to someone without the node's key: every birth date
    from 1900 on put between the masked number's ends, each candidate's unkeyed digests compared
    with the name's (the way the names were once made: the digest picked out the one)."""
    import hashlib
    from datetime import timedelta

    year_, region, masked, digest = name.removesuffix(".pdf").split("-")
    found, day = [], date(1900, 1, 1)
    while day <= date.today():
        idn = masked[:6] + day.strftime("%Y%m%d") + masked[14:]
        for h in (hashlib.sha256(idn.encode()).hexdigest(), hashlib.md5(idn.encode()).hexdigest(),
                  hashlib.sha1(idn.encode()).hexdigest()):
            if h.startswith(digest) or digest.startswith(h[:10]):
                found.append(idn)
        day += timedelta(days=1)
    return found


@pytest.mark.slow
async def test_statements_read_back_from_the_pdfs_equal_the_api(fed: Fed, tmp_path: Path) -> None:
    cfg = central_config(fed, tmp_path)
    out = tmp_path / "out"
    r = await acli("--config", str(cfg), "--region", "440000", "--year", "2025", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "4 statements written in 4 files" in r.stdout
    assert "statements" in r.stderr and "4/4" in r.stderr  # the progress bar
    files = sorted(out.iterdir())
    assert len(files) == 4 and all(f.suffix == ".pdf" for f in files)
    assert not any(p in f.name for f in files for p in GUANGDONG)  # no full ID number in a file name
    assert not any(_guessed(f.name) for f in files), [f.name for f in files]
    read = {s["idNumber"]: s for f in files for s in read_pdf(f)}
    assert set(read) == {codes.mask_id(p) for p in GUANGDONG}
    for p in GUANGDONG:
        api = await fed.ask("central", STATEMENT, {"id": p}, token("000000", ("VIEWER",)))
        person = api["data"]["person"]
        got = read[codes.mask_id(p)]
        assert got["name"] == person["name"] and got["year"] == 2025
        assert got["schemes"] == person["statement"]["schemes"]
        # ... and the API's is the records' own (P2's months are on three nodes).
        assert got["schemes"] == expected_statement(p, "000000", fed.tree)["schemes"]
        for k, key in enumerate(("contributionEmployer", "contributionIndividual", "individualAccount",
                                 "benefitsPaid")):
            assert Decimal(got["total"][k]) == sum(Decimal(s[key]) for s in got["schemes"])
    assert [(i, y, d) for i, y, d, _ in await sent_rows(fed.dbs["central"])] == [
        (p, 2025, "person") for p in sorted(GUANGDONG)]
    # A second run sends nothing twice and writes nothing.
    stamps = {f.name: f.stat().st_mtime_ns for f in files}
    again = await acli("--config", str(cfg), "--region", "440000", "--year", "2025", "--out", str(out),
                       "--no-progress")
    assert again.returncode == 0 and "0 statements written in 0 files, 4 sent before" in again.stdout
    assert {f.name: f.stat().st_mtime_ns for f in out.iterdir()} == stamps

    # For a print shop: one file per county of registration, each person in exactly one.
    shop = tmp_path / "shop"
    r = await acli("--config", str(cfg), "--region", "440000", "--year", "2025", "--out", str(shop), "--per-county",
                   "--no-progress")
    assert r.returncode == 0, r.stderr
    counties = {f.name: [s["idNumber"] for s in read_pdf(f)] for f in shop.iterdir()}
    # P2 is registered in Shenzhen and Guangzhou, P4 in Guangzhou and Nanshan: the lowest code is theirs.
    assert counties == {"2025-440104.pdf": [codes.mask_id(p) for p in (P1, P2, P4)],
                        "2025-440304.pdf": [codes.mask_id(P3)]}


@pytest.mark.slow
async def test_bad_input_is_refused_and_nothing_written(fed: Fed, tmp_path: Path) -> None:
    cfg = central_config(fed, tmp_path)
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    before = await sent_rows(fed.dbs["central"])
    out = tmp_path / "never"
    cases = [
        (["--region", "990000"], "names no region"),
        (["--region", "44"], "--region"),
        (["--region", "650000"], "no person is registered in region 650000"),
        (["--year", "20x5"], "--year '20x5' is malformed"),
        (["--year", "2025-01"], "malformed"),
        (["--year", "1989"], "out of range"),
        (["--year", str(date.today().year)], "has not ended"),
        (["--out", str(a_file / "sub")], "is not a folder"),
        (["--out", str(a_file)], "is not a folder"),
        (["--out", "/proc/tierfed-statements"], "cannot write in /proc"),
    ]
    for args, why in cases:
        base = {"--region": "440000", "--year": "2025", "--out": str(out)}
        base.update(dict(zip(args[::2], args[1::2])))
        r = await acli("--config", str(cfg), *[x for kv in base.items() for x in kv], "--no-progress")
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert why in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not out.exists()
    assert a_file.read_text() == "x"
    assert await sent_rows(fed.dbs["central"]) == before
    # A region outside the node's subtree: Guangdong's node does not hold Sichuan.
    gd = write_config(tmp_path, fed.dbs["guangdong"], "guangdong", "440000")
    r = await acli("--config", str(gd), "--region", "510000", "--year", "2025", "--out", str(out))
    assert r.returncode == 2 and "outside this node's subtree 440000" in r.stderr and not out.exists()


@pytest.fixture
async def big_node(new_db: Any, dataset: Path, tmp_path: Path) -> tuple[str, Path, str, int]:
    """A national node over its own copy of the test data set; the city with the most persons."""
    db = await new_db()
    await load_dataset(db, node_config(), dataset)
    con = await asyncpg.connect(db)
    try:
        row = await con.fetchrow("select r.parent_code as city, count(*) as n from person p join region r "
                                 "on r.code = p.region_code where r.tier = 3 group by 1 order by 2 desc limit 1")
    finally:
        await con.close()
    return db, write_config(tmp_path, db), row["city"], row["n"]


async def _count(db: str) -> int:
    con = await asyncpg.connect(db)
    try:
        return int(await con.fetchval("select count(*) from statement_sent"))
    finally:
        await con.close()


def _all_whole(out: Path) -> None:
    """Every file with a final name is a complete PDF holding one statement."""
    for f in out.glob("*.pdf"):
        assert len(read_pdf(f)) == 1, f


@pytest.mark.slow
@pytest.mark.parametrize("point", ["statements-before-rename", "statements-before-record", "kill -9"])
async def test_resumed_after_a_kill_without_a_duplicate_or_half_written_file(
        big_node: tuple[str, Path, str, int], tmp_path: Path, point: str) -> None:
    db, cfg, city, n = big_node
    assert n >= 15
    out = tmp_path / "out"
    args = ["--config", str(cfg), "--region", city, "--year", "2025", "--out", str(out), "--no-progress"]
    if point == "kill -9":
        proc = subprocess.Popen([sys.executable, "-m", "tierfed.cli", "statements", *args],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(6000):  # until some statements are recorded (at most 10 min on a loaded machine)
                if proc.poll() is not None or await _count(db) >= 3:
                    break
                await asyncio.sleep(0.1)
            assert proc.poll() is None, "the run ended before it could be killed"
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(10) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
    else:
        r = await acli(*args, env={"TIERFED_CRASH_AT": point})
        assert r.returncode == 137 and f"crash point {point} reached" in r.stderr, r.stderr
    recorded = {row[3] for row in await sent_rows(db)}
    finals = {f.name for f in out.glob("*.pdf")}
    assert recorded <= finals  # recorded only once in place
    assert len(finals) < n
    if point == "statements-before-rename":
        assert not finals and len(list(out.glob(".tierfed-statement-*"))) == 1  # written, never renamed
    if point == "statements-before-record":
        assert len(finals) == 1 and not recorded  # renamed, not recorded: written again, under the same name
    _all_whole(out)
    r = await acli(*args)
    assert r.returncode == 0, r.stderr
    files = sorted(out.iterdir())
    assert len(files) == n and all(f.suffix == ".pdf" for f in files)  # no leftover, no duplicate
    rows = await sent_rows(db)
    assert len(rows) == n and {r[3] for r in rows} == {f.name for f in files}
    assert f"{n - len(recorded)} statements written" in r.stdout and f"{len(recorded)} sent before" in r.stdout
    _all_whole(out)
