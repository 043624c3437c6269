"""A node's TOML configuration, read once into frozen dataclasses.

A tier is data: a node is its region, the children that hold parts of its
subtree, its limits and its auth keys. Everything that can be checked without
the database is checked here; ``tiers.node`` checks the topology against the tree.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import codes
from .errors import UserError


@dataclass(frozen=True)
class ChildConfig:
    region: str
    url: str
    timeout_s: float = 5.0
    name: str = ""
    # The child's node key (verifies the child's questions about changes it takes part in).
    public_key_file: str | None = None


@dataclass(frozen=True)
class ParentConfig:
    """The node this node answers to: told when the persons this subtree holds change, and
    (with its public key) the only one whose signed change steps this node accepts."""

    name: str
    url: str
    public_key_file: str | None = None
    timeout_s: float = 5.0


@dataclass(frozen=True)
class Limits:
    max_depth: int = 12
    max_aliases: int = 30
    max_root_fields: int = 20
    max_cost: int = 50_000
    max_body_bytes: int = 100_000
    deadline_s: float = 30.0
    max_import_bytes: int = 10 * 2**30  # a file submitted to POST /imports/{kind}


@dataclass(frozen=True)
class OidcConfig:
    """[auth.oidc]: tokens of an OpenID Connect provider, verified against its published keys
    (JWKS), alongside the node's own keys. ``jwks_uri`` or ``discovery_url`` (the provider's
    /.well-known/openid-configuration, read once for its jwks_uri)."""

    issuer: str
    audience: str
    jwks_uri: str | None = None
    discovery_url: str | None = None
    subject_claim: str = "sub"
    roles_claim: str = "roles"
    scope_claim: str = "region"
    # An identity provider's role names to tierfed's, e.g. {"insured" = "SELF_PERSON"}; names
    # not listed are taken as they are.
    role_map: tuple[tuple[str, str], ...] = ()
    algorithms: tuple[str, ...] = ("RS256", "ES256", "EdDSA")
    cache_lifespan_s: float = 300.0
    # At most one fetch of the keys per this many seconds for a token with an unknown kid.
    refetch_cooldown_s: float = 30.0
    timeout_s: float = 5.0


@dataclass(frozen=True)
class AuthConfig:
    jwt_secret: str | None = None
    jwt_public_key_file: str | None = None
    jwt_private_key_file: str | None = None
    issuer: str | None = None
    # Previous keys still accepted while tokens signed with them expire (rotation).
    previous_secrets: tuple[str, ...] = ()
    previous_public_key_files: tuple[str, ...] = ()
    oidc: OidcConfig | None = None


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = True
    # On the node's own address /metrics needs a token with this role; with
    # ``listen`` it is served there instead, without a token, and not on the node's address.
    role: str = "OPERATOR"
    listen: str | None = None


@dataclass(frozen=True)
class TelemetryConfig:
    # OTLP over HTTP, e.g. "http://127.0.0.1:4318/v1/traces"; without it no span is made.
    otlp_endpoint: str | None = None
    service_name: str | None = None
    sample_ratio: float = 1.0


@dataclass(frozen=True)
class NodeConfig:
    name: str
    region: str
    listen: str = "127.0.0.1:8000"
    database_url: str | None = None
    data_dir: str = ".tierfed"
    auth: AuthConfig = field(default_factory=AuthConfig)
    children: tuple[ChildConfig, ...] = ()
    limits: Limits = field(default_factory=Limits)
    graphiql: bool = True
    introspection: bool = True
    cors_origins: tuple[str, ...] = ()
    persisted_only: bool = False
    persisted_operations_file: str | None = None
    check_children_at_start: bool = True
    parent: ParentConfig | None = None
    # Seconds between reads of the children's person feeds and retries of telling the parent.
    index_sync_interval_s: float = 30.0
    workers: int = 1
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    private_key_file: str | None = None
    recovery_interval_s: float = 5.0
    # [cache].max_bytes: bytes of serialized answers kept per worker process (0: no answer cache).
    cache_max_bytes: int = 64 * 2**20
    # [node].link_lease_s: how long a parent may answer from what this node told it without asking
    # again (tiers.links); its links are checked every third of it. 0: parents check per request.
    link_lease_s: float = 6.0
    # [live].max_subscriptions: live answers (subscriptions) one worker process serves at once.
    max_subscriptions: int = 10_000
    # [node].shutdown_grace_s: how long a stopping node waits for requests in flight before it cancels them.
    shutdown_grace_s: int = 30

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])


def _get(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = None) -> Any:
    if not isinstance(table, dict):
        raise UserError(f"config {where}: expected a table of keys and values, got {table!r}")
    if key not in table:
        return default
    value = table[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise UserError(f"config {where}.{key}: expected {names}, got {value!r}")
    return value


def parse(data: dict[str, Any], base: Path | None = None) -> NodeConfig:
    """Build a NodeConfig from parsed TOML; raises UserError naming the bad key."""
    node = data.get("node")
    if not isinstance(node, dict):
        raise UserError("config: missing [node] table with name and region")
    name = _get(node, "name", str, "[node]")
    region = _get(node, "region", str, "[node]")
    if not name:
        raise UserError("config [node].name: required, e.g. name = \"guangdong\"")
    if region is None:
        raise UserError("config [node].region: required, the 6-digit code of the subtree this node answers for")
    try:
        codes.region_code(region)
    except ValueError as e:
        raise UserError(f"config [node].region: {e}") from None
    listen = _get(node, "listen", str, "[node]", "127.0.0.1:8000")
    if ":" not in listen or not _port_ok(listen.rsplit(":", 1)[1]):
        raise UserError(f"config [node].listen: expected host:port, got {listen!r}")
    database_url = _get(node, "database_url", str, "[node]") or os.environ.get("DATABASE_URL") or None

    auth_t = data.get("auth", {})
    if not isinstance(auth_t, dict):
        raise UserError("config [auth]: expected a table")

    def path(p: str | None) -> str | None:
        if p is None:
            return None
        q = Path(p)
        return str(q if q.is_absolute() or base is None else base / q)

    auth = AuthConfig(
        jwt_secret=_get(auth_t, "jwt_secret", str, "[auth]"),
        jwt_public_key_file=path(_get(auth_t, "jwt_public_key_file", str, "[auth]")),
        jwt_private_key_file=path(_get(auth_t, "jwt_private_key_file", str, "[auth]")),
        issuer=_get(auth_t, "issuer", str, "[auth]"),
        previous_secrets=tuple(_get(auth_t, "previous_secrets", list, "[auth]", [])),
        previous_public_key_files=tuple(
            path(str(f)) or "" for f in _get(auth_t, "previous_public_key_files", list, "[auth]", [])),
        oidc=_oidc(auth_t.get("oidc")),
    )
    if not auth.jwt_secret and not auth.jwt_public_key_file:
        raise UserError("config [auth]: set jwt_secret (HS256) or jwt_public_key_file (EdDSA/ES256)")
    if auth.jwt_secret is not None and len(auth.jwt_secret) < 32:
        raise UserError("config [auth].jwt_secret: too short, use at least 32 characters")
    for secret in auth.previous_secrets:
        if not isinstance(secret, str) or len(secret) < 32:
            raise UserError("config [auth].previous_secrets: each must be a string of at least 32 characters")
    for f in (auth.jwt_public_key_file, auth.jwt_private_key_file, *auth.previous_public_key_files):
        if f and not Path(f).is_file():
            raise UserError(f"config [auth]: key file {f} does not exist")

    children = []
    raw_children = data.get("children", [])
    if not isinstance(raw_children, list):
        raise UserError("config [[children]]: expected an array of tables")
    for i, c in enumerate(raw_children):
        where = f"[[children]] #{i + 1}"
        creg = _get(c, "region", str, where)
        url = _get(c, "url", str, where)
        if not creg or not url:
            raise UserError(f"config {where}: needs region and url")
        try:
            codes.region_code(creg)
        except ValueError as e:
            raise UserError(f"config {where}.region: {e}") from None
        _node_url(url, f"{where}.url")
        timeout = float(_get(c, "timeout_s", (int, float), where, 5.0))
        if not 0 < timeout <= 120:
            raise UserError(f"config {where}.timeout_s: expected 0 < timeout_s <= 120, got {timeout}")
        child_key = path(_get(c, "public_key_file", str, where))
        if child_key and not Path(child_key).is_file():
            raise UserError(f"config {where}.public_key_file: {child_key} does not exist")
        children.append(ChildConfig(creg, url, timeout, _get(c, "name", str, where, "") or creg, child_key))

    interval = float(_get(node, "index_sync_interval_s", (int, float), "[node]", 30.0))
    if not 0 < interval <= 3600:
        raise UserError(f"config [node].index_sync_interval_s: expected 0 < seconds <= 3600, got {interval}")

    grace = _get(node, "shutdown_grace_s", int, "[node]", 30)
    if not 1 <= grace <= 3600:
        raise UserError(f"config [node].shutdown_grace_s: expected whole seconds from 1 to 3600, got {grace}")

    lease = float(_get(node, "link_lease_s", (int, float), "[node]", 6.0))
    if not (lease == 0 or 0.3 <= lease <= 600):
        raise UserError(f"config [node].link_lease_s: expected 0 (parents check per request) or 0.3 to 600 seconds, "
                        f"got {lease}")
    live_t = data.get("live", {})
    if not isinstance(live_t, dict):
        raise UserError("config [live]: expected a table with max_subscriptions")
    max_subs = _get(live_t, "max_subscriptions", int, "[live]", 10_000)
    if not 0 <= max_subs <= 1_000_000:
        raise UserError(f"config [live].max_subscriptions: expected 0 (no subscriptions) to 1000000, got {max_subs}")

    lim_t = data.get("limits", {})
    defaults = Limits()
    limits = Limits(
        max_depth=_get(lim_t, "max_depth", int, "[limits]", defaults.max_depth),
        max_aliases=_get(lim_t, "max_aliases", int, "[limits]", defaults.max_aliases),
        max_root_fields=_get(lim_t, "max_root_fields", int, "[limits]", defaults.max_root_fields),
        max_cost=_get(lim_t, "max_cost", int, "[limits]", defaults.max_cost),
        max_body_bytes=_get(lim_t, "max_body_bytes", int, "[limits]", defaults.max_body_bytes),
        deadline_s=float(_get(lim_t, "deadline_s", (int, float), "[limits]", defaults.deadline_s)),
        max_import_bytes=_get(lim_t, "max_import_bytes", int, "[limits]", defaults.max_import_bytes),
    )
    for name_, value in vars(limits).items():
        if not 0 < value < float("inf"):  # nan and infinity too
            raise UserError(f"config [limits].{name_}: must be a positive finite number, got {value}")
    private_key = path(_get(node, "private_key_file", str, "[node]"))
    if private_key and not Path(private_key).is_file():
        raise UserError(f"config [node].private_key_file: {private_key} does not exist")
    recovery = float(_get(node, "recovery_interval_s", (int, float), "[node]", 5.0))
    if not 0 < recovery <= 3600:
        raise UserError(f"config [node].recovery_interval_s: expected 0 < value <= 3600, got {recovery}")
    parent = None
    parent_t = data.get("parent")
    if parent_t is not None:
        if not isinstance(parent_t, dict):
            raise UserError("config [parent]: expected a table with url (and name, public_key_file)")
        p_name = _get(parent_t, "name", str, "[parent]", "parent")
        p_url = _get(parent_t, "url", str, "[parent]")
        p_key = path(_get(parent_t, "public_key_file", str, "[parent]"))
        if not p_name or not p_url:
            raise UserError("config [parent]: needs url, the parent node's /graphql address")
        _node_url(p_url, "[parent].url")
        if p_key and not Path(p_key).is_file():
            raise UserError(f"config [parent].public_key_file: {p_key} does not exist")
        p_timeout = float(_get(parent_t, "timeout_s", (int, float), "[parent]", 5.0))
        if not 0 < p_timeout <= 120:
            raise UserError(f"config [parent].timeout_s: expected 0 < timeout_s <= 120, got {p_timeout}")
        parent = ParentConfig(p_name, p_url, p_key, p_timeout)
    http_t = data.get("http", {})
    persisted_file = path(_get(http_t, "persisted_operations_file", str, "[http]"))
    if persisted_file and not Path(persisted_file).is_file():
        raise UserError(f"config [http].persisted_operations_file: {persisted_file} does not exist")
    workers = _get(node, "workers", int, "[node]", 1)
    cache_t = data.get("cache", {})
    if not isinstance(cache_t, dict):
        raise UserError("config [cache]: expected a table with max_bytes")
    cache_bytes = _get(cache_t, "max_bytes", int, "[cache]", 64 * 2**20)
    if cache_bytes < 0:
        raise UserError(f"config [cache].max_bytes: expected 0 (no cache) or more bytes, got {cache_bytes}")
    if not 1 <= workers <= 64:
        raise UserError(f"config [node].workers: expected 1 to 64 worker processes, got {workers}")
    return NodeConfig(
        name=name,
        region=region,
        listen=listen,
        database_url=database_url,
        data_dir=_get(node, "data_dir", str, "[node]", ".tierfed"),
        auth=auth,
        children=tuple(children),
        limits=limits,
        graphiql=_get(http_t, "graphiql", bool, "[http]", True),
        introspection=_get(http_t, "introspection", bool, "[http]", True),
        cors_origins=_origins(_get(http_t, "cors_origins", list, "[http]", [])),
        persisted_only=_get(http_t, "persisted_only", bool, "[http]", False),
        persisted_operations_file=persisted_file,
        check_children_at_start=_get(node, "check_children_at_start", bool, "[node]", True),
        parent=parent,
        index_sync_interval_s=interval,
        shutdown_grace_s=grace,
        workers=workers,
        cache_max_bytes=cache_bytes,
        link_lease_s=lease,
        max_subscriptions=max_subs,
        metrics=_metrics(data.get("metrics", {})),
        telemetry=_telemetry(data.get("telemetry", {})),
        private_key_file=private_key,
        recovery_interval_s=recovery,
    )


def _oidc(t: Any) -> OidcConfig | None:
    from .auth import ROLES

    if t is None:
        return None
    w = "[auth.oidc]"
    if not isinstance(t, dict):
        raise UserError(f"config {w}: expected a table with issuer, audience and jwks_uri or discovery_url")
    issuer, audience = _get(t, "issuer", str, w), _get(t, "audience", str, w)
    if not issuer or not audience:
        raise UserError(f"config {w}: needs issuer (the provider's iss) and audience (this node's client id)")
    jwks, discovery = _get(t, "jwks_uri", str, w), _get(t, "discovery_url", str, w)
    if bool(jwks) == bool(discovery):
        raise UserError(f"config {w}: set exactly one of jwks_uri and discovery_url")
    for key, url in (("jwks_uri", jwks), ("discovery_url", discovery)):
        if url and not url.startswith(("http://", "https://")):
            raise UserError(f"config {w}.{key}: expected an http(s) URL, got {url!r}")
    role_map = _get(t, "role_map", dict, w, {})
    for k, v in role_map.items():
        if v not in ROLES or v == "NODE":
            raise UserError(f"config {w}.role_map.{k}: expected one of {', '.join(r for r in ROLES if r != 'NODE')}, "
                            f"got {v!r}")
    algorithms = _get(t, "algorithms", list, w, ["RS256", "ES256", "EdDSA"])
    if not all(isinstance(a, str) for a in algorithms):
        raise UserError(f"config {w}.algorithms: expected a list of names, e.g. [\"RS256\"]")
    allowed = {"RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"}
    if not algorithms or any(a not in allowed for a in algorithms):
        raise UserError(f"config {w}.algorithms: expected some of {', '.join(sorted(allowed))}")
    numbers = {}
    for key, default, low, high in (("cache_lifespan_s", 300.0, 1, 86400), ("refetch_cooldown_s", 30.0, 0, 3600),
                                    ("timeout_s", 5.0, 0.1, 60)):
        v = float(_get(t, key, (int, float), w, default))
        if not low <= v <= high:
            raise UserError(f"config {w}.{key}: expected {low} to {high}, got {v}")
        numbers[key] = v
    claims = {k: _get(t, k, str, w, d) for k, d in (("subject_claim", "sub"), ("roles_claim", "roles"),
                                                      ("scope_claim", "region"))}
    return OidcConfig(issuer, audience, jwks, discovery, subject_claim=claims["subject_claim"],
                      roles_claim=claims["roles_claim"], scope_claim=claims["scope_claim"],
                      role_map=tuple(sorted(role_map.items())), algorithms=tuple(algorithms),
                      cache_lifespan_s=numbers["cache_lifespan_s"], refetch_cooldown_s=numbers["refetch_cooldown_s"],
                      timeout_s=numbers["timeout_s"])


def _metrics(t: Any) -> MetricsConfig:
    from .auth import ROLES

    if not isinstance(t, dict):
        raise UserError("config [metrics]: expected a table")
    role = _get(t, "role", str, "[metrics]", "OPERATOR")
    if role not in ROLES:
        raise UserError(f"config [metrics].role: expected one of {', '.join(ROLES)}, got {role!r}")
    listen = _get(t, "listen", str, "[metrics]")
    if listen is not None and (":" not in listen or not _port_ok(listen.rsplit(":", 1)[1])):
        raise UserError(f"config [metrics].listen: expected host:port, got {listen!r}")
    return MetricsConfig(_get(t, "enabled", bool, "[metrics]", True), role, listen)


def _telemetry(t: Any) -> TelemetryConfig:
    if not isinstance(t, dict):
        raise UserError("config [telemetry]: expected a table")
    endpoint = _get(t, "otlp_endpoint", str, "[telemetry]")
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise UserError(f"config [telemetry].otlp_endpoint: expected an http(s) URL, got {endpoint!r}")
    ratio = float(_get(t, "sample_ratio", (int, float), "[telemetry]", 1.0))
    if not 0 <= ratio <= 1:
        raise UserError(f"config [telemetry].sample_ratio: expected 0 to 1, got {ratio}")
    return TelemetryConfig(endpoint or None, _get(t, "service_name", str, "[telemetry]"), ratio)


def _node_url(url: str, where: str) -> None:
    """Another node's address: http(s), and no credentials in it. Nodes authenticate to each other
    with node tokens; a user:password in the URL would travel in error messages and logs that name
    the node (a failed push, a refused import's referral)."""
    if not url.startswith(("http://", "https://")):
        raise UserError(f"config {where}: expected an http(s) URL, got {url!r}")
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as e:
        raise UserError(f"config {where}: not a valid URL ({e})") from None
    if parts.username is not None or parts.password is not None:
        raise UserError(f"config {where}: remove the user:password@ part: nodes authenticate to each other "
                        "with node tokens, and the address is shown in errors and logs")


def load(path: str | None) -> NodeConfig:
    """Read the file named by --config or TIERFED_CONFIG."""
    p = path or os.environ.get("TIERFED_CONFIG")
    if not p:
        raise UserError("no configuration: pass --config FILE or set TIERFED_CONFIG")
    f = Path(p)
    if not f.is_file():
        raise UserError(f"config file {p} does not exist")
    try:
        data = tomllib.loads(f.read_text("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"config file {p} is not valid TOML: {e}") from None
    return parse(data, f.parent)


def _port_ok(port: str) -> bool:
    """A TCP port: ASCII digits, 0 to 65535."""
    return port.isascii() and port.isdigit() and int(port) <= 65535


def _origins(values: list[Any]) -> tuple[str, ...]:
    """[http].cors_origins: web origins such as "https://dashboard.example.cn" (or "*")."""
    for v in values:
        if not isinstance(v, str) or not (v == "*" or v.startswith(("http://", "https://"))):
            raise UserError(f"config [http].cors_origins: expected origins such as \"https://dashboard.example.cn\", "
                            f"got {v!r}")
    return tuple(values)
