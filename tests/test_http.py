"""GraphQL over HTTP as the GraphQL-over-HTTP spec says: methods, media types, status
codes, body limits, persisted operations, introspection, GraphiQL and CORS."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from graphql import get_introspection_query

from tests.conftest import Client, node_client, token

GQL = "application/graphql-response+json"
NATION = "{ nation { code name } }"
RAISE = """mutation { raisePoolingLevel(input: {scheme: PENSION, region: "440000", effectiveFrom: "2025-01",
           idempotencyKey: "over-get"}) { transferred } }"""


def auth(tok: str | None = None, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok or token()}", **extra}




async def test_post_json_graphql_body_and_get_give_the_same_answer(client: Client) -> None:
    h = client.http
    by_json = await h.post("/graphql", json={"query": NATION}, headers=auth())
    by_graphql = await h.post("/graphql", content=NATION, headers=auth(**{"Content-Type": "application/graphql"}))
    by_get = await h.get("/graphql", params={"query": NATION}, headers=auth())
    with_vars = await h.get("/graphql", headers=auth(), params={
        "query": "query R($c: ID!) { region(code: $c) { code name } }",
        "variables": json.dumps({"c": "000000"}), "operationName": "R"})
    expected = {"data": {"nation": {"code": "000000", "name": by_json.json()["data"]["nation"]["name"]}}}
    for r in (by_json, by_graphql, by_get):
        assert r.status_code == 200, r.text
        assert r.json() == expected
    assert with_vars.json() == {"data": {"region": expected["data"]["nation"]}}
    # Answers may carry personal data: nothing may cache them.
    assert by_get.headers["cache-control"] == "no-store"


async def test_mutation_over_get_is_refused_with_405_and_runs_nothing(empty_client: Client) -> None:
    pool = empty_client.runtime.pool
    before = (await pool.fetchval("select count(*) from pool"), await pool.fetchval("select count(*) from pooling_change"))
    statements = empty_client.runtime.statements.count
    r = await empty_client.http.get("/graphql", params={"query": RAISE},
                                    headers=auth(token(roles=("VIEWER", "OPERATOR")), Accept=GQL))
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"
    assert r.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "POST" in r.json()["errors"][0]["message"]
    # HEAD rides on the GET route: neither its query string nor a body may carry a mutation.
    for params, body in (({"query": RAISE}, None), (None, json.dumps({"query": RAISE}))):
        head = await empty_client.http.request("HEAD", "/graphql", params=params, content=body, headers=auth(
            token(roles=("VIEWER", "OPERATOR")), **{"Content-Type": "application/json"}))
        assert head.status_code in (400, 405), head.status_code
    assert empty_client.runtime.statements.count == statements
    after = (await pool.fetchval("select count(*) from pool"), await pool.fetchval("select count(*) from pooling_change"))
    assert after == before


# (query, variables, status under application/graphql-response+json, has a data entry)
CASES = {
    "parse error": ("{ nation { code ", None, 400, False),
    "validation error": ("{ nation { nope } }", None, 400, False),
    "unknown operation name": ("query A { nation { code } }", None, 400, False),
    "variable of the wrong type": ("query($p: PeriodInput!) { rollup(region: \"000000\", period: $p) { complete } }",
                                   {"p": {"from": "2025-1", "to": "2025-02"}}, 400, False),
    "missing variable": ("query($c: ID!) { region(code: $c) { code } }", {}, 400, False),
    "field error on a nullable field": ('{ region(code: "44") { code } }', None, 200, True),
    "field error nulling the whole answer": (('{ rollup(region: "4400", period: {from: "2025-01", to: "2025-02"}) '
                                             "{ complete } }"), None, 200, True),
}


@pytest.mark.parametrize("case", CASES)
async def test_status_codes_follow_the_accepted_media_type(client: Client, case: str) -> None:
    query, variables, status, has_data = CASES[case]
    body = {"query": query, "variables": variables or {}}
    if case == "unknown operation name":
        body["operationName"] = "B"
    new = await client.http.post("/graphql", json=body, headers=auth(Accept=GQL))
    assert new.status_code == status, new.text
    assert new.headers["content-type"].startswith(GQL)
    assert ("data" in new.json()) is has_data
    assert new.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    legacy = await client.http.post("/graphql", json=body, headers=auth(Accept="application/json"))
    assert legacy.status_code == 200, legacy.text
    assert legacy.headers["content-type"].startswith("application/json")
    assert ("data" in legacy.json()) is has_data
    assert legacy.json()["errors"][0]["message"] == new.json()["errors"][0]["message"]
    # No Accept header at all is a legacy client: application/json.
    bare = await client.http.post("/graphql", json=body, headers=auth())
    assert bare.status_code == 200 and bare.headers["content-type"].startswith("application/json")


async def test_unsupported_content_type_is_415(client: Client) -> None:
    for ctype in ("application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"):
        r = await client.http.post("/graphql", content=b"query=%7Bnation%7Bcode%7D%7D",
                                   headers=auth(**{"Content-Type": ctype}))
        assert r.status_code == 415, ctype
        assert "application/json" in r.json()["errors"][0]["message"]


@pytest.mark.parametrize("raw", [b"{not json", b"[" * 50_000, b"[1, 2]", b'"query"', b"\xff\xfe{}",
                                 b'{"query": 5}', b'{"query": "{ nation { code } }", "variables": "{}"}',
                                 b'{"query": "{ nation { code } }", "operationName": 7}', b""])
async def test_malformed_requests_are_400(client: Client, raw: bytes) -> None:
    statements = client.runtime.statements.count
    r = await client.http.post("/graphql", content=raw, headers=auth(**{"Content-Type": "application/json"}))
    assert r.status_code == 400, r.text
    err = r.json()["errors"][0]
    assert err["extensions"]["code"] == "BAD_USER_INPUT"
    assert any(w in err["message"] for w in ("JSON", "query", "variables")), err
    assert client.runtime.statements.count == statements


async def test_body_over_the_limit_is_413_before_any_sql(loaded_db: str) -> None:
    async with node_client(loaded_db, limits={"max_body_bytes": 2_000}) as c:
        statements = c.runtime.statements.count
        padded = {"query": NATION + " " * 3_000}
        declared = await c.http.post("/graphql", json=padded, headers=auth())

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
            for _ in range(10):
                yield b" " * 500

        streamed = await c.http.post("/graphql", content=chunks(), headers=auth(**{"Content-Type": "application/json"}))
        long_get = await c.http.get("/graphql", params={"query": NATION + " " * 3_000}, headers=auth())
        for r in (declared, streamed, long_get):
            assert r.status_code == 413, r.text
            assert "2000 bytes" in r.json()["errors"][0]["message"]
        assert c.runtime.statements.count == statements
        ok = await c.http.post("/graphql", json={"query": NATION}, headers=auth())
        assert ok.status_code == 200 and "errors" not in ok.json()


async def test_a_change_step_over_the_limit_is_read_no_further(client: Client) -> None:
    """/internal/changes reads a step before it can check its signature: a long body, however it
    is sent, is refused once past the limit, not first held whole in memory; a step too deeply
    nested for the JSON parser is a 400, not a 500."""
    handed = 0

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: 5 MB unless it stops reading
        nonlocal handed
        for _ in range(80):
            handed += 65_536
            yield b" " * 65_536

    r = await client.http.post("/internal/changes", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    assert handed <= 1_000_000 + 2 * 65_536, handed
    r = await client.http.post("/internal/changes", content=b"[" * 100_000, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "BAD_USER_INPUT", r.text


LONE = "\ud800"


@pytest.mark.parametrize("how", ["variable", "literal", "get", "operation name", "extensions"])
async def test_lone_surrogates_are_refused_with_what_to_fix(client: Client, how: str) -> None:
    """JSON can carry half of a UTF-16 pair (\\ud800), which is no character: refused as bad input
    before anything runs (it had reached the answer cache's key and the log and given a 500)."""
    statements = client.runtime.statements.count
    if how == "get":
        r = await client.http.get("/graphql", params={"query": "query($x: String) { nation { code } }",
                                                      "variables": json.dumps({"x": LONE})}, headers=auth())
    else:
        body: dict[str, Any] = {"query": "query($x: String) { nation { code } }", "variables": {"x": "ok"}}
        if how == "variable":
            body["variables"] = {"x": LONE}
        elif how == "literal":
            body = {"query": '{ person(idNumber: "%s11010119850312001") { name } }' % LONE}
        elif how == "operation name":
            body["operationName"] = "A" + LONE
        else:
            body["extensions"] = {"x": LONE}
        r = await client.http.post("/graphql", content=json.dumps(body).encode(),
                                   headers=auth(**{"Content-Type": "application/json"}))
    assert r.status_code in (200, 400), r.text
    err = r.json()["errors"][0]
    assert err["extensions"]["code"] == "BAD_USER_INPUT", err
    assert "surrogate" in err["message"], err
    assert client.runtime.statements.count == statements


def _persisted_file(tmp_path: Path, *queries: str) -> tuple[Path, list[str]]:
    ops = {hashlib.sha256(q.encode()).hexdigest(): q for q in queries}
    f = tmp_path / "operations.json"
    f.write_text(json.dumps(ops), "utf-8")
    return f, list(ops)


def _apq(sha: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha}}


async def test_persisted_only_runs_registered_operations_only(loaded_db: str, tmp_path: Path) -> None:
    registered = "query Nation { nation { code } }"
    f, (sha,) = _persisted_file(tmp_path, registered)
    async with node_client(loaded_db, http={"persisted_only": True, "persisted_operations_file": str(f)}) as c:
        h = c.http
        by_post = await h.post("/graphql", json={"extensions": _apq(sha)}, headers=auth())
        by_get = await h.get("/graphql", params={"extensions": json.dumps(_apq(sha))}, headers=auth())
        with_text = await h.post("/graphql", json={"query": registered, "extensions": _apq(sha)}, headers=auth())
        for r in (by_post, by_get, with_text):
            assert r.json() == {"data": {"nation": {"code": "000000"}}}, r.text
        statements = c.runtime.statements.count
        refused = {
            "plain query": {"query": NATION},
            "registered text without its hash": {"query": registered},
            "unknown hash": {"extensions": _apq("0" * 64)},
            "hash of another text": {"query": NATION, "extensions": _apq(sha)},
            "hash that is not a string": {"extensions": _apq(5)},  # type: ignore[arg-type]
        }
        for what, body in refused.items():
            r = await h.post("/graphql", json=body, headers=auth(Accept=GQL))
            assert r.status_code == 400, what
            assert "data" not in r.json(), what
            assert r.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", what
        assert c.runtime.statements.count == statements


async def test_a_persisted_only_child_still_answers_its_parent(new_db: Any, tmp_path: Path) -> None:
    """persisted_only holds for callers, not for the node above: a parent sends the child the
    operations it builds itself, which no frontend registered (the child had refused them all,
    and every rollup through it came back incomplete)."""
    from tests.conftest import node_config
    from tests.nodes import start_node

    f, _ = _persisted_file(tmp_path, "query Nation { nation { code } }")
    only = {"persisted_only": True, "persisted_operations_file": str(f)}
    child = await start_node(node_config("440000", "guangdong", http=only), await new_db())
    parent = await start_node(node_config("000000", "central", http=only, children=[
        {"region": "440000", "url": child.url, "name": "guangdong"}]), await new_db())
    try:
        # The child's own call up (tiers.personindex: its persons moved), with its NODE token.
        told = await parent.post("mutation TierfedPersonsChanged { _tierPersonsChanged }", {},
                                 child.runtime.index.node_token())
        assert told == {"data": {"_tierPersonsChanged": True}}, told
        # ... those exact texts only: a NODE token (a child's, replayed) runs nothing else unregistered.
        other = await parent.post("{ nation { code } }", {}, child.runtime.index.node_token())
        assert other["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", other
        rollup = '{ rollup(region: "440000", period: {from: "2025-01", to: "2025-01"}) { complete totals { insured } } }'
        sha = hashlib.sha256(rollup.encode()).hexdigest()
        parent.runtime.persisted[sha] = rollup  # registered at the parent, not at the child
        import httpx

        async with httpx.AsyncClient(timeout=30) as h:
            body = (await h.post(parent.url, json={"extensions": _apq(sha)}, headers=auth())).json()
            assert "errors" not in body and body["data"]["rollup"]["complete"] is True, body
            # ... and the child still refuses a caller's own unregistered operation.
            r = await h.post(child.url, json={"query": NATION}, headers=auth())
        assert r.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", r.text
    finally:
        await parent.stop()
        await child.stop()


async def test_registered_hashes_also_work_outside_persisted_only_mode(loaded_db: str, tmp_path: Path) -> None:
    f, (sha,) = _persisted_file(tmp_path, "{ nation { name } }")
    async with node_client(loaded_db, http={"persisted_operations_file": str(f)}) as c:
        by_hash = await c.http.post("/graphql", json={"extensions": _apq(sha)}, headers=auth())
        assert "errors" not in by_hash.json() and by_hash.json()["data"]["nation"]["name"]
        assert (await c.data(NATION))["nation"]["code"] == "000000"


async def test_introspection_can_be_switched_off(loaded_db: str) -> None:
    async with node_client(loaded_db, http={"introspection": False}) as c:
        for q in ("{ __schema { types { name } } }", '{ __type(name: "Region") { name } }',
                  "{ nation { code } __schema { queryType { name } } }"):
            r = await c.http.post("/graphql", json={"query": q}, headers=auth(Accept=GQL))
            assert r.status_code == 400, q
            err = r.json()["errors"][0]
            assert err["extensions"]["code"] == "BAD_USER_INPUT" and "introspection" in err["message"], err
        assert await c.data("{ __typename nation { __typename code } }") == \
            {"__typename": "Query", "nation": {"__typename": "Region", "code": "000000"}}


async def test_graphiql_introspection_query_passes_the_default_limits(client: Client) -> None:
    q = get_introspection_query(descriptions=True, specified_by_url=True, directive_is_repeatable=True,
                                schema_description=True, input_value_deprecation=True)
    d = await client.data(q)
    names = {t["name"] for t in d["__schema"]["types"]}
    assert {"Region", "Rollup", "Month", "Decimal"} <= names


async def test_graphiql_page_is_configurable(loaded_db: str) -> None:
    html = {"Accept": "text/html"}
    async with node_client(loaded_db) as on:
        r = await on.http.get("/graphql", headers=html)
        assert r.status_code == 200 and "graphiql" in r.text.lower()
    async with node_client(loaded_db, http={"graphiql": False}) as off:
        r = await off.http.get("/graphql", headers=html)
        assert r.status_code == 401 and "graphiql" not in r.text.lower()


async def test_cors_answers_preflight_for_listed_origins_only(loaded_db: str) -> None:
    listed, other = "https://dashboard.gd.example", "https://evil.example"
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    async with node_client(loaded_db, http={"cors_origins": [listed]}) as c:
        ok = await c.http.options("/graphql", headers={"Origin": listed, **preflight})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == listed
        assert "POST" in ok.headers["access-control-allow-methods"]
        assert "authorization" in ok.headers["access-control-allow-headers"].lower()
        no = await c.http.options("/graphql", headers={"Origin": other, **preflight})
        assert no.status_code == 400
        assert "access-control-allow-origin" not in no.headers
        actual = await c.http.post("/graphql", json={"query": NATION}, headers=auth(Origin=listed))
        assert actual.headers["access-control-allow-origin"] == listed
        foreign = await c.http.post("/graphql", json={"query": NATION}, headers=auth(Origin=other))
        assert "access-control-allow-origin" not in foreign.headers
    async with node_client(loaded_db) as closed:  # no cors_origins: no CORS at all
        r = await closed.http.options("/graphql", headers={"Origin": listed, **preflight})
        assert "access-control-allow-origin" not in r.headers


async def test_other_methods_are_405(client: Client) -> None:
    for method in ("PUT", "DELETE", "PATCH"):
        r = await client.http.request(method, "/graphql", json={"query": NATION}, headers=auth())
        assert r.status_code == 405, method

