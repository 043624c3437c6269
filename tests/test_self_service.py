"""Self tokens (tierfed.selfservice): a person's token reads that person and nothing else, an
employer's token that employer and nothing else; every other field of the served schema is
refused before any SQL, every read is audited, no answer is cached.

The sweep builds one operation per Query and Mutation field from the schema the node serves
(introspected), with arguments that are valid for the field: the same operation with an agency
token runs (so a refusal is the gate's doing, not a malformed request)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    build_client_schema,
    get_introspection_query,
    get_named_type,
)

from tests.conftest import Client, token
from tierfed import codes

STAFF = token("000000", ("VIEWER", "OPERATOR", "PII_READER", "AUDITOR"))
STATEMENT = """query Mine($id: String!) { person(idNumber: $id) { idNumber name region { code name } complete
  statement(year: 2025) { year complete schemes { scheme months contributionEmployer contributionIndividual
    individualAccount benefitsPaid } } transfers { id effectiveFrom from { name } to { name } } } }"""
EMPLOYER = """query Ours($c: String!) { employer(creditCode: $c) { creditCode name region { code name } complete
  contributions(period: {from: "2025-01", to: "2025-06"}) { scheme employees contributorMonths
    contributionEmployer contributionIndividual averageBase } } }"""


def self_token(role: str, sub: str) -> str:
    return token("000000", (role,), sub=sub)


def literal(t: GraphQLInputType, name: str, subject: dict[str, str]) -> str:
    """A valid literal of an input type (the argument's name picks a sensible value)."""
    if isinstance(t, GraphQLNonNull):
        return literal(t.of_type, name, subject)
    if isinstance(t, GraphQLList):
        return "[" + literal(t.of_type, name, subject) + "]"
    if isinstance(t, GraphQLEnumType):
        return next(iter(t.values))
    if isinstance(t, GraphQLInputObjectType):
        req = [f"{k}: {literal(f.type, k, subject)}" for k, f in t.fields.items() if isinstance(f.type, GraphQLNonNull)]
        return "{" + ", ".join(req) + "}"
    assert isinstance(t, GraphQLScalarType)
    by_name = {"idNumber": subject["person"], "creditCode": subject["employer"], "kind": "person",
               "from": "2025-01", "to": "2025-06", "code": "440000", "region": "440000", "id": "440000"}
    if t.name in ("Int",):
        return "2025" if name == "year" else "1"
    if t.name == "Float":
        return "1.0"
    if t.name == "Boolean":
        return "false"
    if t.name == "Decimal":
        return '"0.10"'
    if t.name == "Month":
        return '"2025-01"'
    if t.name == "JSON":
        return '{id: "' + subject["person"] + '"}'
    if t.name == "_Any":
        return '{__typename: "Region", code: "440000"}'
    return '"' + by_name.get(name, "440000") + '"'


def operations(schema: GraphQLSchema, root: GraphQLObjectType, kind: str,
               subject: dict[str, str]) -> dict[str, str]:
    out = {}
    for fname, f in root.fields.items():
        args = [f"{a}: {literal(d.type, a, subject)}" for a, d in f.args.items() if isinstance(d.type, GraphQLNonNull)]
        sel = "" if isinstance(get_named_type(f.type), (GraphQLScalarType, GraphQLEnumType)) else " { __typename }"
        out[fname] = f"{kind} {{ {fname}{'(' + ', '.join(args) + ')' if args else ''}{sel} }}"
    return out


@pytest.fixture
async def served(client: Client) -> tuple[Client, GraphQLSchema, dict[str, str]]:
    intro = await client.data(get_introspection_query(), tok=STAFF)
    schema = build_client_schema(intro)
    person = await client.runtime.pool.fetchval(
        "select p.id_number from person p join contribution c using (id_number) "
        "where c.employer_credit_code is not null order by 1 limit 1")
    employer = await client.runtime.pool.fetchval("select employer_credit_code from contribution where "
                                                  "employer_credit_code is not null order by 1 limit 1")
    return client, schema, {"person": person, "employer": employer}


def forbidden(body: dict[str, Any]) -> bool:
    return body.get("data") is None and [e["extensions"]["code"] for e in body.get("errors", [])] == ["FORBIDDEN"]


@pytest.mark.parametrize("role", ["SELF_PERSON", "SELF_EMPLOYER"])
async def test_every_other_field_of_the_served_schema_is_refused(served: Any, role: str) -> None:
    client, schema, subject = served
    tok = self_token(role, subject["person" if role == "SELF_PERSON" else "employer"])
    own = "person" if role == "SELF_PERSON" else "employer"
    ops = {**operations(schema, schema.query_type, "query", subject),
           **{"mutation " + k: v for k, v in operations(schema, schema.mutation_type, "mutation", subject).items()}}
    assert len(ops) >= 20 and "person" in ops and "employer" in ops
    rt = client.runtime
    for field, op in ops.items():
        if field == own or (field, role) == ("_tierCall", "SELF_PERSON"):
            continue  # the holder's own records (the internal call: see the test below)
        staff = await client.gql(op, tok=STAFF)
        assert "data" in staff, (field, op, staff)  # a well-formed operation: it ran for agency staff
        before = rt.statements.count
        body = await client.gql(op, tok=tok)
        assert forbidden(body), (field, op, body)
        assert rt.statements.count == before, field  # refused before any SQL
        assert subject["person"] not in str(body) and subject["employer"] not in str(body)
    assert "errors" not in await client.gql(ops[own], tok=tok)


async def test_internal_calls_only_about_the_holder(served: Any) -> None:
    """A parent asks its children for a self caller's parts with a token bound to the same
    subject: the child's gate lets it ask about that subject only, and only person calls."""
    client, _, subject = served
    me = self_token("SELF_PERSON", subject["person"])
    other = await client.runtime.pool.fetchval("select id_number from person where id_number <> $1 limit 1",
                                               subject["person"])
    q = "query($k: String!, $a: [JSON!]!) { _tierCall(kind: $k, args: $a) }"
    mine = await client.gql(q, {"k": "statement", "a": [{"id": subject["person"], "year": 2025}]}, tok=me)
    assert "errors" not in mine and len(mine["data"]["_tierCall"]) == 1
    for kind, args in (("person", [{"id": other}]), ("statement", [{"id": subject["person"], "year": 2025},
                                                                     {"id": other, "year": 2025}]),
                       ("presence", [{"since": 0, "first": 10}]), ("duplicates", [{"id": subject["person"]}]),
                       ("employer", [{"code": subject["employer"]}])):
        body = await client.gql(q, {"k": kind, "a": args}, tok=me)
        assert forbidden(body), (kind, body)
        assert other not in str(body)


async def test_introspection_and_directory_beyond_names_are_refused(served: Any) -> None:
    client, schema, subject = served
    me = self_token("SELF_PERSON", subject["person"])
    assert forbidden(await client.gql("{ __schema { types { name } } }", tok=me))
    region = schema.get_type("Region")
    assert isinstance(region, GraphQLObjectType)
    refused = 0
    for fname, f in region.fields.items():
        args = [f"{a}: {literal(d.type, a, subject)}" for a, d in f.args.items() if isinstance(d.type, GraphQLNonNull)]
        sel = "" if isinstance(get_named_type(f.type), (GraphQLScalarType, GraphQLEnumType)) else " { __typename }"
        inner = f"{fname}{'(' + ', '.join(args) + ')' if args else ''}{sel}"
        body = await client.gql(f'{{ person(idNumber: "{subject["person"]}") {{ region {{ {inner} }} }} }}', tok=me)
        if fname in ("code", "name"):
            assert "errors" not in body, body
        else:
            assert forbidden(body), (fname, body)
            refused += 1
    assert refused >= 5
    pools = '{ person(idNumber: "%s") { transfers { schemes { fromPool { id } } } } }' % subject["person"]
    assert forbidden(await client.gql(pools, tok=me))
    # Through a fragment, an alias or a variable, someone else stays someone else.
    other = await client.runtime.pool.fetchval("select id_number from person where id_number <> $1 limit 1",
                                               subject["person"])
    for op, variables in (
        ('{ a: person(idNumber: "%s") { name } b: person(idNumber: "%s") { name } }' % (subject["person"], other), {}),
        ("query($i: String!) { ...F } fragment F on Query { person(idNumber: $i) { name } }", {"i": other}),
        ('{ ... on Query { person(idNumber: "%s") { name } } }' % other, {}),
    ):
        body = await client.gql(op, variables, tok=me)
        assert forbidden(body), (op, body)
        assert other not in str(body)
    # An employer's token reads no person, a person's no employer, even one they work for.
    boss = self_token("SELF_EMPLOYER", subject["employer"])
    assert forbidden(await client.gql(STATEMENT, {"id": subject["person"]}, tok=boss))
    assert forbidden(await client.gql(EMPLOYER, {"c": subject["employer"]}, tok=me))


async def test_own_records_are_the_staff_answer_audited_and_never_cached(served: Any,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tierfed")
    client, _, subject = served
    person, employer = subject["person"], subject["employer"]
    me = self_token("SELF_PERSON", person.lower())  # an x check character is the same person
    staff = await client.data(STATEMENT, {"id": person}, tok=token("000000", ("VIEWER",)))
    pool = client.runtime.pool
    audited = "select count(*) from pii_audit where id_number = $1 and operation = $2"
    before = await pool.fetchval(audited, person, "SELF_PERSON:Mine")
    for _ in range(3):
        mine = await client.data(STATEMENT, {"id": person}, tok=me)
        assert mine == staff
        assert mine["person"]["idNumber"] == codes.mask_id(person)
    # Each of the three reads was audited: none was served from the answer cache.
    assert await pool.fetchval(audited, person, "SELF_PERSON:Mine") == before + 3
    boss = self_token("SELF_EMPLOYER", employer)
    ours = await client.data(EMPLOYER, {"c": employer}, tok=boss)
    assert ours == await client.data(EMPLOYER, {"c": employer}, tok=token("000000", ("VIEWER",)))
    assert sum(r["contributorMonths"] for r in ours["employer"]["contributions"]) > 0
    assert await pool.fetchval(audited, employer, "SELF_EMPLOYER:Ours") == 1
    # The AUDITOR sees those reads.
    reads = await client.data("query($i: String) { piiReads(idNumber: $i, limit: 10) { caller operation } }",
                              {"i": person}, tok=STAFF)
    assert {"caller": person, "operation": "SELF_PERSON:Mine"} in reads["piiReads"]
    # The access log names the request, never the holder's ID number.
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("tierfed")]
    assert any('"operation": "Mine"' in line or "Mine" in line for line in logged)
    assert not any(person in line for line in logged)


async def test_bad_self_tokens_are_refused(served: Any) -> None:
    client, _, subject = served
    cases = [
        token("000000", ("SELF_PERSON",), sub="not-an-id-number"),
        token("000000", ("SELF_EMPLOYER",), sub=subject["person"]),
        token("000000", ("SELF_PERSON", "VIEWER"), sub=subject["person"]),
        token("000000", ("SELF_PERSON", "SELF_EMPLOYER"), sub=subject["person"]),
    ]
    for tok in cases:
        r = await client.post(STATEMENT, {"id": subject["person"]}, tok=tok)
        assert r.status_code == 401, r.text
        assert r.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # Data versions and metrics are not theirs either.
    me = self_token("SELF_PERSON", subject["person"])
    r = await client.http.get("/tierfed/version", headers={"Authorization": f"Bearer {me}"})
    assert r.status_code == 403
