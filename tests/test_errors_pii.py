"""Errors and personal data: every error carries a contract code; internal errors are
masked (no SQL, stack trace or path in any answer) and logged; ID numbers are masked
without PII_READER, every unmasked read is audited and readable by an AUDITOR; names
never reach the log."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Client, _create_db, load_dataset, node_client, node_config, token
from tests.nodes import free_port
from tierfed.importer import import_file

CONTRACT = {"BAD_USER_INPUT", "UNAUTHENTICATED", "FORBIDDEN", "CONFLICT", "TIER_UNAVAILABLE", "QUERY_TOO_COMPLEX"}
GQL = "application/graphql-response+json"
MASKED_ID = re.compile(r"^\d{6}\*{8}\d{3}[\dX]$")
# What a masked answer must never show: SQL, driver and Python internals, file paths.
LEAKS = re.compile(r"select |relation|asyncpg|postgres|Traceback|File \"|\.py\b|/work/|/usr/|site-packages",
                   re.IGNORECASE)
PERSON = "query PersonCard($id: String!) { person(idNumber: $id) { idNumber name region { code } } }"


@pytest.fixture(scope="module")
async def pii_db(admin_url: str, template_db: str, dataset: Path) -> str:
    """A national database with the data set, of this module's own: its pii_audit is ours to count."""
    url = await _create_db(admin_url, f"tierfed_pii_{uuid.uuid4().hex[:8]}", template_db)
    await load_dataset(url, node_config(), dataset)
    return url


@pytest.fixture
async def pii_client(pii_db: str) -> AsyncIterator[Client]:
    async with node_client(pii_db, node_config()) as c:
        yield c


async def _persons(c: Client, n: int, prefix: str = "") -> list[tuple[str, str, str]]:
    rows = await c.runtime.pool.fetch("select id_number, name, region_code from person where region_code like $1 "
                                      "order by id_number limit $2", prefix + "%", n)
    assert len(rows) == n
    return [(r["id_number"], r["name"], r["region_code"]) for r in rows]


def _codes(body: dict[str, Any]) -> set[str]:
    return {e["extensions"]["code"] for e in body.get("errors", [])}


# --------------------------------------------------------------------- codes

async def test_every_error_of_every_kind_carries_a_contract_code(client: Client, loaded_db: str) -> None:
    h = client.http
    requests: list[tuple[dict[str, Any], dict[str, str]]] = [
        ({"query": "{ nation { code "}, {}),
        ({"query": "{ nation { nope } }"}, {}),
        ({"query": "query($c: ID!) { region(code: $c) { code } }", "variables": {"c": [1]}}, {}),
        ({"query": "query($c: ID = \"x\") { region(code: $c) { code } }", "variables": {"c": None}}, {}),
        ({"query": '{ region(code: "1") { code } person(idNumber: "1") { name } pool(id: "x") { id } }'}, {}),
        ({"query": '{ rollup(region: "440000", period: {from: "2025-01", to: "2025-02"}) { complete } }'},
         {"Authorization": f"Bearer {token('110000')}"}),
        ({"query": "{ nation { code } }"}, {"Authorization": "Bearer nope"}),
        ({"query": "{ nation { " + "children { " * 12 + "code" + " }" * 13 + " }"}, {}),
    ]
    seen: set[str] = set()
    for body, headers in requests:
        for accept in (GQL, "application/json"):
            hdrs = {"Authorization": f"Bearer {token()}", "Accept": accept, **headers}
            r = await h.post("/graphql", json=body, headers=hdrs)
            assert r.status_code < 500, r.text
            got = r.json()
            assert got["errors"], got
            for e in got["errors"]:
                assert e["extensions"]["code"] in CONTRACT, e
                assert e["message"] and not LEAKS.search(e["message"]), e
            seen |= _codes(got)
    assert seen == {"BAD_USER_INPUT", "FORBIDDEN", "UNAUTHENTICATED", "QUERY_TOO_COMPLEX"}
    # A child node that does not answer: TIER_UNAVAILABLE naming it, the rest answered.
    cfg = node_config(children=[{"region": "440000", "url": f"http://127.0.0.1:{free_port()}/graphql",
                                 "timeout_s": 2, "name": "guangdong"}])
    async with node_client(loaded_db, cfg) as c:
        body = await c.gql('{ rollup(region: "000000", period: {from: "2025-01", to: "2025-02"}) '
                           "{ complete missing { code } totals { insured } } }")
    assert _codes(body) == {"TIER_UNAVAILABLE"}, body
    assert "guangdong" in body["errors"][0]["message"]
    assert body["data"]["rollup"]["complete"] is False
    assert body["data"]["rollup"]["missing"] == [{"code": "440000"}]


async def test_internal_errors_are_masked_and_logged(fresh_db: str, caplog: pytest.LogCaptureFixture) -> None:
    async with node_client(fresh_db, node_config()) as c:
        rt = c.runtime
        await rt.pool.execute("drop table pool cascade")
        caplog.set_level(logging.DEBUG)
        r = await c.post('{ nation { code } region(code: "440000") { name pool(scheme: PENSION) { id } } }',
                         Accept=GQL)
    assert r.status_code == 200  # execution ran: the answer has data, partly null
    body = r.json()
    assert body["data"]["nation"] == {"code": "000000"} and body["data"]["region"]["pool"] is None
    assert body["data"]["region"]["name"]
    assert _codes(body) == {"INTERNAL_SERVER_ERROR"}
    assert body["errors"][0]["path"] == ["region", "pool"]
    assert not LEAKS.search(r.text) and "does not exist" not in r.text, r.text
    ref = re.search(r"reference ([0-9a-f]{12})", body["errors"][0]["message"])
    assert ref, body
    # The operator finds the cause in the log under the same reference.
    logged = [rec for rec in caplog.records if ref.group(1) in rec.getMessage()]
    assert logged and logged[0].levelno == logging.ERROR
    assert 'relation "pool" does not exist' in logged[0].getMessage() and "Traceback" in logged[0].getMessage()


async def test_no_unaudited_read_leaves_when_the_audit_cannot_be_written(
        fresh_db: str, dataset: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with node_client(fresh_db) as c:
        rt = c.runtime
        await import_file(rt.pool, rt.node, "persons", dataset / "persons.csv", progress=False)
        (idn, name, _), = await _persons(c, 1)
        await rt.pool.execute("drop table pii_audit")
        r = await c.post(PERSON, {"id": idn}, tok=token(roles=("VIEWER", "PII_READER")), Accept=GQL)
    assert r.status_code == 500
    assert _codes(r.json()) == {"INTERNAL_SERVER_ERROR"} and "data" not in r.json()
    assert idn not in r.text and name not in r.text and not LEAKS.search(r.text)


# ----------------------------------------------------------------------- PII

async def test_id_numbers_are_masked_without_pii_reader_and_not_audited(pii_client: Client) -> None:
    db = pii_client.runtime.pool
    audited = await db.fetchval("select count(*) from pii_audit")
    for idn, name, region in await _persons(pii_client, 3):
        for roles in (("VIEWER",), ("VIEWER", "OPERATOR", "AUDITOR")):
            p = (await pii_client.data(PERSON, {"id": idn}, tok=token(roles=roles)))["person"]
            assert MASKED_ID.match(p["idNumber"]), p
            assert p["idNumber"] == idn[:6] + "*" * 8 + idn[-4:]
            assert p["name"] == name and p["region"]["code"] == region
    assert await db.fetchval("select count(*) from pii_audit") == audited


async def test_every_unmasked_read_is_audited_and_readable_by_an_auditor(pii_client: Client) -> None:
    db = pii_client.runtime.pool
    (a, _, _), (b, _, _) = await _persons(pii_client, 2, "4")
    sub = f"reader-{uuid.uuid4().hex[:6]}"
    reader = token("000000", ("VIEWER", "PII_READER"), sub=sub)
    start = await db.fetchval("select coalesce(max(id), 0) from pii_audit")
    assert (await pii_client.data(PERSON, {"id": a}, tok=reader))["person"]["idNumber"] == a
    two = f'query TwoCards {{ x: person(idNumber: "{a}") {{ idNumber }} y: person(idNumber: "{b}") {{ idNumber }} }}'
    assert await pii_client.data(two, tok=reader) == {"x": {"idNumber": a}, "y": {"idNumber": b}}
    anonymous = f'{{ person(idNumber: "{b}") {{ idNumber }} }}'
    assert (await pii_client.data(anonymous, tok=reader))["person"]["idNumber"] == b
    # Reading the person without the ID number is no read of it.
    await pii_client.data(f'{{ person(idNumber: "{a}") {{ name }} }}', tok=reader)
    rows = await db.fetch("select caller, scope, id_number, operation from pii_audit where id > $1 order by id", start)
    assert [tuple(r) for r in rows] == [
        (sub, "000000", a, "PersonCard"), (sub, "000000", a, "TwoCards"), (sub, "000000", b, "TwoCards"),
        # An anonymous operation is named by the sha256 of its text, as persisted operations are.
        (sub, "000000", b, "sha256:" + hashlib.sha256(anonymous.encode()).hexdigest())]

    auditor = token("000000", ("AUDITOR",), sub="auditor")
    reads = (await pii_client.data(f'{{ piiReads(idNumber: "{a}", limit: 10) '
                                   "{ at caller scope idNumber operation } }", tok=auditor))["piiReads"]
    mine = [r for r in reads if r["caller"] == sub]
    assert [(r["idNumber"], r["operation"]) for r in mine] == [(a, "TwoCards"), (a, "PersonCard")]  # newest first
    assert all(r["at"] for r in mine)
    for roles in (("VIEWER", "PII_READER"), ("VIEWER", "OPERATOR")):
        body = await pii_client.gql("{ piiReads { caller } }", tok=token("000000", roles))
        assert _codes(body) == {"FORBIDDEN"}
    body = await pii_client.gql("{ piiReads { caller } }", tok=token("440000", ("AUDITOR",)))
    assert _codes(body) == {"FORBIDDEN"}  # a province auditor does not read the national node's audit


async def test_names_and_id_numbers_never_reach_the_log(fresh_db: str, dataset: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    async with node_client(fresh_db) as c:
        rt = c.runtime
        await import_file(rt.pool, rt.node, "persons", dataset / "persons.csv", progress=False)
        caplog.set_level(logging.DEBUG)
        persons = await _persons(c, 4, "4")
        pii = token("000000", ("VIEWER", "PII_READER"))
        statement = "query($id: String!) { person(idNumber: $id) { idNumber name statement(year: 2025) " \
                    "{ schemes { scheme months } } } }"
        for idn, _, _ in persons[:2]:
            assert (await c.data(statement, {"id": idn}, tok=pii))["person"]["idNumber"] == idn
        await c.gql(PERSON, {"id": persons[2][0]}, tok=token("110000", ("VIEWER", "PII_READER")))  # forbidden
        # An ID number where a caller names things: a subject, an operation name, a literal.
        named = token("000000", ("VIEWER", "PII_READER"), sub=f"clerk-{persons[0][0]}")
        await c.gql(f'query Card{persons[1][0]} {{ person(idNumber: "{persons[1][0]}") {{ name }} }}', tok=named)
        await c.gql(PERSON, {"id": persons[0][0]}, tok=pii + "x")  # a bad token
        # An internal error in the middle of reading a person is logged with its traceback, and
        # its path, whose alias the caller chose.
        await rt.pool.execute("drop table contribution cascade")
        body = await c.gql(statement.replace("person(", f"p{persons[3][0]}: person("), {"id": persons[3][0]},
                           tok=pii)
        assert _codes(body) == {"INTERNAL_SERVER_ERROR"}
    text = caplog.text + "".join(str(r.exc_info[1]) for r in caplog.records if r.exc_info)
    assert "internal error" in text  # the log did record something
    for idn, name, _ in persons:
        assert name not in text, name
        assert idn not in text
    assert pii not in text and named not in text and pii.split(".")[2] not in text
    # One JSON line per request, naming the caller (redacted) and carrying the error's reference.
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "tierfed.access"]
    assert len(lines) == 2 + 1 + 3
    assert all(ln["node"] == "n" and len(ln["trace_id"]) == 32 and ln["duration_ms"] > 0 for ln in lines)
    assert lines[-3]["subject"] == "clerk-[id-number]" and lines[-3]["operation"] == "Card[id-number]"
    assert lines[-2]["outcome"] == "UNAUTHENTICATED" and lines[-2]["subject"] is None
    ref = re.search(r"reference ([0-9a-f]{12})", body["errors"][0]["message"])
    assert ref and lines[-1]["error_refs"] == [ref.group(1)] and lines[-1]["outcome"] == "partial:INTERNAL_SERVER_ERROR"
