"""Tokens of an OpenID Connect provider ([auth.oidc]): verified against the keys a real local
HTTP server publishes (JWKS), fetched and kept, a rotated key picked up on its first token, a
retired one refused, refetches for unknown keys rate-limited; the node's own keys still work."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.conftest import node_client, node_config, token
from tierfed.errors import UserError

ISSUER = "https://id.example.test/realms/insured"
AUDIENCE = "tierfed-central"
STATEMENT = """query($id: String!) { person(idNumber: $id) { name statement(year: 2025) { schemes { scheme months
  contributionEmployer } } } }"""


class Provider:
    """A JWKS endpoint (and a discovery document) on a loopback port; keys swapped at will."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}  # kid -> private key
        self.published: list[str] = []
        self.hits: list[str] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                provider.hits.append(self.path)
                if self.path == "/jwks":
                    body = {"keys": [provider.jwk(k) for k in provider.published]}
                elif self.path == "/.well-known/openid-configuration":
                    body = {"issuer": ISSUER, "jwks_uri": provider.url + "/jwks"}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add(self, kid: str, kind: str = "rsa") -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048) if kind == "rsa" \
            else ec.generate_private_key(ec.SECP256R1())

    def jwk(self, kid: str) -> dict[str, Any]:
        key = self.keys[kid]
        alg = RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else ECAlgorithm
        out: dict[str, Any] = alg.to_jwk(key.public_key(), as_dict=True)  # type: ignore[attr-defined]
        return {**out, "kid": kid, "use": "sig", "alg": "RS256" if alg is RSAAlgorithm else "ES256"}

    def token(self, kid: str, **claims: Any) -> str:
        key = self.keys[kid]
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300, **claims}
        alg = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
        return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def provider() -> Iterator[Provider]:
    p = Provider()
    yield p
    p.close()


def oidc_config(provider: Provider, **over: Any) -> Any:
    table = {"issuer": ISSUER, "audience": AUDIENCE, "jwks_uri": provider.url + "/jwks",
             "roles_claim": "groups", "role_map": {"insured": "SELF_PERSON", "employer": "SELF_EMPLOYER"},
             "subject_claim": "id_number", "refetch_cooldown_s": 0, **over}
    table = {k: v for k, v in table.items() if v is not None}
    return node_config(auth={"jwt_secret": "test-secret-" + "x" * 32, "oidc": table})


async def person_of(client: Any) -> str:
    return str(await client.runtime.pool.fetchval(
        "select id_number from person p where exists (select 1 from contribution c where c.id_number = p.id_number) "
        "order by 1 limit 1"))


async def test_provider_tokens_rotation_and_the_nodes_own_keys(provider: Provider, loaded_db: str) -> None:
    provider.add("k1")
    provider.published = ["k1"]
    async with node_client(loaded_db, oidc_config(provider)) as c:
        person = await person_of(c)
        t1 = provider.token("k1", sub="opaque-user-id", id_number=person, groups=["insured", "offline_access"])
        body = await c.gql(STATEMENT, {"id": person}, tok=t1)
        assert "errors" not in body, body
        assert body["data"]["person"]["statement"]["schemes"][0]["months"] > 0
        assert provider.hits.count("/jwks") == 1
        # Kept: more tokens of the same key fetch nothing.
        for _ in range(3):
            assert "errors" not in await c.gql(STATEMENT, {"id": person}, tok=t1)
        assert provider.hits.count("/jwks") == 1
        # Rotation: the provider publishes k2 only. A k2 token's unknown kid fetches the set anew
        # and is accepted; k1 tokens are refused from then on.
        provider.add("k2", "ec")
        provider.published = ["k2"]
        t2 = provider.token("k2", id_number=person, groups="insured")
        assert "errors" not in await c.gql(STATEMENT, {"id": person}, tok=t2)
        assert provider.hits.count("/jwks") == 2
        r = await c.post(STATEMENT, {"id": person}, tok=t1)
        assert r.status_code == 401 and "does not publish" in r.json()["errors"][0]["message"]
        # Someone else's statement with the provider's token: refused by the self gate.
        other = await c.runtime.pool.fetchval("select id_number from person where id_number <> $1 limit 1", person)
        refused = await c.gql(STATEMENT, {"id": other}, tok=t2)
        assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN" and refused.get("data") is None
        # The node's own tokens are accepted alongside.
        assert "errors" not in await c.gql("{ nation { code } }", tok=token())


async def test_bad_provider_tokens_are_401(provider: Provider, loaded_db: str) -> None:
    provider.add("k1")
    provider.add("stranger")
    provider.published = ["k1"]
    async with node_client(loaded_db, oidc_config(provider)) as c:
        person = await person_of(c)
        now = int(time.time())
        cases = {
            "audience": provider.token("k1", id_number=person, groups=["insured"], aud="someone-else"),
            "expired": provider.token("k1", id_number=person, groups=["insured"], exp=now - 60),
            "does not publish": provider.token("stranger", id_number=person, groups=["insured"]),
            "names none of": provider.token("k1", id_number=person, groups=["admin"]),
            "no id_number claim": provider.token("k1", groups=["insured"]),
            "ID number": provider.token("k1", id_number="12345", groups=["insured"]),
            "region claim": provider.token("k1", id_number=person, groups=["VIEWER"]),
        }
        for why, tok in cases.items():
            r = await c.post(STATEMENT, {"id": person}, tok=tok)
            assert r.status_code == 401, (why, r.text)
            err = r.json()["errors"][0]
            assert err["extensions"]["code"] == "UNAUTHENTICATED" and why in err["message"], (why, err)
        # Staff roles from the provider need a region claim; NODE never comes from it.
        staff = provider.token("k1", id_number="ops-1", groups=["VIEWER", "NODE"], region="440000")
        r = await c.post('{ region(code: "440000") { name } }', tok=staff)
        assert r.status_code == 200 and "errors" not in r.json(), r.text
        body = await c.gql('query { _tierCall(kind: "presence", args: [{since: 0, first: 1}]) }', tok=staff)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_unknown_kids_refetch_at_most_once_per_cooldown(provider: Provider, loaded_db: str) -> None:
    provider.add("k1")
    provider.published = ["k1"]
    async with node_client(loaded_db, oidc_config(provider, refetch_cooldown_s=60)) as c:
        person = await person_of(c)
        assert "errors" not in await c.gql(STATEMENT, {"id": person},
                                           tok=provider.token("k1", id_number=person, groups=["insured"]))
        # A key rotated right after the first fetch works on its first token (the first fetch had
        # started the cooldown, and the new key was refused for its whole length).
        provider.add("k2")
        provider.published = ["k1", "k2"]
        assert "errors" not in await c.gql(STATEMENT, {"id": person},
                                           tok=provider.token("k2", id_number=person, groups=["insured"]))
        assert provider.hits.count("/jwks") == 2
        for i in range(20):
            provider.add(f"made-up-{i}")
            r = await c.post(STATEMENT, {"id": person},
                             tok=provider.token(f"made-up-{i}", id_number=person, groups=["insured"]))
            assert r.status_code == 401
        assert provider.hits.count("/jwks") == 2  # the flood fetched nothing more: k2's refetch began the cooldown


async def test_discovery_document_and_config_errors(provider: Provider, loaded_db: str) -> None:
    provider.add("k1")
    provider.published = ["k1"]
    cfg = oidc_config(provider, jwks_uri=None, discovery_url=provider.url + "/.well-known/openid-configuration")
    async with node_client(loaded_db, cfg) as c:
        person = await person_of(c)
        t = provider.token("k1", id_number=person.lower(), groups=["insured"])
        body = await c.gql(STATEMENT, {"id": person}, tok=t)
        assert "errors" not in body, body
        assert provider.hits[:2] == ["/.well-known/openid-configuration", "/jwks"]
    base = {"issuer": ISSUER, "audience": AUDIENCE, "jwks_uri": provider.url + "/jwks"}
    for bad, why in (({"jwks_uri": None}, "exactly one of"), ({"discovery_url": "http://x/"}, "exactly one of"),
                     ({"jwks_uri": "file:///etc/passwd"}, "http(s) URL"), ({"audience": ""}, "audience"),
                     ({"role_map": {"x": "NODE"}}, "role_map.x"), ({"algorithms": ["HS256"]}, "algorithms"),
                     ({"refetch_cooldown_s": -1}, "refetch_cooldown_s")):
        table = {k: v for k, v in {**base, **bad}.items() if v is not None}
        with pytest.raises(UserError, match=why.replace("(", r"\(").replace(")", r"\)")):
            node_config(auth={"jwt_secret": "test-secret-" + "x" * 32, "oidc": table})
