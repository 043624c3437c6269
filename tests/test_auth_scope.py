"""Tokens and scope: every bad token is UNAUTHENTICATED before any SQL; records outside
the token's scope subtree (ancestors and siblings included) are FORBIDDEN, missing
roles too; the directory is open to any valid token; keys rotate."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.conftest import SECRET, Client, node_client, token

NATION_Q = "{ nation { code } }"
PERIOD = '{from: "2025-01", to: "2025-06"}'


def _b64(obj: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "mallory", "scope": "000000", "roles": ["VIEWER", "OPERATOR", "PII_READER"],
            "iat": now, "exp": now + 600, **over}


def _hs256_by_hand(claims: dict[str, Any], key: bytes) -> str:
    """The key-confusion attack: HS256 with the node's public key as the secret (PyJWT will not sign it)."""
    head = _b64({"alg": "HS256", "typ": "JWT"}) + "." + _b64(claims)
    sig = hmac.new(key, head.encode(), hashlib.sha256).digest()
    return head + "." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()


def _pem_public(key: Any) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,  # type: ignore[no-any-return]
                                         serialization.PublicFormat.SubjectPublicKeyInfo)




async def _call(c: Client, tok: str | None, query: str = NATION_Q) -> tuple[int, dict[str, Any], Any]:
    headers = {"Authorization": f"Bearer {tok}"} if tok is not None else {}
    r = await c.http.post("/graphql", json={"query": query}, headers=headers)
    return r.status_code, r.json(), r.headers


def _unauthenticated(status: int, body: dict[str, Any], headers: Any) -> str:
    assert status == 401, body
    assert "data" not in body
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]
    assert headers["www-authenticate"] == "Bearer"
    return str(body["errors"][0]["message"])


BAD_TOKENS = {
    "garbage": ("abc.def.ghi", "well-formed"),
    "not even dotted": ("x" * 40, "well-formed"),
    "wrong key": (jwt.encode(_claims(), "another-secret-" + "y" * 32, algorithm="HS256"), "signature"),
    "expired": (jwt.encode(_claims(exp=int(time.time()) - 60), SECRET, algorithm="HS256"), "expired"),  # past 30 s
    "HS512 with the right secret": (jwt.encode(_claims(), SECRET, algorithm="HS512"), "algorithm"),
    "RS256": (jwt.encode(_claims(), rsa.generate_private_key(65537, 2048), algorithm="RS256"), "algorithm"),
    "alg none": (_b64({"alg": "none", "typ": "JWT"}) + "." + _b64(_claims()) + ".", "algorithm"),
    "alg none, signature kept": (_b64({"alg": "none", "typ": "JWT"}) + "." + _b64(_claims()) + "."
                                 + jwt.encode(_claims(), SECRET, algorithm="HS256").rsplit(".", 1)[1], "algorithm"),
    "no exp": (jwt.encode({k: v for k, v in _claims().items() if k != "exp"}, SECRET, algorithm="HS256"), "exp"),
    "scope not a region": (jwt.encode(_claims(scope="999999"), SECRET, algorithm="HS256"), "scope"),
    "scope malformed": (jwt.encode(_claims(scope=["000000"]), SECRET, algorithm="HS256"), "scope"),
    "unknown role": (jwt.encode(_claims(roles=["ADMIN"]), SECRET, algorithm="HS256"), "roles"),
    "roles not a list": (jwt.encode(_claims(roles="OPERATOR"), SECRET, algorithm="HS256"), "roles"),
    "not yet valid": (jwt.encode(_claims(nbf=int(time.time()) + 600), SECRET, algorithm="HS256"), "not yet valid"),
}


@pytest.mark.parametrize("case", BAD_TOKENS)
async def test_bad_tokens_are_401_before_any_sql(client: Client, case: str) -> None:
    tok, reason = BAD_TOKENS[case]
    statements = client.runtime.statements.count
    message = _unauthenticated(*await _call(client, tok))
    assert reason in message, message
    assert client.runtime.statements.count == statements


async def test_a_token_signed_by_a_clock_a_little_ahead_is_taken(client: Client) -> None:
    """Clocks of the issuer and a node differ a little: a token issued "10 s from now", or expired
    5 s ago, is taken (30 s of leeway; it had been refused as not yet valid, one in a few dozen
    fresh change steps between nodes 50 ms apart)."""
    now = int(time.time())
    for claims in (_claims(iat=now + 10), _claims(nbf=now + 10), _claims(exp=now - 5)):
        r = await client.post("{ nation { code } }", tok=jwt.encode(claims, SECRET, algorithm="HS256"))
        assert r.status_code == 200 and r.json()["data"]["nation"]["code"] == "000000", r.text


async def test_missing_or_malformed_authorization_header_is_401(client: Client) -> None:
    assert "no token" in _unauthenticated(*await _call(client, None))
    for header in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", token()):
        r = await client.http.post("/graphql", json={"query": NATION_Q}, headers={"Authorization": header})
        _unauthenticated(r.status_code, r.json(), r.headers)
    r = await client.http.get("/graphql", params={"query": NATION_Q})
    _unauthenticated(r.status_code, r.json(), r.headers)


async def test_previous_secrets_keep_old_tokens_valid_during_rotation(loaded_db: str) -> None:
    new = "rotated-secret-" + "n" * 32
    old_token = token()  # signed with SECRET
    new_token = jwt.encode(_claims(), new, algorithm="HS256")
    async with node_client(loaded_db, auth={"jwt_secret": new, "previous_secrets": [SECRET]}) as rotating:
        for tok in (old_token, new_token):
            status, body, _ = await _call(rotating, tok)
            assert status == 200 and body == {"data": {"nation": {"code": "000000"}}}
        # A node signs with the current secret only.
        signed = rotating.runtime.keys.sign("ops", "000000", ["VIEWER"], 60)
        assert jwt.decode(signed, new, algorithms=["HS256"])["sub"] == "ops"
    async with node_client(loaded_db, auth={"jwt_secret": new}) as rotated:  # the old secret retired
        assert "signature" in _unauthenticated(*await _call(rotated, old_token))
        assert (await _call(rotated, new_token))[0] == 200


async def test_asymmetric_keys_verify_only_their_own_algorithm(loaded_db: str, tmp_path: Path) -> None:
    ed, ec_key, old_ed = ed25519.Ed25519PrivateKey.generate(), ec.generate_private_key(ec.SECP256R1()), \
        ed25519.Ed25519PrivateKey.generate()
    for name, key in (("ed.pem", ed), ("ec.pem", ec_key), ("old.pem", old_ed)):
        (tmp_path / name).write_bytes(_pem_public(key))
    auth = {"jwt_public_key_file": str(tmp_path / "ed.pem"), "previous_public_key_files": [str(tmp_path / "old.pem")]}
    async with node_client(loaded_db, auth=auth) as c:
        for good in (jwt.encode(_claims(), ed, algorithm="EdDSA"), jwt.encode(_claims(), old_ed, algorithm="EdDSA")):
            assert (await _call(c, good))[1] == {"data": {"nation": {"code": "000000"}}}
        statements = c.runtime.statements.count
        bad = {
            # An ES256 header against an Ed25519 key once raised InvalidKeyError: an HTTP 500.
            "ES256 header": jwt.encode(_claims(), ec_key, algorithm="ES256"),
            "HS256 keyed with the public key": _hs256_by_hand(_claims(), _pem_public(ed)),
            "HS256 with the test secret": token(),
            "alg none": _b64({"alg": "none"}) + "." + _b64(_claims()) + ".",
            "another Ed25519 key": jwt.encode(_claims(), ed25519.Ed25519PrivateKey.generate(), algorithm="EdDSA"),
        }
        for what, tok in bad.items():
            status, body, headers = await _call(c, tok)
            assert status == 401, what
            _unauthenticated(status, body, headers)
        assert c.runtime.statements.count == statements
    async with node_client(loaded_db, auth={"jwt_public_key_file": str(tmp_path / "ec.pem")}) as es:
        assert (await _call(es, jwt.encode(_claims(), ec_key, algorithm="ES256")))[0] == 200
        assert (await _call(es, jwt.encode(_claims(), ed, algorithm="EdDSA")))[0] == 401


# ------------------------------------------------------------------------- scope

def _codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


async def _forbidden(c: Client, query: str, scope: str, roles: tuple[str, ...] = ("VIEWER",)) -> dict[str, Any]:
    body = await c.gql(query, tok=token(scope, roles))
    assert _codes(body) == ["FORBIDDEN"], body
    return body


async def _allowed(c: Client, query: str, scope: str, roles: tuple[str, ...] = ("VIEWER",)) -> Any:
    return await c.data(query, tok=token(scope, roles))


@pytest.mark.parametrize(("scope", "region"), [
    ("440000", "000000"),   # a province asking for the nation: an ancestor
    ("440300", "440000"),   # a city asking for its province
    ("440305", "440300"),   # a county asking for its city
    ("110000", "440000"),   # a sibling province
    ("440300", "440100"),   # a sibling city
    ("110000", "440300"),   # a city of another province
])
async def test_rollups_outside_the_scope_subtree_are_forbidden(client: Client, scope: str, region: str) -> None:
    q = f'{{ rollup(region: "{region}", period: {PERIOD}) {{ totals {{ scheme insured }} }} }}'
    body = await _forbidden(client, q, scope)
    err = body["errors"][0]
    assert region in err["message"] and scope in err["message"]
    assert body["data"] is None


async def test_rollups_inside_the_scope_subtree_are_allowed(client: Client) -> None:
    for scope, region in (("440000", "440000"), ("440000", "440300"), ("000000", "440305")):
        q = f'{{ rollup(region: "{region}", period: {PERIOD}) {{ region {{ code }} totals {{ insured }} }} }}'
        assert (await _allowed(client, q, scope))["rollup"]["region"]["code"] == region


async def _person_in(client: Client, prefix: str) -> str:
    idn = await client.runtime.pool.fetchval(
        "select id_number from person where region_code like $1 order by id_number limit 1", prefix + "%")
    assert idn, f"the data set has no person under {prefix}"
    return str(idn)


async def test_persons_outside_scope_are_forbidden(client: Client) -> None:
    idn = await _person_in(client, "44")
    q = f'{{ person(idNumber: "{idn}") {{ name region {{ code }} }} }}'
    body = await _forbidden(client, q, "110000", ("VIEWER", "PII_READER"))
    assert body["data"] == {"person": None}
    assert (await _allowed(client, q, "440000"))["person"]["region"]["code"].startswith("44")


async def test_pools_outside_scope_are_forbidden(client: Client) -> None:
    pid = await client.runtime.pool.fetchval(
        "select id from pool where region_code = '440000' order by id limit 1")
    assert pid
    by_id = f'{{ pool(id: "{pid}") {{ id balance(asOf: "2025-06") }} }}'
    assert (await _forbidden(client, by_id, "110000"))["data"] == {"pool": None}
    assert (await _forbidden(client, by_id, "440300"))["data"] == {"pool": None}  # a pool over an ancestor
    by_region = '{ region(code: "440000") { name pool(scheme: PENSION, asOf: "2025-06") { id } } }'
    body = await _forbidden(client, by_region, "110000")
    assert body["data"]["region"]["name"]  # the directory part is still answered
    assert (await _allowed(client, by_id, "440000"))["pool"]["id"] == pid


async def test_central_adjustment_needs_the_nation(client: Client) -> None:
    q = '{ centralAdjustment(year: 2025, ratio: "0.045") { provinces { region { code } } } }'
    await _forbidden(client, q, "440000")
    assert len((await _allowed(client, q, "000000"))["centralAdjustment"]["provinces"]) == 31


async def test_node_to_node_summaries_are_scope_checked(client: Client) -> None:
    q = '{ _tierSummaries(keys: [{region: "440000", from: "2025-01", to: "2025-02"}]) }'
    await _forbidden(client, q, "110000")
    assert (await _allowed(client, q, "440000"))["_tierSummaries"][0]["complete"] is True


async def test_roles(client: Client) -> None:
    audit = "{ piiReads(limit: 5) { idNumber } }"
    for roles in (("VIEWER",), ("VIEWER", "PII_READER", "OPERATOR")):
        body = await _forbidden(client, audit, "000000", roles)
        assert "AUDITOR" in body["errors"][0]["message"]
    changes = "{ poolingChanges(limit: 5) { id } }"
    await _forbidden(client, changes, "000000")


async def test_raise_pooling_level_without_operator_is_forbidden_and_changes_nothing(empty_client: Client) -> None:
    db = empty_client.runtime.pool
    snapshot = "select (select count(*) from pool), (select count(*) from pooling_change), " \
               "(select count(*) from agency where vertically_managed)"
    before = tuple(await db.fetchrow(snapshot))
    q = """mutation { raisePoolingLevel(input: {scheme: MEDICAL, region: "440300", effectiveFrom: "2025-01",
           idempotencyKey: "no-operator", verticalManagement: true}) { pool { id } } }"""
    for scope, roles in (("000000", ("VIEWER", "PII_READER", "AUDITOR")), ("440000", ("VIEWER",))):
        body = await _forbidden(empty_client, q, scope, roles)
        assert "OPERATOR" in body["errors"][0]["message"]
    # With OPERATOR but outside the scope: still forbidden.
    await _forbidden(empty_client, q, "110000", ("VIEWER", "OPERATOR"))
    assert tuple(await db.fetchrow(snapshot)) == before


async def test_the_directory_is_open_to_any_valid_token(client: Client) -> None:
    q = """{ nation { code name tier children { code name } }
             region(code: "440300") { name tier parent { code } ancestors { code } children { code }
                                       agencies { code name department } }
             agency(code: "RS440000") { name tier region { code } parent { code } children { code } } }"""
    for scope in ("110101", "650000", "000000"):
        d = await _allowed(client, q, scope)
        assert len(d["nation"]["children"]) == 31
        assert d["region"]["parent"]["code"] == "440000"
        assert d["agency"]["region"]["code"] == "440000"


def test_a_keyed_digest_follows_the_key_not_its_file(tmp_path: Path) -> None:
    """Statement file names are keyed by the node's signing key: the same EC key written as SEC1
    and as PKCS#8 gives the same digest; another key, another digest; a verifying node none."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from tierfed.auth import Keys
    from tierfed.config import AuthConfig

    def keys(private: Any, fmt: Any, name: str) -> Keys:
        f, pub = tmp_path / f"{name}.pem", tmp_path / f"{name}.pub"
        f.write_bytes(private.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()))
        pub.write_bytes(private.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))
        return Keys(AuthConfig(jwt_private_key_file=str(f), jwt_public_key_file=str(pub)))

    key = ec.generate_private_key(ec.SECP256R1())
    sec1 = keys(key, serialization.PrivateFormat.TraditionalOpenSSL, "sec1").keyed_digest("x", "y")
    pkcs8 = keys(key, serialization.PrivateFormat.PKCS8, "pkcs8").keyed_digest("x", "y")
    assert sec1 is not None and sec1 == pkcs8
    other = keys(ec.generate_private_key(ec.SECP256R1()), serialization.PrivateFormat.PKCS8, "other")
    assert other.keyed_digest("x", "y") != sec1
