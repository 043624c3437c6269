"""The bad-input sweep: every malformed thing the contract lists is BAD_USER_INPUT with
a message that says what to fix, and a refused mutation or import changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Client, node_client, node_config, token
from tierfed.importer import ImportFailed, import_file

PERIOD = '{from: "2025-01", to: "2025-06"}'
VALID_ID = "11010519491231002X"  # the standard's example: check character X


def _only_error(body: dict[str, Any]) -> dict[str, Any]:
    assert len(body.get("errors", [])) == 1, body
    return body["errors"][0]  # type: ignore[no-any-return]


# (query, variables, words the message must hold)
READS: dict[str, tuple[str, dict[str, Any] | None, tuple[str, ...]]] = {
    "region code too short": ('{ region(code: "44000") { name } }', None, ("44000", "6 digits")),
    "region code with letters": ('{ region(code: "44OOOO") { name } }', None, ("6 digits",)),
    "region code padded": ('{ region(code: " 440000") { name } }', None, ("6 digits",)),
    "rollup of an unknown region": (f'{{ rollup(region: "999999", period: {PERIOD}) {{ complete }} }}', None,
                                    ("999999", "names no region")),
    "rollup of a malformed region": (f'{{ rollup(region: "4400", period: {PERIOD}) {{ complete }} }}', None,
                                     ("6 digits",)),
    "ID number with a bad check character": ('{ person(idNumber: "110105194912310021") { name } }', None,
                                             ("check character",)),
    "ID number with an impossible birth date": ('{ person(idNumber: "110105194902300028") { name } }', None,
                                                ("birth date", "characters 7 to 14")),
    "ID number born in the future": ('{ person(idNumber: "110105209912310024") { name } }', None,
                                     ("birth date",)),
    "ID number too short": ('{ person(idNumber: "11010519491231002") { name } }', None, ("17 digits",)),
    "ID number with letters": ('{ person(idNumber: "1101051949123100AX") { name } }', None, ("17 digits",)),
    "month 13": ('{ rollup(region: "000000", period: {from: "2025-13", to: "2026-01"}) { complete } }', None,
                 ("2025-13", "YYYY-MM")),
    "month without zero padding": (('{ rollup(region: "000000", period: {from: "2025-1", to: "2025-02"}) '
                                   "{ complete } }"), None, ("2025-1", "YYYY-MM")),
    "month as a variable": ("query($p: PeriodInput!) { rollup(region: \"000000\", period: $p) { complete } }",
                            {"p": {"from": "2025/01", "to": "2025-02"}}, ("2025/01", "YYYY-MM")),
    "month out of range": ('{ rollup(region: "000000", period: {from: "1989-12", to: "1990-01"}) { complete } }',
                           None, ("1989-12", "1990-01 to 2100-12")),
    "period to before from": (('{ rollup(region: "000000", period: {from: "2025-06", to: "2025-01"}) '
                              "{ complete } }"), None, ("before",)),
    "period too long": ('{ rollup(region: "000000", period: {from: "2000-01", to: "2025-01"}) { complete } }',
                        None, ("120 months",)),
    "pool asOf month": ('{ region(code: "440000") { pool(scheme: PENSION, asOf: "2025-00") { id } } }', None,
                        ("2025-00", "YYYY-MM")),
    "ratio with an exponent": ('{ centralAdjustment(year: 2025, ratio: "1e3") { year } }', None,
                               ("1e3", "plain decimal")),
    "ratio not a number": ('{ centralAdjustment(year: 2025, ratio: "abc") { year } }', None, ("abc",)),
    "ratio as a float literal": ("{ centralAdjustment(year: 2025, ratio: 0.045) { year } }", None,
                                 ("never a float",)),
    "ratio as a float variable": ("query($r: Decimal!) { centralAdjustment(year: 2025, ratio: $r) { year } }",
                                  {"r": 0.045}, ("never a float",)),
    "ratio NaN": ('{ centralAdjustment(year: 2025, ratio: "NaN") { year } }', None, ("plain decimal",)),
    "ratio out of range": ('{ centralAdjustment(year: 2025, ratio: "1.5") { year } }', None, ("0 to 1",)),
    "year out of range": ('{ centralAdjustment(year: 1066, ratio: "0.045") { year } }', None, ("1990 to 2100",)),
    "year beyond Int": ('{ centralAdjustment(year: 99999999999, ratio: "0.045") { year } }', None, ("32-bit",)),
    "pool id without a month": ('{ pool(id: "440000-PENSION-2025") { id } }', None, ("REGION-SCHEME-YYYYMM",)),
    "pool id with an unknown scheme": ('{ pool(id: "440000-DENTAL-202501") { id } }', None,
                                       ("REGION-SCHEME-YYYYMM",)),
    "pool id with month 13": ('{ pool(id: "440000-PENSION-202513") { id } }', None, ("REGION-SCHEME-YYYYMM",)),
    "pool id of year 0": ('{ pool(id: "440000-PENSION-000001") { id } }', None, ("REGION-SCHEME-YYYYMM",)),
    "pool id in full-width digits": ('{ pool(id: "440000-PENSION-\uff12\uff10\uff12\uff14\uff10\uff11") { id } }',
                                     None, ("REGION-SCHEME-YYYYMM",)),
    "pool id with a newline": ("query($p: ID!) { pool(id: $p) { id } }", {"p": "440000-PENSION-202401\n"},
                               ("REGION-SCHEME-YYYYMM",)),
    "region code with a newline": ("query($c: ID!) { region(code: $c) { name } }", {"c": "440000\n"},
                                   ("6 digits",)),
    "agency code with a newline": ("query($c: ID!) { agency(code: $c) { name } }", {"c": "RS440000\n"},
                                   ("upper-case",)),
    "agency code in lower case": ('{ agency(code: "rs440000") { name } }', None, ("upper-case",)),
    "agency code with a space": ('{ agency(code: "RS 440000") { name } }', None, ("upper-case",)),
    "unknown scheme": (f'{{ rollup(region: "000000", period: {PERIOD}, schemes: [DENTAL]) {{ complete }} }}',
                       None, ("DENTAL",)),
    "audit limit": ("{ piiReads(limit: 0) { id } }", None, ("1 to 1000",)),
}


@pytest.mark.parametrize("case", READS)
async def test_malformed_arguments_are_bad_user_input_saying_what_to_fix(client: Client, case: str) -> None:
    query, variables, words = READS[case]
    tok = token(roles=("VIEWER", "AUDITOR"))
    err = _only_error(await client.gql(query, variables, tok=tok))
    assert err["extensions"]["code"] == "BAD_USER_INPUT", err
    for w in words:
        assert w in err["message"], (w, err["message"])


async def test_a_negative_zero_ratio_is_zero(client: Client) -> None:
    d = await client.data('{ centralAdjustment(year: 2025, ratio: "-0") { ratio provinces { remittance } } }',
                          tok=token(roles=("VIEWER",)))
    assert d["centralAdjustment"]["ratio"] == "0.00", d["centralAdjustment"]["ratio"]
    assert all(p["remittance"] == "0.00" for p in d["centralAdjustment"]["provinces"])


async def test_error_messages_never_echo_a_whole_id_number(client: Client) -> None:
    bad = "110105194912310021"
    err = _only_error(await client.gql(f'{{ person(idNumber: "{bad}") {{ name }} }}'))
    assert bad not in str(err) and "110105********0021" in err["message"]
    # Nor the birth date the mask hides, where the date is what is wrong.
    for bad, born in (("110105194902300028", "19490230"), ("110105209912310024", "20991231")):
        err = _only_error(await client.gql(f'{{ person(idNumber: "{bad}") {{ name }} }}'))
        assert born not in str(err) and "110105********" in err["message"], err


async def test_well_formed_but_unknown_things_are_null_not_errors(client: Client) -> None:
    d = await client.data(f"""{{ region(code: "999999") {{ name }} agency(code: "RS999999") {{ name }}
        pool(id: "999999-PENSION-202501") {{ id }} person(idNumber: "{VALID_ID}") {{ name }} }}""")
    assert d == {"region": None, "agency": None, "pool": None, "person": None}


# ------------------------------------------------------------------ mutations

SNAPSHOT = """select (select count(*) from pooling_change),
                     (select string_agg(id || ':' || coalesce(closed_after::text, '-') || ':'
                                        || coalesce(successor_id, '-'), ',' order by id) from pool),
                     (select count(*) from agency where vertically_managed),
                     (select string_agg(code || '>' || coalesce(parent_code, '-'), ',' order by code) from agency)"""


@pytest.fixture
async def pools_client(fresh_db: str, dataset: Path) -> AsyncIterator[Client]:
    """A national node whose database holds the data set's pools (opened 2024-01) and nothing else."""
    async with node_client(fresh_db, node_config()) as c:
        rt = c.runtime
        await import_file(rt.pool, rt.node, "pools", dataset / "pools.csv", progress=False)
        yield c


def _raise(region: str = "440000", effective: str = "2025-01", key: str = "k-1", scheme: str = "MEDICAL") -> str:
    return f"""mutation {{ raisePoolingLevel(input: {{scheme: {scheme}, region: "{region}",
        effectiveFrom: "{effective}", idempotencyKey: "{key}", verticalManagement: true}}) {{ pool {{ id }} }} }}"""


RAISE_VAR = """mutation($in: RaisePoolingLevelInput!) { raisePoolingLevel(input: $in) { pool { id } } }"""

BAD_MUTATIONS: dict[str, tuple[str, dict[str, Any] | None, tuple[str, ...]]] = {
    "malformed region": (_raise(region="44000"), None, ("6 digits",)),
    "unknown region": (_raise(region="999999"), None, ("names no region",)),
    "malformed month": (_raise(effective="2025-13"), None, ("2025-13", "YYYY-MM")),
    "malformed month in a variable": (RAISE_VAR, {"in": {"scheme": "MEDICAL", "region": "440000",
                                                         "effectiveFrom": "2025-1", "idempotencyKey": "v"}},
                                      ("2025-1", "YYYY-MM")),
    "unknown scheme in a variable": (RAISE_VAR, {"in": {"scheme": "DENTAL", "region": "440000",
                                                        "effectiveFrom": "2025-01", "idempotencyKey": "v"}},
                                     ("DENTAL",)),
    "effectiveFrom not after the pools it replaces": (_raise(effective="2024-01"), None,
                                                      ("2024-01", "openedFrom")),
    "below a pool that covers it": (_raise(region="440300", scheme="PENSION"), None,
                                    ("already pooled at PROVINCE",)),
    "at the level of the open pool": (_raise(region="440000", scheme="PENSION"), None,
                                      ("440000-PENSION-202401", "PROVINCE")),
    "empty idempotency key": (_raise(key=""), None, ("idempotencyKey",)),
}


@pytest.mark.parametrize("case", BAD_MUTATIONS)
async def test_refused_mutations_change_nothing(pools_client: Client, case: str) -> None:
    query, variables, words = BAD_MUTATIONS[case]
    db = pools_client.runtime.pool
    before = tuple(await db.fetchrow(SNAPSHOT))
    assert before[1], "the fixture holds pools"
    err = _only_error(await pools_client.gql(query, variables, tok=token(roles=("VIEWER", "OPERATOR"))))
    assert err["extensions"]["code"] == "BAD_USER_INPUT", err
    for w in words:
        assert w in err["message"], (w, err["message"])
    assert tuple(await db.fetchrow(SNAPSHOT)) == before


async def test_a_reused_idempotency_key_with_other_input_is_a_conflict(pools_client: Client) -> None:
    db = pools_client.runtime.pool
    op = token(roles=("VIEWER", "OPERATOR"))
    first = await pools_client.data(_raise(key="k-conflict"), tok=op)
    assert first["raisePoolingLevel"]["pool"]["id"] == "440000-MEDICAL-202501"
    after_first = tuple(await db.fetchrow(SNAPSHOT))
    err = _only_error(await pools_client.gql(_raise(region="450000", key="k-conflict"), tok=op))
    assert err["extensions"]["code"] == "CONFLICT"
    assert "k-conflict" in err["message"]
    assert tuple(await db.fetchrow(SNAPSHOT)) == after_first


# -------------------------------------------------------------------- imports

ROW_COUNTS = "select (select count(*) from person), (select count(*) from pool), (select count(*) from employer)"

BAD_FILES = {
    "persons": (("id_number,name,region_code\n"
                f"{VALID_ID},张三,110105\n"
                "110105194912310021,李四,110105\n"        # bad check character
                "110105194902300028,王五,110105\n"        # 30 February
                f"{VALID_ID[:17]}0,赵六,11010\n"),         # bad check character and region code
                ("line 3", "check character", "line 4", "birth date", "line 5")),
    "pools": (("scheme,region_code,opened_from,opening_balance\n"
              "PENSION,110000,2024-01,100.00\n"
              "PENSION,110000,2025-13,100.00\n"
              "DENTAL,120000,2024-01,1e3\n"),
              ("line 3", "2025-13", "line 4")),
    "employers": (("credit_code,name,region_code,industry_risk_class\n"
                  "91350100M000100Y43,公司,110105,9\n"),
                  ("line 2",)),
}


@pytest.mark.parametrize("kind", BAD_FILES)
async def test_a_file_with_bad_rows_imports_nothing(pools_client: Client, tmp_path: Path, kind: str) -> None:
    text, words = BAD_FILES[kind]
    f = tmp_path / f"{kind}.csv"
    f.write_text(text, "utf-8")
    rt = pools_client.runtime
    before = tuple(await rt.pool.fetchrow(ROW_COUNTS))
    with pytest.raises(ImportFailed) as failed:
        await import_file(rt.pool, rt.node, kind, f, progress=False)
    report = "\n".join(str(e) for e in failed.value.errors)
    for w in words:
        assert w in report, (w, report)
    assert "nothing was imported" in str(failed.value)
    assert tuple(await rt.pool.fetchrow(ROW_COUNTS)) == before


@pytest.mark.parametrize(("query", "variables"), [
    ('{ person(idNumber: "1101051949\\u00001231002X") { name } }', None),
    ('{ _entities(representations: [{__typename: "Agency", code: "RS44\\u00000000"}]) { __typename } }', None),
    ("query($k: String!) { person(idNumber: $k) { name } }", {"k": "1101051949\x001231002X"}),
    (RAISE_VAR, {"in": {"scheme": "MEDICAL", "region": "440000", "effectiveFrom": "2025-01",
                        "idempotencyKey": "key\x00", "dryRun": False}}),
])
async def test_nul_characters_are_refused_before_anything_runs(pools_client: Client, query: str,
                                                               variables: dict[str, Any] | None) -> None:
    # PostgreSQL text cannot hold U+0000: once, an idempotency key or an agency entity
    # key holding one reached SQL and came back as an internal error.
    db = pools_client.runtime.pool
    before = tuple(await db.fetchrow(SNAPSHOT))
    statements = pools_client.runtime.statements.count
    err = _only_error(await pools_client.gql(query, variables, tok=token(roles=("VIEWER", "OPERATOR"))))
    assert err["extensions"]["code"] == "BAD_USER_INPUT" and "U+0000" in err["message"], err
    assert pools_client.runtime.statements.count == statements
    assert tuple(await db.fetchrow(SNAPSHOT)) == before


async def test_a_malformed_agency_code_in_an_entity_representation_is_bad_user_input(client: Client) -> None:
    body = await client.gql('{ _entities(representations: [{__typename: "Agency", code: "rs 4400"}]) '
                            "{ ... on Agency { name } } }")
    assert [e["extensions"]["code"] for e in body.get("errors", [])] == ["BAD_USER_INPUT"], body


async def test_malformed_entity_representations_are_bad_user_input(client: Client) -> None:
    body = await client.gql('{ _entities(representations: [{code: "440000"}, 5, {__typename: "Nope"}, '
                            '{__typename: "Region", code: "440000", extra: 1}]) { __typename } }')
    codes = {e["extensions"]["code"] for e in body["errors"]}
    assert codes == {"BAD_USER_INPUT"}, body

