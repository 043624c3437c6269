"""Bearer tokens to a Caller, and the one chokepoint that decides what a caller may see."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from tierfed.tiers.tree import NATION, Tree

from . import codes
from .config import AuthConfig
from .errors import Code, TierfedError, UserError, forbidden
from .selfservice import SELF_ROLES, self_role, subject

# Clock skew allowed between the node that signs a token and the one that checks it (iat, exp).
LEEWAY_S = 30

ROLES = ("VIEWER", "OPERATOR", "PII_READER", "AUDITOR", "NODE", "BUDGET_REVIEWER", "BUDGET_APPROVER")
# BUDGET_REVIEWER: the department that reviews a pool's budget; BUDGET_APPROVER: finance, which approves it.
# NODE: a token a node signs for itself (scope: its own region) for node-to-node
# work without a caller, e.g. reading a child's person feed (tiers.personindex).
# Self-service (tierfed.selfservice): a person or an employer reading their own records.
ROLES = (*ROLES, *sorted(SELF_ROLES))  # type: ignore[assignment]


@dataclass(frozen=True)
class Caller:
    sub: str
    scope: str
    roles: frozenset[str]
    token: str
    exp: float | None = None  # when the token expires (seconds since the epoch): live answers end then
    # The scope of the parent node that sent this request on the caller's behalf (its NODE token
    # in tiers.remote.NODE_HEADER, verified), or None when it did not come from a node.
    via_node: str | None = None
    # A NODE token a node signed for one receiver: that node's name (``Keys.sign(to=)``). A node
    # takes a NODE token from a node above it only when it names it (a token a parent sent one
    # child cannot be replayed at a sibling).
    to: str | None = None

    def has(self, role: str) -> bool:
        return role in self.roles


def public_key(path: str) -> tuple[list[str], Any]:
    """A verification key and the one algorithm it may verify.

    The algorithm follows from the key, never from the token's header: a token
    signed with anything else (HS256 with the public key as secret, ``none``,
    RS256, ES256 against an Ed25519 key) is refused before any signature check.
    """
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as e:
        raise UserError(f"config [auth]: {path} is not a PEM public key ({e})") from None
    if isinstance(key, ed25519.Ed25519PublicKey):
        return ["EdDSA"], key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return ["ES256"], key
    raise UserError(f"config [auth]: {path} must be an Ed25519 (EdDSA) or P-256 (ES256) public key")


class Keys:
    """Verification (and, with a secret or private key, signing) for one node's issuer.

    Verification tries the current key, then each previous one (rotation): a
    token signed with a retired key stays valid until it expires.
    """

    def __init__(self, cfg: AuthConfig) -> None:
        from .oidc import OidcKeys

        self.cfg = cfg
        self.oidc = OidcKeys(cfg.oidc) if cfg.oidc is not None else None
        self.verifiers: list[tuple[list[str], Any]]
        if cfg.jwt_secret:
            self.verifiers = [(["HS256"], k) for k in (cfg.jwt_secret, *cfg.previous_secrets)]
        else:
            files = [cfg.jwt_public_key_file or "", *cfg.previous_public_key_files]
            self.verifiers = [public_key(f) for f in files]
        if not cfg.jwt_secret and cfg.jwt_private_key_file:
            signing_key(cfg.jwt_private_key_file)  # a key it cannot sign with is a configuration error now

    def sign(self, sub: str, scope: str, roles: list[str], ttl: int, to: str | None = None) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {"sub": sub, "scope": scope, "roles": roles, "iat": now, "exp": now + ttl}
        if to is not None:
            claims["to"] = to
        if self.cfg.issuer:
            claims["iss"] = self.cfg.issuer
        if self.cfg.jwt_secret:
            return jwt.encode(claims, self.cfg.jwt_secret, algorithm="HS256")
        if not self.cfg.jwt_private_key_file:
            raise UserError("this node only verifies tokens: set [auth].jwt_private_key_file to sign")
        alg, pem = signing_key(self.cfg.jwt_private_key_file)
        return jwt.encode(claims, pem, algorithm=alg)

    def keyed_digest(self, label: str, data: str) -> str | None:
        """An HMAC-SHA256 of ``data`` under a key derived, for ``label`` alone, from this node's
        signing secret or private key: a digest nobody without that key can recompute from a
        guess (a masked ID number leaves ~45,000 candidates). None when this node only verifies."""
        if self.cfg.jwt_secret:
            material = self.cfg.jwt_secret.encode()
        elif self.cfg.jwt_private_key_file:
            # The key itself, not its file's text: the same key written another way (SEC1 or
            # PKCS#8, other line breaks) gives the same digests.
            from cryptography.hazmat.primitives import serialization

            private = serialization.load_pem_private_key(Path(self.cfg.jwt_private_key_file).read_bytes(), None)
            material = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption())
        else:
            return None
        derived = hmac.new(material, b"tierfed digest: " + label.encode(), hashlib.sha256).digest()
        return hmac.new(derived, data.encode(), hashlib.sha256).hexdigest()

    def verify(self, token: str, tree: Tree) -> Caller:
        """A caller from a token of this node's issuer, or of its OpenID Connect provider
        (whose key set may be fetched here, blocking: the GraphQL endpoint uses ``verify_async``)."""
        if self.oidc is not None and self.oidc.issued(token):
            return self._oidc_caller(token, self._oidc_key(token), tree)
        return self._own(token, tree)

    async def verify_async(self, token: str, tree: Tree) -> Caller:
        if self.oidc is not None and self.oidc.issued(token):
            key = await asyncio.to_thread(self._oidc_key, token)
            return self._oidc_caller(token, key, tree)
        return self._own(token, tree)

    def _oidc_key(self, token: str) -> Any:
        from .oidc import OidcError

        assert self.oidc is not None
        try:
            return self.oidc.key_for(token)
        except OidcError as e:
            raise unauthenticated(f"token is not valid: {e}") from None

    def _oidc_caller(self, token: str, key: Any, tree: Tree) -> Caller:
        assert self.oidc is not None
        cfg = self.oidc.cfg
        try:
            claims = self.oidc.claims(token, key)
        except jwt.ExpiredSignatureError:
            raise unauthenticated("token has expired: ask your identity provider for a new one") from None
        except jwt.InvalidAudienceError:
            raise unauthenticated(f"token is not valid: its audience is not this node ({cfg.audience})") from None
        except jwt.PyJWTError as e:
            raise unauthenticated(f"token is not valid: {_reason(e)}") from None
        roles = self.oidc.roles(claims)
        if roles is None:
            raise unauthenticated(f"token's {cfg.roles_claim} claim must be a list of role names")
        # A provider's roles this node does not know are not taken; NODE never comes from a provider.
        roles = [r for r in roles if r in ROLES and r != "NODE"]
        if not roles:
            raise unauthenticated(f"token's {cfg.roles_claim} claim names none of "
                                  f"{', '.join(r for r in ROLES if r != 'NODE')}")
        sub = claims.get(cfg.subject_claim)
        if not isinstance(sub, str) or not sub:
            raise unauthenticated(f"token has no {cfg.subject_claim} claim to name its holder")
        return _caller(sub, claims.get(cfg.scope_claim), roles, token, tree, cfg.scope_claim, claims.get("exp"))

    def _own(self, token: str, tree: Tree) -> Caller:
        claims = None
        last: Exception | None = None
        for algorithms, key in self.verifiers:
            try:
                claims = jwt.decode(
                    token, key, algorithms=algorithms, leeway=LEEWAY_S,
                    options={"require": ["exp", "sub"]},
                    issuer=self.cfg.issuer if self.cfg.issuer else None,
                )
                break
            except jwt.ExpiredSignatureError:
                raise unauthenticated("token has expired: ask for a new one") from None
            except jwt.PyJWTError as e:  # every way a token can be bad, InvalidKeyError included
                last = e
        if claims is None:
            raise unauthenticated(f"token is not valid: {_reason(last)}")
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or any(not isinstance(r, str) or r not in ROLES for r in roles):
            raise unauthenticated(f"token's roles claim must be a list of {', '.join(ROLES)}")
        caller = _caller(str(claims["sub"]), claims.get("scope"), roles, token, tree, "scope", claims.get("exp"))
        to = claims.get("to")
        return dataclasses.replace(caller, to=to) if isinstance(to, str) else caller


def _caller(sub: str, scope: Any, roles: list[str], token: str, tree: Tree, scope_claim: str,
            exp: Any = None) -> Caller:
    """The caller of verified claims. A self token (tierfed.selfservice) holds one self role and
    no other, names its holder in sub, and has no scope: it reads only its holder, wherever held.
    A scope claim in it (an identity provider's region, ``tierfed token --scope``) says where the
    holder lives, not what they may read, and is not applied: it had hidden months the node held."""
    role = self_role(frozenset(roles))
    if role is not None:
        if len(set(roles)) != 1:
            raise unauthenticated(f"a {role} token carries that role alone: its holder is not agency staff")
        try:
            sub = subject(role, sub)
        except ValueError as e:
            raise unauthenticated(f"token is not valid: {e}") from None
        scope = NATION
    if not isinstance(scope, str) or not codes.REGION_RE.match(scope) or scope not in tree:
        raise unauthenticated(f"token's {scope_claim} claim must be a known 6-digit region code")
    return Caller(sub, scope, frozenset(roles), token, float(exp) if isinstance(exp, (int, float)) else None)


def signing_key(path: str) -> tuple[str, bytes]:
    """The algorithm of a node's private key file (EdDSA or ES256) and its PEM text; UserError
    naming the file and what it should hold otherwise (it had surfaced as a traceback at the
    first signature)."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        pem = Path(path).read_bytes()
        key = load_pem_private_key(pem, None)
    except (OSError, ValueError, TypeError) as e:
        raise UserError(f"config [auth].jwt_private_key_file: {path} is not an unencrypted PEM private key "
                        f"({type(e).__name__}): give the Ed25519 or P-256 key whose public half is "
                        "jwt_public_key_file") from None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA", pem
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256", pem
    raise UserError(f"config [auth].jwt_private_key_file: {path} is a {type(key).__name__.lstrip('_')}; "
                    "expected an Ed25519 (EdDSA) or P-256 (ES256) private key")


def _reason(e: Exception | None) -> str:
    if isinstance(e, (jwt.InvalidAlgorithmError, jwt.InvalidKeyError)):
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

    def may(self, code: str) -> bool:
        """Whether records of ``code`` are inside the token's scope (no error)."""
        return self.tree.within(code, self.caller.scope)

    def role(self, role: str, action: str) -> None:
        self.any_role((role,), action)

    def any_role(self, roles: tuple[str, ...], action: str) -> None:
        """FORBIDDEN unless the caller holds one of ``roles``."""
        if not any(self.caller.has(r) for r in roles):
            raise forbidden(f"{action} needs the {' or '.join(roles)} role; "
                            f"your token has {sorted(self.caller.roles) or 'none'}")

    def node_above(self, me: str, region: str) -> bool:
        """Whether the caller is a node whose region covers ``region``, with a NODE token signed for
        this node (``me``)."""
        return self.caller.has("NODE") and self.tree.within(region, self.caller.scope) and self.caller.to == me

    def from_node_above(self, me: str, region: str, what: str) -> None:
        """FORBIDDEN unless this request comes from a node whose region covers ``region``: a NODE
        token naming this node (``me``), or the caller's token forwarded by such a node (its own
        NODE token beside it, checked at the door). For internal calls whose answers hold unmasked
        ID numbers that the node above masks and audits for its caller: never answered to a caller
        directly."""
        via = self.caller.via_node
        if self.node_above(me, region) or (via is not None and self.tree.within(region, via)):
            return
        raise forbidden(f"{what} is answered only to the node above this one, on a caller's behalf: "
                        "ask that node (it masks and audits what it passes on)")

    @property
    def pii(self) -> bool:
        return self.caller.has("PII_READER")
