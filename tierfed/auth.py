"""Bearer tokens to a Caller, and the one chokepoint that decides what a caller may see."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from tierfed.tiers.tree import Tree

from . import codes
from .config import AuthConfig
from .errors import Code, TierfedError, UserError, forbidden

ROLES = ("VIEWER", "OPERATOR", "PII_READER", "AUDITOR")
ASYMMETRIC = ["EdDSA", "ES256"]


@dataclass(frozen=True)
class Caller:
    sub: str
    scope: str
    roles: frozenset[str]
    token: str

    def has(self, role: str) -> bool:
        return role in self.roles


class Keys:
    """Verification (and, with a secret or private key, signing) for one node's issuer."""

    def __init__(self, cfg: AuthConfig) -> None:
        self.cfg = cfg
        self.verify_keys: list[Any] = []
        self.algorithms: list[str]
        if cfg.jwt_secret:
            self.algorithms = ["HS256"]
            self.verify_keys = [cfg.jwt_secret, *cfg.previous_secrets]
        else:
            self.algorithms = ASYMMETRIC
            self.verify_keys = [Path(cfg.jwt_public_key_file or "").read_bytes()]

    def sign(self, sub: str, scope: str, roles: list[str], ttl: int) -> str:
        now = int(time.time())
        claims = {"sub": sub, "scope": scope, "roles": roles, "iat": now, "exp": now + ttl}
        if self.cfg.issuer:
            claims["iss"] = self.cfg.issuer
        if self.cfg.jwt_secret:
            return jwt.encode(claims, self.cfg.jwt_secret, algorithm="HS256")
        if not self.cfg.jwt_private_key_file:
            raise UserError("this node only verifies tokens: set [auth].jwt_private_key_file to sign")
        key = Path(self.cfg.jwt_private_key_file).read_bytes()
        alg = "EdDSA" if b"PRIVATE KEY" in key and b"EC PRIVATE" not in key and _is_ed25519(key) else "ES256"
        return jwt.encode(claims, key, algorithm=alg)

    def verify(self, token: str, tree: Tree) -> Caller:
        claims = None
        last: Exception | None = None
        for key in self.verify_keys:
            try:
                claims = jwt.decode(
                    token, key, algorithms=self.algorithms,
                    options={"require": ["exp", "sub"]},
                    issuer=self.cfg.issuer if self.cfg.issuer else None,
                )
                break
            except jwt.ExpiredSignatureError:
                raise unauthenticated("token has expired: ask for a new one") from None
            except jwt.InvalidTokenError as e:
                last = e
        if claims is None:
            raise unauthenticated(f"token is not valid: {_reason(last)}")
        scope = claims.get("scope")
        roles = claims.get("roles", [])
        if not isinstance(scope, str) or not codes.REGION_RE.match(scope) or scope not in tree:
            raise unauthenticated("token's scope claim must be a known 6-digit region code")
        if not isinstance(roles, list) or any(r not in ROLES for r in roles):
            raise unauthenticated(f"token's roles claim must be a list of {', '.join(ROLES)}")
        return Caller(str(claims["sub"]), scope, frozenset(roles), token)


def _is_ed25519(pem: bytes) -> bool:
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    return isinstance(load_pem_private_key(pem, None), ed25519.Ed25519PrivateKey)


def _reason(e: Exception | None) -> str:
    if isinstance(e, jwt.InvalidAlgorithmError):
        return "signed with an algorithm this node does not accept"
    if isinstance(e, jwt.InvalidSignatureError):
        return "signature does not match this node's issuer key"
    if isinstance(e, jwt.DecodeError):
        return "not a well-formed JWT"
    if isinstance(e, jwt.MissingRequiredClaimError):
        return str(e)
    return str(e) if e else "unknown"


def unauthenticated(message: str) -> TierfedError:
    return TierfedError(Code.UNAUTHENTICATED, message)


def bearer(header: str | None) -> str:
    if not header:
        raise unauthenticated("no token: send Authorization: Bearer <JWT>")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthenticated("Authorization header must be 'Bearer <JWT>'")
    return token.strip()


class Access:
    """What one caller may see; every resolver asks here and nowhere else."""

    def __init__(self, caller: Caller, tree: Tree) -> None:
        self.caller = caller
        self.tree = tree

    def region(self, code: str, what: str = "records") -> None:
        """Records of ``code`` are readable only inside the token's scope subtree."""
        if not self.tree.within(code, self.caller.scope):
            raise forbidden(
                f"{what} of region {code} are outside your token's scope {self.caller.scope}",
                region=code, scope=self.caller.scope)

    def role(self, role: str, action: str) -> None:
        if not self.caller.has(role):
            raise forbidden(f"{action} needs the {role} role; your token has {sorted(self.caller.roles) or 'none'}")

    @property
    def pii(self) -> bool:
        return self.caller.has("PII_READER")
