"""Tokens of an OpenID Connect provider, verified against its published keys (``[auth.oidc]``).

The provider's JSON Web Key Set is fetched with PyJWT's ``PyJWKClient`` and kept for
``cache_lifespan_s``; a token whose ``kid`` is not in the kept set makes the client fetch
the set again (so keys the provider rotated in are picked up at once), at most once per
``refetch_cooldown_s`` (so a flood of tokens with made-up kids cannot make this node
hammer the provider). With ``discovery_url`` the provider's
``/.well-known/openid-configuration`` is read once for its ``jwks_uri``, and its
``issuer`` must be the configured one.

Fetching is blocking (urllib): the server calls ``key_for`` in a worker thread.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from typing import Any

import jwt
from jwt import PyJWKClient

from .config import OidcConfig


class OidcError(Exception):
    """Why a provider's token could not be checked; the message is for the caller."""


class OidcKeys:
    def __init__(self, cfg: OidcConfig) -> None:
        self.cfg = cfg
        self._client: PyJWKClient | None = None
        self._lock = threading.Lock()
        self.fetches = 0  # JWKS documents fetched (tests and metrics read it)

    def issued(self, token: str) -> bool:
        """Whether the token says it comes from this provider (unverified: routing only)."""
        try:
            return jwt.decode(token, options={"verify_signature": False}).get("iss") == self.cfg.issuer
        except jwt.PyJWTError:
            return False

    def _discover(self) -> str:
        assert self.cfg.discovery_url
        try:
            with urllib.request.urlopen(self.cfg.discovery_url, timeout=self.cfg.timeout_s) as r:  # noqa: S310
                doc = json.load(r)
        except (OSError, ValueError) as e:
            raise OidcError(f"the identity provider's discovery document could not be read ({type(e).__name__})") \
                from None
        if not isinstance(doc, dict) or doc.get("issuer") != self.cfg.issuer or not isinstance(doc.get("jwks_uri"), str):
            raise OidcError("the identity provider's discovery document names another issuer or no jwks_uri")
        return str(doc["jwks_uri"])

    def client(self) -> PyJWKClient:
        with self._lock:
            if self._client is None:
                uri = self.cfg.jwks_uri or self._discover()
                keys = self

                class Counting(PyJWKClient):
                    def fetch_data(self) -> Any:
                        # Only a refetch for an unknown kid starts the cooldown (PyJWT's
                        # get_signing_key stamps it itself): PyJWT also starts it on the first
                        # fetch and on each expiry of the cache, so a key rotated in that time
                        # was refused for the whole cooldown.
                        keys.fetches += 1
                        stamp = self._last_successful_fetch
                        try:
                            return super().fetch_data()
                        finally:
                            self._last_successful_fetch = stamp

                self._client = Counting(uri, cache_jwk_set=True, lifespan=self.cfg.cache_lifespan_s,
                                        timeout=self.cfg.timeout_s, cooldown_duration=self.cfg.refetch_cooldown_s)
            return self._client

    def key_for(self, token: str) -> Any:
        """The provider's key that signed ``token`` (fetching the key set when needed)."""
        try:
            return self.client().get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientConnectionError:
            raise OidcError("the identity provider's keys could not be fetched: try again later") from None
        except (jwt.PyJWKClientError, jwt.DecodeError) as e:
            msg = str(e)
            if "Unable to find a signing key" in msg:
                raise OidcError("signed with a key the identity provider does not publish") from None
            raise OidcError(f"its signing key could not be found ({msg})") from None

    def claims(self, token: str, key: Any) -> dict[str, Any]:
        return jwt.decode(token, key, algorithms=list(self.cfg.algorithms), audience=self.cfg.audience,
                          issuer=self.cfg.issuer, leeway=30, options={"require": ["exp", "iss", "aud"]})

    def roles(self, claims: dict[str, Any]) -> list[str] | None:
        """The token's roles as tierfed names; None when the roles claim is not a list or a string."""
        raw = claims.get(self.cfg.roles_claim, [])
        if isinstance(raw, str):
            raw = raw.split()
        if not isinstance(raw, list) or not all(isinstance(r, str) for r in raw):
            return None
        mapping = dict(self.cfg.role_map)
        return [mapping.get(r) or r for r in raw]
