"""Imports: every row checked, whole file or nothing, every bad row reported, re-import a no-op."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.conftest import SECRET, node_config
from tierfed import codes
from tierfed.errors import UserError
from tierfed.importer import ImportFailed, import_file
from tierfed.runtime import open_runtime


def pid(seq: int, prefix: str = "510104", born: str = "19850615") -> str:
    first = f"{prefix}{born}{seq:03d}"
    return first + codes.id_check_char(first)


def credit(body: str = "91440300MA5F00001") -> str:
    return body + codes.credit_check_char(body)


def write(path: Path, header: str, *rows: str) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


async def counts(url: str) -> dict[str, Any]:
    con = await asyncpg.connect(url)
    try:
        return {t: await con.fetchval(f"select count(*) from {t}")
                for t in ("person", "employer", "contribution", "benefit", "summary", "pool", "region", "agency")} | {
            "sum": await con.fetchval("select coalesce(sum(employer), 0) from summary")}
    finally:
        await con.close()


async def run_import(url: str, kind: str, path: Path, region: str = "440000", children: Any = None) -> Any:
    rt = await open_runtime(node_config(region, children=children), url, check_children=False)
    try:
        return await import_file(rt.pool, rt.node, kind, path, progress=False)
    finally:
        await rt.close()


CONTRIB_HEADER = ("id_number,scheme,month,region_code,employer_credit_code,base,employer_amount,"
                  "individual_amount,individual_account_amount")


@pytest.fixture
async def registered(fresh_db: str, tmp_path: Path) -> str:
    await run_import(fresh_db, "persons", write(tmp_path / "p.csv", "name,region_code,id_number",
                                                f"张三,440305,{pid(1)}", f"李四,440106,{pid(2)}"))
    await run_import(fresh_db, "employers", write(tmp_path / "e.csv", "credit_code,name,region_code,industry_risk_class",
                                                  f"{credit()},深圳某公司,440305,3"))
    return fresh_db


async def test_good_file_imports_and_reimport_changes_nothing(registered: str, tmp_path: Path) -> None:
    f = write(tmp_path / "c.csv", CONTRIB_HEADER,
              f"{pid(1)},PENSION,2025-01,440305,{credit()},8000.00,1280.00,640.00,640.00",
              f"{pid(1)},MEDICAL,2025-01,440305,{credit()},8000,640,160.5,160.5",
              f"{pid(2)},PENSION,2025-02,440106,,6000.00,0.00,1200.00,480.00")
    try:
        rep = await run_import(registered, "contributions", f)
    except ImportFailed as e:
        raise AssertionError([str(x) for x in e.errors]) from None
    assert (rep.rows, rep.inserted) == (3, 3)
    before = await counts(registered)
    again = await run_import(registered, "contributions", f)
    assert (again.inserted, again.unchanged) == (0, 3)
    assert await counts(registered) == before
    con = await asyncpg.connect(registered)
    try:
        # summaries for the record's region and every ancestor up to the node's root, not above it
        rows = await con.fetch("select region_code from summary where month = '2025-01-01' and scheme = 1 order by 1")
        assert [r[0] for r in rows] == ["440000", "440300", "440305"]
        assert await con.fetchval("select employer from summary where region_code = '440000' and scheme = 2") == 640
        parts = await con.fetchval("select count(*) from pg_inherits where inhparent = 'contribution'::regclass")
        assert parts >= 2  # monthly partitions made on demand
    finally:
        await con.close()


async def test_a_file_of_stored_and_new_months(registered: str, tmp_path: Path) -> None:
    """Months already stored take an insert; months not stored yet are loaded into new partitions,
    indexed and attached: the same records and summaries, keys still unique in every month."""
    await run_import(registered, "contributions", write(
        tmp_path / "jan.csv", CONTRIB_HEADER, f"{pid(1)},PENSION,2025-01,440305,{credit()},8000.00,1280.00,640.00,640.00"))
    rep = await run_import(registered, "contributions", write(
        tmp_path / "both.csv", CONTRIB_HEADER,
        f"{pid(2)},PENSION,2025-01,440106,,6000.00,0.00,1200.00,480.00",
        f"{pid(1)},PENSION,2025-03,440305,{credit()},8000.00,1280.00,640.00,640.00",
        f"{pid(2)},MEDICAL,2025-03,440106,, 100.5 ,10,1.25,0"))
    # (a staged file: its months read before the insert moves its rows)
    assert (rep.rows, rep.inserted, rep.first_month, rep.last_month) == (3, 3, "2025-01", "2025-03")
    con = await asyncpg.connect(registered)
    try:
        parts = await con.fetch("select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid "
                                "where i.inhparent = 'contribution'::regclass order by 1")
        assert [r[0] for r in parts] == ["contribution_2025_01", "contribution_2025_03"]  # none for February
        assert await con.fetchval("select to_regclass('contribution_new')") is None
        indexes = await con.fetch("select p.relname, c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid "
                                  "join pg_class p on p.oid = i.inhparent "
                                  "where c.relname like 'contribution_2025_03%' and c.relkind = 'i' order by 1")
        assert [r[0] for r in indexes] == ["contribution_employer", "contribution_pkey"]
        assert await con.fetchval("select count(*) from contribution where month = '2025-03-01'") == 2
        with pytest.raises(asyncpg.UniqueViolationError):
            await con.execute(f"insert into contribution select * from contribution where id_number = '{pid(1)}' "
                              "and month = '2025-03-01'")
        march = await con.fetchrow("select employer, base from summary where region_code = '440000' "
                                   "and month = '2025-03-01' and scheme = 1")
        assert (march["employer"], march["base"]) == (1280, 8000)
        medical = await con.fetchval("select base from summary where region_code = '440000' "
                                     "and month = '2025-03-01' and scheme = 2")
        assert str(medical) == "100.50"  # added up in fen, stored in yuan with two decimals
    finally:
        await con.close()
    # A key repeated within a month not stored yet is found when its partition is indexed.
    with pytest.raises(ImportFailed) as e:
        await run_import(registered, "contributions", write(
            tmp_path / "apr.csv", CONTRIB_HEADER,
            f"{pid(1)},PENSION,2025-04,440305,,8000.00,1280.00,640.00,640.00",
            f"{pid(1)},PENSION,2025-04,440305,,8000.00,1280.00,640.00,640.00"))
    assert [(x.line, x.column) for x in e.value.errors] == [(3, "id_number")]
    assert "repeats the (id_number, scheme, month) of line 2" in e.value.errors[0].reason


async def test_a_file_of_new_months_takes_the_direct_path(registered: str, tmp_path: Path) -> None:
    """A file whose months are all new is checked and inserted into its new partitions by one
    statement, with no staging table; a bad row sends it back to the fast path's check, which
    words it as always, and nothing of the attempt is left."""
    rt = await open_runtime(node_config("440000"), registered, check_children=False)
    rt.statements.queries = []
    try:
        rep = await import_file(rt.pool, rt.node, "contributions", write(
            tmp_path / "new.csv", CONTRIB_HEADER,
            f"{pid(1)},PENSION,2025-05,440305,{credit()},8000.00,1280.00,640.00,640.00",
            f"{pid(2)},PENSION,2025-06,440106,,6000.00,0.00,1200.00,480.00"), progress=False)
        assert (rep.rows, rep.inserted, rep.first_month, rep.last_month) == (2, 2, "2025-05", "2025-06")
        ran = [" ".join(q.split()) for q in rt.statements.queries]
        assert any(q.startswith("insert into contribution_new") and "from import_line" in q for q in ran)
        assert not any("import_staging" in q for q in ran)
        rt.statements.queries = []
        with pytest.raises(ImportFailed) as e:
            await import_file(rt.pool, rt.node, "contributions", write(
                tmp_path / "bad.csv", CONTRIB_HEADER,
                f"{pid(1)},PENSION,2025-07,440305,,8000.00,1280.00,640.00,640.00",
                f"{pid(2)},PENSION,2025-07,440106,,6000.00,0.00,1200.00,1480.00"), progress=False)
        assert [(x.line, x.column) for x in e.value.errors] == [(3, "individual_account_amount")]
        ran = [" ".join(q.split()) for q in rt.statements.queries]
        assert any(q.startswith("insert into contribution_new") for q in ran)  # tried first, rolled back
    finally:
        await rt.close()
    con = await asyncpg.connect(registered)
    try:
        assert await con.fetchval("select count(*) from contribution") == 2
        assert await con.fetchval("select to_regclass('contribution_2025_07')") is None
        assert await con.fetchval("select contributions from summary where region_code = '440000' "
                                  "and month = '2025-05-01' and scheme = 1") == 1
    finally:
        await con.close()


async def test_records_after_a_transfer_out_are_refused_with_their_lines(registered: str, tmp_path: Path) -> None:
    """A person who moved out by an insurance transfer: records of that month and later belong to
    the destination, reported with their lines (the fast path numbers lines only when it reports)."""
    con = await asyncpg.connect(registered)
    try:
        await con.execute("insert into insurance_transfer (id, direction, id_number, name, from_region, to_region, "
                          "effective_from, schemes) values ('t1', 'out', $1, '张三', '440305', '510104', "
                          "'2025-03-01', '[\"PENSION\"]')", pid(1))
    finally:
        await con.close()
    before = await counts(registered)
    with pytest.raises(ImportFailed) as e:
        await run_import(registered, "contributions", write(
            tmp_path / "t.csv", CONTRIB_HEADER,
            f"{pid(1)},PENSION,2025-02,440305,,8000.00,1280.00,640.00,640.00",
            f"{pid(2)},PENSION,2025-03,440106,,6000.00,0.00,1200.00,480.00",
            f"{pid(1)},PENSION,2025-03,440305,,8000.00,1280.00,640.00,640.00",
            f"{pid(1)},MEDICAL,2025-04,440305,,8000.00,640.00,160.00,160.00"))
    assert [(x.line, x.column) for x in e.value.errors] == [(4, "month"), (5, "month")]
    assert "moved to region 510104 from 2025-03 (transfer t1)" in e.value.errors[0].reason
    assert await counts(registered) == before


async def test_bad_rows_are_all_reported_and_nothing_is_written(registered: str, tmp_path: Path) -> None:
    good = f"{pid(1)},PENSION,2025-01,440305,{credit()},8000.00,1280.00,640.00,640.00"
    f = write(tmp_path / "bad.csv", CONTRIB_HEADER, good,
              f"{pid(1)[:17]}0,PENSION,2025-01,440305,,1,1,1,1" if pid(1)[17] != "0" else f"{pid(1)[:17]}1,PENSION,2025-01,440305,,1,1,1,1",
              f"{pid(2)},PENSION,2025-13,440106,,1,1,1,1",
              f"{pid(2)},PENSION,2025-03,440106,,1,-1,1,1",
              f"{pid(2)},PENSION,2025-04,440106,,1,1,1.234,1",
              f"{pid(2)},PENSION,2025-05,440106,,100,1,1,2",
              f"{pid(2)},PENSION,2025-06,449999,,1,1,1,1",
              f"{pid(2)},PENSION,2025-07,510104,,1,1,1,1",
              f"{pid(2)},PENSION,2025-08,000000,,1,1,1,1",
              f"{pid(2)},PENSIONS,2025-09,440106,,1,1,1,1",
              f"{pid(2)},PENSION,2025-10,440106,91440300MA5F000010,1,1,1,1",
              f"{pid(2)},PENSION,2025-11,440106")
    before = await counts(registered)
    with pytest.raises(ImportFailed) as e:
        await run_import(registered, "contributions", f)
    got = [(x.line, x.column) for x in e.value.errors]
    assert got == [(3, "id_number"), (4, "month"), (5, "employer_amount"), (6, "individual_amount"),
                   (7, "individual_account_amount"), (8, "region_code"), (9, "region_code"), (10, "region_code"),
                   (11, "scheme"), (12, "employer_credit_code"), (13, "*")]
    reasons = {x.line: x.reason for x in e.value.errors}
    assert "check character" in reasons[3] and "YYYY-MM" in reasons[4] and "above the individual" in reasons[7]
    assert "outside this node's subtree" in reasons[9] and "below the nation" in reasons[10]
    assert await counts(registered) == before


async def test_database_checks(registered: str, tmp_path: Path) -> None:
    stored = f"{pid(1)},PENSION,2025-01,440305,{credit()},8000.00,1280.00,640.00,640.00"
    await run_import(registered, "contributions", write(tmp_path / "a.csv", CONTRIB_HEADER, stored))
    before = await counts(registered)
    f = write(tmp_path / "b.csv", CONTRIB_HEADER,
              f"{pid(1)},PENSION,2025-01,440305,{credit()},8000.00,1280.00,640.00,600.00",  # differs from stored
              f"{pid(3)},PENSION,2025-01,440305,,1,1,1,1",  # not registered
              f"{pid(2)},MEDICAL,2025-01,440106,{credit('91440300MA5F00002')},1,1,1,1",  # unknown employer
              f"{pid(2)},PENSION,2025-02,440106,,1,1,1,1",
              f"{pid(2)},PENSION,2025-02,440106,,2,2,2,2")  # repeats the key of line 5
    with pytest.raises(ImportFailed) as e:
        await run_import(registered, "contributions", f)
    reasons = {x.line: x.reason for x in e.value.errors}
    assert set(reasons) == {2, 3, 4, 6}
    assert "already stored" in reasons[2] and "not registered" in reasons[3]
    assert "employer" in reasons[4] and "line 5" in reasons[6]
    assert pid(3) not in reasons[3]  # ID numbers are masked in reports
    assert await counts(registered) == before


async def test_child_held_region_is_refused(fresh_db: str, tmp_path: Path) -> None:
    f = write(tmp_path / "p.csv", "id_number,name,region_code", f"{pid(1)},张三,440305")
    with pytest.raises(ImportFailed) as e:
        await run_import(fresh_db, "persons", f, "000000",
                         [{"region": "440000", "url": "http://127.0.0.1:9/graphql", "name": "guangdong"}])
    assert "held by child node 'guangdong'" in e.value.errors[0].reason


async def test_header_problems(fresh_db: str, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="missing column.*region_code"):
        await run_import(fresh_db, "persons", write(tmp_path / "h.csv", "id_number,name"))
    with pytest.raises(UserError, match="unknown column.*nme"):
        await run_import(fresh_db, "persons", write(tmp_path / "h2.csv", "id_number,nme,name,region_code"))
    with pytest.raises(UserError, match="empty file"):
        (tmp_path / "h3.csv").write_bytes(b"")
        await run_import(fresh_db, "persons", tmp_path / "h3.csv")


async def test_regions_agencies_and_pools(fresh_db: str, tmp_path: Path) -> None:
    hdr = "code,name,tier,parent_code"
    f = write(tmp_path / "r.csv", hdr, "440399,深圳新区,county,440300", "440305,南山区（新）,county,440300")
    rep = await run_import(fresh_db, "regions", f)
    assert rep.inserted == 2  # one region added, one renamed: both written
    before = await counts(fresh_db)
    assert (await run_import(fresh_db, "regions", f)).inserted == 0
    assert await counts(fresh_db) == before
    con = await asyncpg.connect(fresh_db)
    try:
        assert await con.fetchval("select ancestors from region where code = '440399'") == ["000000", "440000", "440300"]
        assert await con.fetchval("select name from region where code = '440305'") == "南山区（新）"
    finally:
        await con.close()
    with pytest.raises(ImportFailed) as e:
        await run_import(fresh_db, "regions", write(tmp_path / "r2.csv", hdr, "440398,X,county,000000",
                                                    "440397,Y,town,440300", "440396,Z,county,440395"))
    assert [x.column for x in e.value.errors] == ["tier", "tier", "parent_code"]

    ahdr = "code,name,department,kind,region_code,parent_code,vertically_managed"
    await run_import(fresh_db, "agencies", write(tmp_path / "a.csv", ahdr,
                                                 "YB440305A,南山区医保服务点,HEALTHCARE_SECURITY,SERVICE_OUTLET,440305,YB440305,false"))
    with pytest.raises(ImportFailed):
        await run_import(fresh_db, "agencies", write(tmp_path / "a2.csv", ahdr,
                                                     "YB440305B,X,HEALTH,AGENCY,440305,,maybe"))

    phdr = "scheme,region_code,opened_from,opening_balance"
    await run_import(fresh_db, "pools", write(tmp_path / "p.csv", phdr, "MEDICAL,440300,2024-01,1000.00"))
    with pytest.raises(ImportFailed) as e:
        await run_import(fresh_db, "pools", write(tmp_path / "p2.csv", phdr, "MEDICAL,440305,2024-06,5.00",
                                                  "PENSION,440000,2024-01,1.00", "PENSION,440300,2024-01,1.00"))
    reasons = [x.reason for x in e.value.errors]
    assert any("440300-MEDICAL-202401" in r for r in reasons) and any("line 3" in r for r in reasons)


def test_cli_reports_bad_rows_without_traceback(tmp_path: Path, fresh_db: str) -> None:
    cfg = tmp_path / "node.toml"
    cfg.write_text(f'[node]\nname = "x"\nregion = "440000"\ndatabase_url = "{fresh_db}"\n'
                   f'check_children_at_start = false\n[auth]\njwt_secret = "{SECRET}"\n')
    bad = write(tmp_path / "p.csv", "id_number,name,region_code", "123,张三,440305", f"{pid(1)},李四,44030")
    r = subprocess.run([sys.executable, "-m", "tierfed.cli", "import", "persons", str(bad), "--config", str(cfg)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "2 bad row(s)" in r.stderr and "line 2, column id_number" in r.stderr
    assert "line 3, column region_code" in r.stderr and "Traceback" not in r.stderr
    good = write(tmp_path / "g.csv", "id_number,name,region_code", f"{pid(1)},李四,440305")
    r = subprocess.run([sys.executable, "-m", "tierfed.cli", "import", "persons", str(good), "--config", str(cfg)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "1 new" in r.stdout, r.stderr


async def test_the_generated_data_set_imports_cleanly(loaded_db: str) -> None:
    c = await counts(loaded_db)
    assert c["person"] == 2000 and c["contribution"] > 10_000 and c["benefit"] > 1000


def test_an_imported_file_is_read_again_as_the_import_read_it(tmp_path: Path) -> None:
    """The duplicate insurance warnings read a committed file's keys again: a gzip upload's spool
    file has no .gz name, and a header may carry a byte order mark and spaces. It had been
    opened by its name's suffix and read with the header as written: after the commit, an HTTP
    import of a gzip file answered 500 and the CLI printed a traceback."""
    import gzip
    from datetime import date

    from tierfed.imports.federation import record_keys

    first17 = "44010619850312001"
    person = first17 + codes.id_check_char(first17)
    body = ("\ufeffid_number, scheme ,month,region_code,employer_credit_code,base,employer_amount,"
            "individual_amount,individual_account_amount\n"
            f"{person.lower()} ,PENSION, 2025-01,440106,,1,1,1,1\n"
            f"{person},MEDICAL,2025-02,440106,,1,1,1,1\n")
    spool = tmp_path / "tierfed-import-1.upload"
    spool.write_bytes(gzip.compress(body.encode()))
    plain = tmp_path / "c.csv"
    plain.write_text(body, encoding="utf-8")
    want = {(person, 1, date(2025, 1, 1)), (person, 2, date(2025, 2, 1))}
    assert record_keys(spool, {person}) == want
    assert record_keys(plain, {person}) == want
    assert record_keys(plain, {"nobody"}) == set()
