"""Node identities: the key pair a node signs its change steps with, and the checks
that a step comes from the one node allowed to send it.

A step is a JSON body and a short-lived EdDSA token over it (``Authorization:
Node <JWT>``): the token names the sender (``iss``), the receiver (``aud``) and
the body's SHA-256, so a captured token cannot carry another body or be replayed
at another node for long. A child accepts steps only from its configured parent
(``[parent] public_key_file``); a parent answers a child's question about a
change only when it is signed by that child's key (``[[children]] public_key_file``).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import jwt

from tierfed.errors import UserError

TTL_S = 60
LEEWAY_S = 30  # clock skew allowed between the node that signs a step and the one that checks it


def generate_key_pair(private_file: Path, public_file: Path) -> None:
    """Write a new Ed25519 key pair as PEM files (used by the demo and tests)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    private_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    private_file.chmod(0o600)
    public_file.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))


def _load_private(path: str) -> Any:
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(Path(path).read_bytes(), None)
    except (OSError, ValueError, TypeError) as e:
        raise UserError(f"config [node].private_key_file: {path} is not a PEM private key ({e})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise UserError(f"config [node].private_key_file: {path} must be an Ed25519 key")
    return key


def _load_public(path: str, where: str) -> Any:
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as e:
        raise UserError(f"config {where}: {path} is not a PEM public key ({e})") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise UserError(f"config {where}: {path} must be an Ed25519 public key")
    return key


class NodeIdentity:
    """This node's signing key and the keys of the nodes it exchanges change steps with."""

    def __init__(self, name: str, private_key_file: str | None, parent: tuple[str, str] | None,
                 children: dict[str, str | None]) -> None:
        self.name = name
        self._key = _load_private(private_key_file) if private_key_file else None
        self.parent_name = parent[0] if parent else None
        self._parent_key = _load_public(parent[1], "[parent].public_key_file") if parent else None
        self._child_keys = {n: _load_public(f, f"[[children]] {n}.public_key_file") for n, f in children.items() if f}

    @property
    def can_sign(self) -> bool:
        return self._key is not None

    def sign(self, body: bytes, to: str | list[str]) -> str:
        """A token over ``body`` for the node ``to``, or for each of the nodes ``to`` lists (the
        same step sent to several children: signed once)."""
        if self._key is None:
            raise PermissionError(f"node '{self.name}' has no identity: set [node].private_key_file")
        now = int(time.time())
        claims = {"iss": self.name, "aud": to, "iat": now, "exp": now + TTL_S,
                  "body": hashlib.sha256(body).hexdigest()}
        return jwt.encode(claims, self._key, algorithm="EdDSA")

    def verify_from_parent(self, header: str | None, body: bytes) -> str:
        """The parent's name when the step is signed by the configured parent; PermissionError otherwise."""
        if self._parent_key is None or self.parent_name is None:
            raise PermissionError(f"node '{self.name}' has no [parent] configured: it accepts no change steps")
        self._verify(header, body, self._parent_key, self.parent_name)
        return self.parent_name

    def verify_from_child(self, header: str | None, body: bytes) -> str:
        """The child's name when the question is signed by that configured child."""
        token = _token(header)
        try:
            sender = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError:
            raise PermissionError("not a well-formed node token") from None
        key = self._child_keys.get(sender) if isinstance(sender, str) else None
        if key is None or not isinstance(sender, str):
            raise PermissionError(f"sender {sender!r} is not a configured child with a public_key_file")
        self._verify(header, body, key, sender)
        return str(sender)

    def _verify(self, header: str | None, body: bytes, key: Any, sender: str) -> None:
        try:
            claims = jwt.decode(_token(header), key, algorithms=["EdDSA"], audience=self.name, leeway=LEEWAY_S,
                                options={"require": ["exp", "iss", "aud", "body"]})
        except jwt.PyJWTError as e:
            raise PermissionError(f"node signature refused: {e}") from None
        if claims.get("iss") != sender:
            raise PermissionError(f"signed by {claims.get('iss')!r}, expected {sender!r}")
        if claims.get("body") != hashlib.sha256(body).hexdigest():
            raise PermissionError("the signature does not cover this body")


def _token(header: str | None) -> str:
    scheme, _, token = (header or "").partition(" ")
    if scheme != "Node" or not token:
        raise PermissionError("change steps need 'Authorization: Node <JWT>' signed by a node key")
    return token.strip()
