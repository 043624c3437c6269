"""Every kind of bad row of every kind of file: line, column and reason, through the
importer, the CLI and HTTP alike; the report limit; gzip; the SQL checks of codes
agreeing with the Python ones."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import SECRET, node_config, token
from tests.nodes import start_node
from tests.test_import import CONTRIB_HEADER, counts, credit, pid, run_import, write
from tierfed import codes
from tierfed.imports import ImportFailed

CHILD = [{"region": "440300", "url": "http://127.0.0.1:9/graphql", "name": "shenzhen"}]
EMP = credit()
OTHER_EMP = credit("91440300MA5F00002")
BAD_ID = pid(1)[:17] + ("0" if pid(1)[17] != "0" else "1")
FEB30 = "51010419850230" + "001"
FEB30 += codes.id_check_char(FEB30)
MASKED_3 = codes.mask_id(pid(3))


def expected_contributions() -> tuple[list[str], list[tuple[int, str, str]]]:
    """A contributions file with one row of each bad kind, and what the report must say."""
    ok = f"{pid(1)},PENSION,2025-01,440106,{EMP},8000.00,1280.00,640.00,640.00"
    rows = [
        ok,                                                                  # 2
        f"{BAD_ID},PENSION,2025-01,440106,,1,1,1,1",                         # 3 check character
        f"{FEB30},PENSION,2025-01,440106,,1,1,1,1",                          # 4 birth date
        f"{pid(2)},PENSIONS,2025-02,440106,,1,1,1,1",                        # 5 scheme
        f"{pid(2)},PENSION,2025-13,440106,,1,1,1,1",                         # 6 month
        f"{pid(2)},PENSION,1989-12,440106,,1,1,1,1",                         # 7 month out of range
        f"{pid(2)},PENSION,2025-03,44010,,1,1,1,1",                          # 8 malformed region
        f"{pid(2)},PENSION,2025-04,449999,,1,1,1,1",                         # 9 unknown region
        f"{pid(2)},PENSION,2025-05,000000,,1,1,1,1",                         # 10 the nation
        f"{pid(2)},PENSION,2025-06,510104,,1,1,1,1",                         # 11 outside the subtree
        f"{pid(2)},PENSION,2025-07,440305,,1,1,1,1",                         # 12 held by a child
        f"{pid(2)},PENSION,2025-08,440106,{EMP[:17]}Z,1,1,1,1",              # 13 malformed credit code
        f"{pid(2)},PENSION,2025-09,440106,{EMP[:17]}{'0' if EMP[17] != '0' else '1'},1,1,1,1",  # 14 check char
        f"{pid(2)},PENSION,2025-10,440106,,-1,1,1,1",                        # 15 negative base
        f"{pid(2)},PENSION,2025-11,440106,,1,1.234,1,1",                     # 16 three decimals
        f"{pid(2)},PENSION,2025-12,440106,,1,1,1234567890123,1",             # 17 13 integer digits
        f"{pid(2)},MEDICAL,2025-01,440106,,1,1,1,x",                         # 18 not a number
        f"{pid(2)},MEDICAL,2025-02,440106,,100,1,1,2",                       # 19 account above individual
        f"{pid(2)},MEDICAL,2025-03,440106",                                  # 20 too few fields
        "",                                                                   # 21 empty line
        f"{pid(3)},MEDICAL,2025-04,440106,,1,1,1,1",                         # 22 not registered
        f"{pid(2)},MEDICAL,2025-05,440106,{OTHER_EMP},1,1,1,1",             # 23 employer not registered
        f"{pid(2)},MEDICAL,2025-06,440106,,1,1,1,1",                         # 24
        f"{pid(2)},MEDICAL,2025-06,440106,,2,2,2,2",                         # 25 repeats line 24
        f"{pid(1)},PENSION,2025-01,440106,{EMP},8000.00,1280.00,640.00,600.00",  # 26 repeats line 2
        f'"{pid(2)}",MEDICAL,"2025-07",440106,,"1.5",1,1,1',                 # quoted fields: fine
        f"{pid(2)},MEDICAL,2025-08,440106,,8,000.00,1,1,1",                  # 28 an unquoted comma: one field more
    ]
    amount = "is malformed: expected a non-negative number of yuan with at most 2 decimals, e.g. 1234.50"
    want = [
        (3, "id_number", f"ID number {codes.mask_id(BAD_ID)} fails its check character (ISO 7064 MOD 11-2)"),
        (4, "id_number", f"ID number {codes.mask_id(FEB30)} has an impossible birth date (characters 7 to 14, YYYYMMDD)"),
        (5, "scheme", "unknown scheme 'PENSIONS': expected one of PENSION, MEDICAL, WORK_INJURY, UNEMPLOYMENT, MATERNITY"),
        (6, "month", "month '2025-13' is malformed: expected YYYY-MM, e.g. 2025-01"),
        (7, "month", "month '1989-12' is out of range: expected 1990-01 to 2100-12"),
        (8, "region_code", "region code '44010' is malformed: expected 6 digits (GB/T 2260), e.g. 440000"),
        (9, "region_code", "region 449999 names no region in the division tree"),
        (10, "region_code", "records are handled by a region below the nation"),
        (11, "region_code", "region 510104 is outside this node's subtree 440000"),
        (12, "region_code", "region 440305 is held by child node 'shenzhen': import it there (http://127.0.0.1:9/imports)"),
        (13, "employer_credit_code", f"credit code '{EMP[:17]}Z' is malformed: expected 18 characters of 0-9 and A-Y "
                                     "without I, O, S, V, Z"),
        (14, "employer_credit_code", f"credit code '{EMP[:17]}{'0' if EMP[17] != '0' else '1'}' fails its check "
                                     "character (GB 32100)"),
        (15, "base", f"amount '-1' {amount}"),
        (16, "employer_amount", f"amount '1.234' {amount}"),
        (17, "individual_amount", f"amount '1234567890123' {amount}"),
        (18, "individual_account_amount", f"amount 'x' {amount}"),
        (19, "individual_account_amount", "individual account part 2 is above the individual contribution 1"),
        (20, "*", "has 4 fields; the header has 9"),
        (21, "*", "has 0 fields; the header has 9"),
        (22, "id_number", f"person {MASKED_3} is not registered on this node: import persons first"),
        (23, "employer_credit_code", f"employer {OTHER_EMP} is not registered on this node: import employers first"),
        (25, "id_number", "repeats the (id_number, scheme, month) of line 24"),
        (26, "id_number", "repeats the (id_number, scheme, month) of line 2"),
        (28, "*", 'has 10 fields; the header has 9 (a value holding a comma must be quoted: "8,000.00")'),
    ]
    return rows, want


@pytest.fixture
async def registered(fresh_db: str, tmp_path: Path) -> str:
    await run_import(fresh_db, "persons", write(tmp_path / "p.csv", "id_number,name,region_code",
                                                f"{pid(1)},张三,440106", f"{pid(2)},李四,440106"))
    await run_import(fresh_db, "employers", write(tmp_path / "e.csv", "credit_code,name,region_code,industry_risk_class",
                                                  f"{EMP},广州某公司,440106,3"))
    return fresh_db


async def test_every_bad_contribution_row_is_reported_with_line_column_and_reason(registered: str, tmp_path: Path) -> None:
    rows, want = expected_contributions()
    f = write(tmp_path / "c.csv", CONTRIB_HEADER, *rows)
    before = await counts(registered)
    with pytest.raises(ImportFailed) as e:
        await run_import(registered, "contributions", f, children=CHILD)
    assert [(x.line, x.column, x.reason) for x in e.value.errors] == want
    assert e.value.total == len(want)
    assert await counts(registered) == before


async def test_a_record_differing_from_a_stored_one_is_refused_and_identical_ones_are_skipped(
        registered: str, tmp_path: Path) -> None:
    stored = f"{pid(1)},PENSION,2025-01,440106,{EMP},8000.00,1280.00,640.00,640.00"
    await run_import(registered, "contributions", write(tmp_path / "a.csv", CONTRIB_HEADER, stored))
    before = await counts(registered)
    changed = f"{pid(1)},PENSION,2025-01,440106,{EMP},8000.00,1280.00,640.00,600.00"
    with pytest.raises(ImportFailed) as e:
        await run_import(registered, "contributions", write(tmp_path / "b.csv", CONTRIB_HEADER,
                                                            f"{pid(2)},PENSION,2025-01,440106,,1,1,1,1", changed))
    assert [(x.line, x.column, x.reason) for x in e.value.errors] == [
        (3, "id_number", "a different record for this person, scheme and month is already stored")]
    assert await counts(registered) == before
    # the stored record again, in another file, with a new one: the new one lands, the stored one is skipped
    rep = await run_import(registered, "contributions", write(tmp_path / "c.csv", CONTRIB_HEADER,
                                                              f"{pid(2)},PENSION,2025-01,440106,,1,1,1,1", stored))
    assert (rep.rows, rep.inserted, rep.unchanged, rep.outcome) == (2, 1, 1, "imported")


async def test_every_bad_benefit_row(registered: str, tmp_path: Path) -> None:
    hdr = "amount,region_code,month,scheme,id_number"  # columns in any order
    f = write(tmp_path / "b.csv", hdr,
              f"100.00,440106,2025-01,PENSION,{pid(1)}",
              f"100.00,440106,2025-01,PENSION,{BAD_ID}",
              f"100.001,440106,2025-02,PENSION,{pid(1)}",
              f"100,440106,2025-03,DENTAL,{pid(1)}",
              f"100,440106,2025-3,PENSION,{pid(1)}",
              f"100,440305,2025-04,PENSION,{pid(1)}",
              f"100,440106,2025-05,PENSION,{pid(3)}",
              f"100.00,440106,2025-01,PENSION,{pid(1)}",
              "100,440106",
              f"1,234.50,440106,2025-06,PENSION,{pid(1)}")  # an unquoted comma: the amount would be 1.00
    with pytest.raises(ImportFailed) as e:
        await run_import(registered, "benefits", f, children=CHILD)
    got = [(x.line, x.column, x.reason.split(":")[0]) for x in e.value.errors]
    assert got == [
        (3, "id_number", f"ID number {codes.mask_id(BAD_ID)} fails its check character (ISO 7064 MOD 11-2)"),
        (4, "amount", "amount '100.001' is malformed"),
        (5, "scheme", "unknown scheme 'DENTAL'"),
        (6, "month", "month '2025-3' is malformed"),
        (7, "region_code", "region 440305 is held by child node 'shenzhen'"),
        (8, "id_number", f"person {MASKED_3} is not registered on this node"),
        (9, "id_number", "repeats the (id_number, scheme, month) of line 2"),
        (10, "*", "has 2 fields; the header has 5"),
        (11, "*", "has 6 fields; the header has 5 (a value holding a comma must be quoted"),
    ]


DIRECTORY_CASES = {
    "regions": ("code,name,tier,parent_code", [
        ("4403X1,新区,county,440300", (2, "code", "region code '4403X1' is malformed: expected 6 digits (GB/T 2260), e.g. 440000")),
        ("440399,新区,county,4403", (3, "parent_code", "region code '4403' is malformed: expected 6 digits (GB/T 2260), e.g. 440000")),
        ("440398,新区,town,440300", (4, "tier", "unknown tier 'town': expected central, province, city or county")),
        ("440397,,county,440300", (5, "name", "must be 1 to 200 characters")),
        ("440396,新区,central,", (6, "tier", "only 000000, with no parent, is central")),
        ("440395,新区,county,440394", (7, "parent_code", "parent 440394 is neither in the file nor stored")),
        ("440393,新区,province,440300", (8, "tier", "a province cannot sit under a city")),
        ("440305,南山区,city,440300", (9, "tier", "a city cannot sit under a city")),
        (None, (9, "tier", "region 440305 is stored as a county: a tier cannot change")),
        ("440392,新区,county,440300", None),
        ("440392,新区,county,440300", (11, "code", "repeats the code of line 10")),
    ]),
    "agencies": ("code,name,department,kind,region_code,parent_code,vertically_managed", [
        ("rs440305x,X,HEALTHCARE_SECURITY,AGENCY,440305,,false",
         (2, "code", "agency code 'rs440305x' is malformed: expected 2-32 upper-case letters, digits or '-', e.g. RS440000")),
        ("YB440305X,X,HEALTHCARE_SECURITY,AGENCY,440305,yb440305,false",
         (3, "parent_code", "agency code 'yb440305' is malformed: expected 2-32 upper-case letters, digits or '-', e.g. RS440000")),
        ("YB440305Y,X,HEALTH,AGENCY,440305,,false", (4, "department", "unknown department 'HEALTH': expected "
                                                     "HUMAN_RESOURCES_SOCIAL_SECURITY or HEALTHCARE_SECURITY")),
        ("YB440305Z,X,HEALTHCARE_SECURITY,OFFICE,440305,,false", (5, "kind", "unknown kind 'OFFICE': expected AGENCY, "
                                                                  "BRANCH, SERVICE_OUTLET")),
        ("YB440305W,X,HEALTHCARE_SECURITY,AGENCY,449999,,false", (6, "region_code", "region '449999' names no region in "
                                                                  "the division tree")),
        ("YB440305V,X,HEALTHCARE_SECURITY,AGENCY,440305,,maybe", (7, "vertically_managed", "'maybe' is not a boolean: "
                                                                  "expected true or false")),
        ("YB440305U,X,HEALTHCARE_SECURITY,AGENCY,440305,YB999999,false",
         (8, "parent_code", "parent agency YB999999 is neither in the file nor stored")),
    ]),
    "pools": ("scheme,region_code,opened_from,opening_balance", [
        ("DENTAL,440100,2024-01,1.00", (2, "scheme", "unknown scheme 'DENTAL': expected one of PENSION, MEDICAL, "
                                        "WORK_INJURY, UNEMPLOYMENT, MATERNITY")),
        ("MEDICAL,510000,2024-01,1.00", (3, "region_code", "region '510000' is not a region of this node's subtree 440000")),
        ("MEDICAL,440100,2024-13,1.00", (4, "opened_from", "month '2024-13' is malformed: expected YYYY-MM, e.g. 2025-01")),
        ("MEDICAL,440100,2024-01,1e3", (5, "opening_balance", "amount '1e3' is malformed: expected a non-negative number "
                                        "of yuan with at most 2 decimals, e.g. 1234.50")),
        ("PENSION,440300,2024-01,1.00", (6, "region_code", "region 440300 is held by child node 'shenzhen': "
                                         "import the pool there")),
        ("PENSION,440100,2024-01,1.00", None),
        ("PENSION,440106,2024-01,1.00", (8, "region_code", "overlaps pool of line 7 (same scheme, nested regions)")),
    ]),
    "employers": ("credit_code,name,region_code,industry_risk_class", [
        (f"{EMP[:17]}Z,X,440106,1", (2, "credit_code", f"credit code '{EMP[:17]}Z' is malformed: expected 18 characters "
                                    "of 0-9 and A-Y without I, O, S, V, Z")),
        (f"{EMP},X,440106,9", (3, "industry_risk_class", "industry risk class '9' must be a whole number from 1 to 8")),
        (f"{EMP},X,510104,1", (4, "region_code", "region 510104 is outside this node's subtree 440000")),
        (f"{EMP},,440106,1", (5, "name", "must be 1 to 200 characters")),
        (f"{EMP},X,440106,1", None),
        (f"{EMP},Y,440106,1", (7, "credit_code", "repeats the credit_code of line 6")),
    ]),
    "persons": ("id_number,name,region_code", [
        (f"{BAD_ID},X,440106", (2, "id_number", f"ID number {codes.mask_id(BAD_ID)} fails its check character "
                                "(ISO 7064 MOD 11-2)")),
        (f"{pid(5)},X,440305", (3, "region_code", "region 440305 is held by child node 'shenzhen': import it there "
                                "(http://127.0.0.1:9/imports)")),
        (f"{pid(5)},X,440106", None),
        (f"{pid(5)},Y,440106", (5, "id_number", "repeats the id_number of line 4")),
        (f"{pid(5)},X", (6, "*", "has 2 fields; the header has 3")),
        (f"{pid(6)},Zhang, San,440106", (7, "*", "has 4 fields; the header has 3 (a value holding a comma must be "
                                          'quoted: "8,000.00")')),
    ]),
}


@pytest.mark.parametrize("kind", DIRECTORY_CASES)
async def test_every_bad_row_of_the_other_kinds(fresh_db: str, tmp_path: Path, kind: str) -> None:
    header, cases = DIRECTORY_CASES[kind]
    f = write(tmp_path / f"{kind}.csv", header, *[row for row, _ in cases if row is not None])
    before = await counts(fresh_db)
    with pytest.raises(ImportFailed) as e:
        await run_import(fresh_db, kind, f, children=CHILD)
    assert [(x.line, x.column, x.reason) for x in e.value.errors] == [want for _, want in cases if want]
    assert await counts(fresh_db) == before


async def test_a_file_with_very_many_bad_rows_reports_the_first_thousand_and_the_count(
        registered: str, tmp_path: Path) -> None:
    rows = [f"{pid(1)},PENSION,2025-01,440106,,1,1,1,{i}" if i % 2 else f"{pid(2)},PENSION,2025-13,440106,,1,1,1,1"
            for i in range(2500)]
    with pytest.raises(ImportFailed) as e:
        await run_import(registered, "contributions", write(tmp_path / "many.csv", CONTRIB_HEADER, *rows))
    # even rows: a bad month; odd rows: the account part above the individual part (1) from i = 3 on,
    # and line 3 (i = 1, account 1) passes but later lines repeat its key
    assert len(e.value.errors) == 1000
    assert e.value.errors[0].line == 2 and e.value.errors == sorted(e.value.errors, key=lambda x: x.line)
    assert e.value.total == 2499
    assert "(and 1499 more)" in str(e.value)


async def test_gzip_files_are_read_as_they_are(registered: str, tmp_path: Path) -> None:
    rows = [f"{pid(1)},PENSION,2025-0{m},440106,{EMP},8000.00,1280.00,640.00,640.00" for m in range(1, 4)]
    plain = write(tmp_path / "c.csv", CONTRIB_HEADER, *rows)
    gz = tmp_path / "c.csv.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    rep = await run_import(registered, "contributions", gz)
    assert (rep.rows, rep.inserted, rep.file_name) == (3, 3, "c.csv.gz")
    # the plain file is a different file (another SHA-256) holding the same records: nothing new
    again = await run_import(registered, "contributions", plain)
    assert (again.inserted, again.unchanged, again.same_as) == (0, 3, None)
    bad = tmp_path / "bad.csv.gz"
    bad.write_bytes(gzip.compress(plain.read_bytes())[:-12])
    before = await counts(registered)
    with pytest.raises(Exception, match="gzip|Compressed file ended"):
        await run_import(registered, "contributions", bad)
    assert await counts(registered) == before


async def test_reimporting_the_same_file_is_recognised_and_recorded(registered: str, tmp_path: Path) -> None:
    f = write(tmp_path / "c.csv", CONTRIB_HEADER, f"{pid(1)},PENSION,2025-01,440106,{EMP},8000.00,1280.00,640.00,640.00")
    first = await run_import(registered, "contributions", f)
    assert (first.outcome, first.inserted, first.version) == ("imported", 1, first.import_id)
    before = await counts(registered)
    again = await run_import(registered, "contributions", f)
    assert (again.outcome, again.rows, again.inserted, again.unchanged) == ("unchanged", 1, 0, 1)
    assert again.same_as == first.import_id and again.version is None and again.import_id > first.import_id
    assert await counts(registered) == before
    con = await asyncpg.connect(registered)
    try:
        runs = await con.fetch("select kind, outcome, caller, via, rows, inserted, sha256, same_as, version "
                               "from import_run order by id")
    finally:
        await con.close()
    assert [(r["kind"], r["outcome"], r["caller"], r["via"]) for r in runs] == [
        ("persons", "imported", "cli", "cli"), ("employers", "imported", "cli", "cli"),
        ("contributions", "imported", "cli", "cli"), ("contributions", "unchanged", "cli", "cli")]
    assert runs[2]["sha256"] == runs[3]["sha256"] == first.sha256 and runs[3]["same_as"] == first.import_id


@settings(max_examples=150, deadline=None)
@given(st.one_of(
    st.text(alphabet="0123456789X x", min_size=16, max_size=19),
    st.builds(lambda s, d: s[:6] + d + s[6:9], st.text(alphabet="0123456789", min_size=9, max_size=9),
              st.dates().map(lambda d: d.strftime("%Y%m%d"))).map(lambda v: v + codes.id_check_char(v[:17]))))
async def test_the_sql_id_check_agrees_with_python(template_db_con: asyncpg.Connection, value: str) -> None:
    try:
        codes.id_number(value)
        ok = True
    except ValueError:
        ok = False
    assert await template_db_con.fetchval("select tierfed_id_number_ok($1)", value) is ok, value


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.text(alphabet=codes.CREDIT_CHARS + "IOSVZ a", min_size=17, max_size=19),
                 st.text(alphabet=codes.CREDIT_CHARS, min_size=17, max_size=17).map(lambda v: v + codes.credit_check_char(v))))
async def test_the_sql_credit_code_check_agrees_with_python(template_db_con: asyncpg.Connection, value: str) -> None:
    try:
        codes.credit_code(value)
        ok = True
    except ValueError:
        ok = False
    assert await template_db_con.fetchval("select tierfed_credit_code_ok($1)", value) is ok, value


@pytest.fixture(scope="module")
async def template_db_con(new_db: Any) -> Any:
    """A connection to a migrated database of its own (never to the template, which is cloned)."""
    con = await asyncpg.connect(await new_db())
    yield con
    await con.close()


# ---------------------------------------------------------------- the same report through the CLI and HTTP


def _config(tmp_path: Path, url: str) -> Path:
    cfg = tmp_path / "node.toml"
    cfg.write_text(f'[node]\nname = "gd"\nregion = "440000"\ndatabase_url = "{url}"\ncheck_children_at_start = false\n'
                   f'[auth]\njwt_secret = "{SECRET}"\n[[children]]\nregion = "440300"\n'
                   'url = "http://127.0.0.1:9/graphql"\nname = "shenzhen"\n')
    return cfg


def _cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tierfed.cli", "import", *args, "--config", str(cfg)],
                          capture_output=True, text=True, timeout=120)


async def test_every_bad_row_kind_reads_the_same_through_the_cli_and_http(registered: str, tmp_path: Path) -> None:
    rows, want = expected_contributions()
    f = write(tmp_path / "c.csv", CONTRIB_HEADER, *rows)
    before = await counts(registered)
    r = _cli(_config(tmp_path, registered), "contributions", str(f))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[1:] == [f"  line {ln}, column {col}: {reason}" for ln, col, reason in want]
    assert f"{len(want)} bad row(s)" in r.stderr.splitlines()[0]

    node = await start_node(node_config("440000", children=CHILD), registered)
    try:
        async with httpx.AsyncClient(timeout=60) as c:
            resp = await c.post(f"http://127.0.0.1:{node.port}/imports/contributions", params={"name": "c.csv"},
                                content=f.read_bytes(),
                                headers={"Authorization": f"Bearer {token('440000', ('OPERATOR',))}"})
    finally:
        await node.stop()
    assert resp.status_code == 422
    body = resp.json()
    assert body["state"] == "rejected" and body["report"]["bad_rows"] == len(want)
    assert [(e["line"], e["column"], e["reason"]) for e in body["report"]["errors"]] == want
    assert await counts(registered) == before


@pytest.mark.parametrize(("body", "words"), [
    ((CONTRIB_HEADER + "\n" + "a,b\n" * 3 + "caf\xe9,x\n").encode("latin-1"), "not UTF-8 text (near line 5)"),
    ((CONTRIB_HEADER + "\nab\x01c,d\n").encode(), "line 2 holds the control character U+0001"),
    ((CONTRIB_HEADER + "\na,b\n\\.\nc,d\n").encode(), "3 data lines, of which only 1 could be read"),
    ((CONTRIB_HEADER + "\r\na,b\r\nc,d\nx\r\n").encode(), "cannot be read as CSV"),
    (b"id_number,scheme\n", "missing column(s) month, region_code"),
    (b"", "empty file"),
    # the header: a column twice, an empty column name, lines ended by carriage returns alone, a
    # first line too long to be a header (it had been read whole into memory)
    ((CONTRIB_HEADER + ",base\n").encode(), "header names base more than once"),
    ((CONTRIB_HEADER + ",\n").encode(), "header has an empty column name (column 10: a trailing comma?)"),
    ((CONTRIB_HEADER + "\ra,b\rc,d\r").encode(), "lines ended by carriage returns alone"),
    (b"x" * 200_000 + b"\n", "is not a header row of at most 64 KiB"),
    # a field over the csv module's limit (128 KiB) in a row the checks word: one bad row, no traceback
    ((CONTRIB_HEADER + f"\n{'1' * 200_000},PENSION,2025-01,440106,,1,1,1,1\n").encode(), "bad row"),
])
async def test_an_unreadable_file_says_why_and_imports_nothing(registered: str, tmp_path: Path, body: bytes,
                                                               words: str) -> None:
    from tierfed.errors import UserError

    f = tmp_path / "c.csv"
    f.write_bytes(body)
    before = await counts(registered)
    with pytest.raises(UserError) as e:
        await run_import(registered, "contributions", f)
    assert words in str(e.value)
    assert await counts(registered) == before


async def test_a_header_with_a_byte_order_mark_and_quotes_is_read(registered: str, tmp_path: Path) -> None:
    """R's write.csv writes a byte order mark before a quoted header: the mark is not part of
    the first name (it had been, and the header was refused with a confusing message)."""
    f = tmp_path / "c.csv"
    cols = ",".join(f'"{c}"' for c in CONTRIB_HEADER.split(","))
    f.write_bytes(("\ufeff" + cols + f"\n{pid(1)},PENSION,2025-01,440106,{EMP},8000.00,1280.00,640.00,600.00\n")
                  .encode())
    rep = await run_import(registered, "contributions", f)
    assert (rep.rows, rep.inserted, rep.outcome) == (1, 1, "imported")


@pytest.mark.parametrize(("kind", "header", "row", "words"), [
    # full-width digits: refused with what to fix (one had been stored, others crashed the import)
    ("persons", "id_number,name,region_code", "４４０１０６１９８５０３１２００１X,张三,440106", "is malformed"),
    ("employers", "credit_code,name,region_code,industry_risk_class", "{emp},X,440106,①",
     "must be a whole number from 1 to 8"),
    ("fund_flows", "scheme,region_code,month,category,amount", "PENSION,440106,2025-01,INTEREST,１２.５０",
     "is malformed"),
])
async def test_non_ascii_digits_are_refused_saying_what_to_fix(fresh_db: str, tmp_path: Path, kind: str, header: str,
                                                                row: str, words: str) -> None:
    f = write(tmp_path / f"{kind}.csv", header, row.format(emp=EMP))
    before = await counts(fresh_db)
    with pytest.raises(ImportFailed) as e:
        await run_import(fresh_db, kind, f)
    assert len(e.value.errors) == 1 and words in e.value.errors[0].reason, e.value.errors
    assert await counts(fresh_db) == before


async def test_every_bad_row_of_the_other_kinds_reads_the_same_through_the_cli_and_http(
        fresh_db: str, tmp_path: Path) -> None:
    cfg = _config(tmp_path, fresh_db)
    files = {}
    for kind, (header, cases) in DIRECTORY_CASES.items():
        files[kind] = write(tmp_path / f"{kind}.csv", header, *[row for row, _ in cases if row is not None])
    before = await counts(fresh_db)
    node = await start_node(node_config("440000", children=CHILD), fresh_db)
    try:
        async with httpx.AsyncClient(timeout=60) as c:
            for kind, f in files.items():
                want = [w for _, w in DIRECTORY_CASES[kind][1] if w]
                r = _cli(cfg, kind, str(f))
                assert r.returncode == 1 and "Traceback" not in r.stderr, (kind, r.stderr)
                assert r.stderr.splitlines()[1:] == [f"  line {ln}, column {col}: {why}" for ln, col, why in want], kind
                scope = "000000" if kind in ("regions", "agencies") else "440000"
                resp = await c.post(f"http://127.0.0.1:{node.port}/imports/{kind}", content=f.read_bytes(),
                                    headers={"Authorization": f"Bearer {token(scope, ('OPERATOR',))}"})
                assert resp.status_code == 422, (kind, resp.text)
                got = [(e["line"], e["column"], e["reason"]) for e in resp.json()["report"]["errors"]]
                assert got == want, kind
    finally:
        await node.stop()
    assert await counts(fresh_db) == before
