"""The commands, the configuration, the migrations and the committed SDL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import jwt
import pytest
from graphql import build_schema, find_breaking_changes

from tests.conftest import SECRET
from tierfed.db import migrate, migration_files

ROOT = Path(__file__).resolve().parent.parent
# beside a checkout of main, or of a worktree one level further down
CONTRACT = next((p / "shared" / "contract" / "schema.graphql" for p in (ROOT.parent, ROOT.parent.parent)
                 if (p / "shared" / "contract" / "schema.graphql").exists()),
                ROOT.parent / "shared" / "contract" / "schema.graphql")


def tierfed(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "tierfed.cli", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_committed_sdl_is_what_the_server_serves() -> None:
    served = tierfed("schema").stdout
    assert (ROOT / "schema.graphql").read_text("utf-8") == served, "run `make schema` and commit schema.graphql"


@pytest.mark.skipif(not CONTRACT.exists(), reason="the shared contract is not beside this checkout")
def test_served_sdl_breaks_nothing_in_the_contract() -> None:
    contract = build_schema(CONTRACT.read_text("utf-8"))
    served = build_schema(tierfed("schema").stdout, assume_valid_sdl=True)
    assert find_breaking_changes(contract, served) == []


NEXT = CONTRACT.parent / "next.graphql"
# The parts of the contract's next.graphql this server builds (types, and Type.field coordinates).
BUILT_NEXT = ("DuplicateInsurance", "Query.duplicateInsurance", "FundAccount", "FundFlow", "Pool.account")


def _described(schema: Any, coordinate: str) -> str | None:
    type_name, _, field_name = coordinate.partition(".")
    t = schema.type_map[type_name]
    d = (t.fields[field_name] if field_name else t).description
    return " ".join(d.split()) if d else d  # line breaks of a block string are layout


@pytest.mark.skipif(not NEXT.exists(), reason="the shared contract is not beside this checkout")
def test_served_sdl_keeps_the_built_parts_of_next() -> None:
    nxt = build_schema(CONTRACT.read_text("utf-8") + "\n" + NEXT.read_text("utf-8"))
    served = build_schema(tierfed("schema").stdout, assume_valid_sdl=True)
    names = {c.split(".")[-1] for c in BUILT_NEXT} | {c.split(".")[0] for c in BUILT_NEXT if "." not in c}
    broken = [b.description for b in find_breaking_changes(nxt, served)
              if any(n in b.description for n in names)]
    assert broken == []
    # next's descriptions are part of the contract: served as written (where next gives none, one may be added)
    coordinates = [*BUILT_NEXT, *(f"{c}.{f}" for c in BUILT_NEXT if "." not in c for f in nxt.type_map[c].fields)]
    for coordinate in coordinates:
        if _described(nxt, coordinate) is not None:
            assert _described(served, coordinate) == _described(nxt, coordinate), coordinate


def write_cfg(tmp_path: Path, body: str) -> Path:
    f = tmp_path / "node.toml"
    f.write_text(body)
    return f


@pytest.mark.parametrize("body, words", [
    ('[node]\nname = "x"\n', "region"),
    ('[node]\nname = "x"\nregion = "44000"\n[auth]\njwt_secret = "%s"\n' % SECRET, "6 digits"),
    ('[node]\nname = "x"\nregion = "440000"\n', "jwt_secret"),
    ('[node]\nname = "x"\nregion = "440000"\n[auth]\njwt_secret = "short"\n', "too short"),
    ('[node\nname = "x"', "not valid TOML"),
    ('[node]\nname = "x"\nregion = "440000"\n[auth]\njwt_secret = "%s"\n[[children]]\nregion = "440300"\n'
     'url = "ftp://x"\n' % SECRET, "http(s) URL"),
    ('[node]\nname = "x"\nregion = "440000"\n[auth]\njwt_secret = "%s"\n[parent]\n'
     'url = "http://u:s3cret@central:8000/graphql"\n' % SECRET, "remove the user:password@ part"),
    # a key where a table belongs, a port past 65535, a deadline that is not a number
    ('limits = 5\n[node]\nname = "x"\nregion = "440000"\n[auth]\njwt_secret = "%s"\n' % SECRET,
     "expected a table"),
    ('http = 5\n[node]\nname = "x"\nregion = "440000"\n[auth]\njwt_secret = "%s"\n' % SECRET, "expected a table"),
    ('children = [1]\n[node]\nname = "x"\nregion = "440000"\n[auth]\njwt_secret = "%s"\n' % SECRET,
     "[[children]] #1: expected a table"),
    ('[node]\nname = "x"\nregion = "440000"\nlisten = "127.0.0.1:70000"\n[auth]\njwt_secret = "%s"\n' % SECRET,
     "expected host:port"),
    ('[node]\nname = "x"\nregion = "440000"\n[auth]\njwt_secret = "%s"\n[limits]\ndeadline_s = nan\n' % SECRET,
     "positive finite number"),
    ('[node]\nname = "x"\nregion = "440000"\n[auth]\njwt_secret = "%s"\n[http]\ncors_origins = [1]\n' % SECRET,
     "cors_origins: expected origins"),
])
def test_bad_configuration_is_one_clear_line(tmp_path: Path, body: str, words: str) -> None:
    r = tierfed("token", "--config", str(write_cfg(tmp_path, body)), "--scope", "440000")
    assert r.returncode == 2
    assert words in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("key, words", [
    ("garbage", "not an unencrypted PEM private key"),
    ("rsa", "expected an Ed25519 (EdDSA) or P-256 (ES256) private key"),
    ("public", "not an unencrypted PEM private key"),
])
def test_a_signing_key_it_cannot_sign_with_is_one_clear_line(tmp_path: Path, key: str, words: str) -> None:
    """A private key file that is not one, or of a kind no token here is signed with: refused with
    the configuration (it had been a traceback at the first token signed)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    pub = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "node.pub").write_bytes(pub)
    body = {"garbage": b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
            "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
            "public": pub}[key]
    (tmp_path / "node.key").write_bytes(body)
    cfg = write_cfg(tmp_path, f'[node]\nname = "x"\nregion = "440000"\n[auth]\njwt_public_key_file = "{tmp_path}/node.pub"\n'
                              f'jwt_private_key_file = "{tmp_path}/node.key"\n')
    r = tierfed("token", "--config", str(cfg), "--scope", "440000")
    assert r.returncode == 2, r.stderr
    assert words in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_bad_oidc_algorithms_and_workers_are_one_clear_line(tmp_path: Path) -> None:
    oidc = ('[auth.oidc]\nissuer = "https://idp"\naudience = "tierfed"\njwks_uri = "https://idp/jwks"\n'
            'algorithms = [["RS256"]]\n')
    cfg = write_cfg(tmp_path, f'[node]\nname = "x"\nregion = "440000"\n[auth]\njwt_secret = "{SECRET}"\n{oidc}')
    r = tierfed("token", "--config", str(cfg), "--scope", "440000")
    assert r.returncode == 2 and "algorithms" in r.stderr and "Traceback" not in r.stderr, r.stderr
    plain = write_cfg(tmp_path, f'[node]\nname = "x"\nregion = "440000"\n[auth]\njwt_secret = "{SECRET}"\n')
    r = tierfed("serve", "--config", str(plain), "--workers", "0")
    assert r.returncode == 2 and "--workers: expected 1 to 64, got 0" in r.stderr, r.stderr


@pytest.mark.parametrize("children, words", [
    ('[[children]]\nregion = "510000"\nurl = "http://a/graphql"\n', "outside this node's subtree"),
    ('[[children]]\nregion = "440300"\nurl = "http://a/graphql"\n[[children]]\nregion = "440305"\nurl = "http://b/graphql"\n',
     "overlap"),
    ('[[children]]\nregion = "440300"\nurl = "http://a/graphql"\n[[children]]\nregion = "440300"\nurl = "http://b/graphql"\n',
     "listed twice"),
    ('[[children]]\nregion = "449999"\nurl = "http://a/graphql"\n', "names no region"),
    ('[[children]]\nregion = "440300"\nurl = "http://127.0.0.1:9/graphql"\ntimeout_s = 1\n', "unreachable"),
])
def test_bad_topology_is_one_clear_line(tmp_path: Path, fresh_db: str, children: str, words: str) -> None:
    cfg = write_cfg(tmp_path, f'[node]\nname = "gd"\nregion = "440000"\nlisten = "127.0.0.1:9"\n'
                              f'database_url = "{fresh_db}"\n[auth]\njwt_secret = "{SECRET}"\n{children}')
    r = tierfed("serve", "--config", str(cfg))
    assert r.returncode == 2, r.stderr
    assert words in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("args, words", [
    (("demo", "--port", "70000"), "expected a TCP port from 1 to 65535"),
    (("demo", "--port", "65534"), "at most 65532"),
    (("demo", "--persons", "0"), "--persons: expected 1 to 10000000"),
    (("generate", "--out", "/proc/no-such-place/x", "--persons", "1"), "/proc/no-such-place"),
    (("statements", "--region", "440000", "--year", "\uff12\uff10\uff12\uff14", "--out", "/tmp/never-made"),
     "expected a four-digit year"),
])
def test_bad_command_line_arguments_are_one_clear_line_and_start_nothing(tmp_path: Path, args: tuple[str, ...],
                                                                         words: str) -> None:
    r = tierfed(*args, "--data-dir", str(tmp_path / "d")) if args[0] == "demo" else tierfed(*args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert words in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "d").exists()  # no embedded PostgreSQL was started for it


def test_token_command_and_env_config(tmp_path: Path) -> None:
    cfg = write_cfg(tmp_path, f'[node]\nname = "x"\nregion = "440000"\n[auth]\njwt_secret = "{SECRET}"\n')
    r = tierfed("token", "--scope", "440300", "--roles", "VIEWER,PII_READER", "--ttl", "60",
                env={"TIERFED_CONFIG": str(cfg)})
    assert r.returncode == 0, r.stderr
    claims = jwt.decode(r.stdout.strip(), SECRET, algorithms=["HS256"])
    assert claims["scope"] == "440300" and claims["roles"] == ["VIEWER", "PII_READER"]
    assert claims["exp"] - claims["iat"] == 60
    bad = tierfed("token", "--config", str(cfg), "--scope", "440300", "--roles", "ADMIN")
    assert bad.returncode == 2 and "unknown role" in bad.stderr
    node = tierfed("token", "--config", str(cfg), "--scope", "440300", "--roles", "VIEWER,NODE")
    assert node.returncode == 2 and "NODE is the role a node signs for itself" in node.stderr and not node.stdout
    assert tierfed("token", "--scope", "44").returncode == 2  # no config at all: one line too
    assert "note" not in r.stderr
    unknown = tierfed("token", "--config", str(cfg), "--scope", "449999")  # well-formed, names no shipped region
    assert unknown.returncode == 0 and "not in the shipped division list" in unknown.stderr


def test_unknown_command_and_missing_file(tmp_path: Path) -> None:
    r = tierfed("frobnicate")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = tierfed("serve", "--config", str(tmp_path / "nope.toml"))
    assert r.returncode == 2 and "does not exist" in r.stderr


EXPECTED_TABLES = {
    "region": {"code", "name", "tier", "parent_code", "ancestors"},
    "region_closure": {"ancestor", "descendant", "depth"},
    "agency": {"code", "name", "department", "kind", "region_code", "parent_code", "vertically_managed"},
    "employer": {"credit_code", "name", "region_code", "industry_risk_class"},
    "person": {"id_number", "name", "region_code"},
    "contribution": {"id_number", "scheme", "month", "region_code", "employer_credit_code", "base",
                     "employer_amount", "individual_amount", "individual_account_amount"},
    "benefit": {"id_number", "scheme", "month", "region_code", "amount"},
    "summary": {"region_code", "month", "scheme", "contributions", "employer", "individual", "individual_account",
                "base", "benefits", "benefits_paid"},
    "pool": {"id", "scheme", "region_code", "opened_from", "closed_after", "opening_balance", "successor_id",
             "created_at"},
    "pooling_change": {"id", "idempotency_key", "input", "result", "caller", "created_at"},
    "pii_audit": {"id", "at", "caller", "scope", "id_number", "operation"},
    "person_presence": {"id_number", "seq"},
    "person_index": {"id_number", "child"},
    "person_index_sync": {"child", "seq", "synced_at"},
    "import_run": {"id", "started_at", "finished_at", "caller", "scope", "via", "kind", "file_name", "sha256", "bytes",
                   "rows", "inserted", "unchanged", "bad_rows", "outcome", "message", "warnings", "version", "same_as"},
    "schema_migrations": {"version", "name", "applied_at"},
}
# 0006: changes across nodes (issue 11)
EXPECTED_TABLES.update({
    "change": {"id", "kind", "role", "parent_node", "state", "idempotency_key", "input", "plan", "result", "caller",
               "started_at", "decided_at", "owner"},  # owner: 0013, the process coordinating it (several workers)
    "change_participant": {"change_id", "node", "region", "state"},
    "change_reservation": {"change_id", "scheme", "region_code", "id_number"},
    "pool_remote_predecessor": {"predecessor_id", "successor_id", "node", "scheme", "region_code", "opened_from",
                                "closed_after", "opening_balance"},
    "insurance_transfer": {"id", "direction", "id_number", "name", "from_region", "to_region", "effective_from",
                           "schemes", "created_at"},
})
EXPECTED_TABLES |= {"data_version": {"one", "version"}, "data_version_pending": {"xid"}}  # 0007
EXPECTED_TABLES["summary"] = EXPECTED_TABLES["summary"] | {"transfers_in", "transfers_out"}
# 0012: versions pushed up the tree (issue 12)
EXPECTED_TABLES |= {"tier_link": {"child", "version", "up_until"}, "tier_lease": {"one", "until"}}
# 0008: fund flows booked from files (issue 15): one summary column per booked category
EXPECTED_TABLES["fund_flow"] = {"pool_id", "month", "category", "scheme", "region_code", "amount"}
EXPECTED_TABLES["summary"] = EXPECTED_TABLES["summary"] | {
    "fiscal_subsidy", "interest", "investment_return", "subsidy_from_above", "remittance_from_below", "other_income",
    "subsidy_to_below", "remittance_to_above", "other_expenditure", "booked_net"}
# 0010: fund budgets (issue 16): drafts, their lines per category, and every workflow step
EXPECTED_TABLES["budget"] = {"pool_id", "year", "scheme", "region_code", "state", "expected_insured",
                             "expected_contributors", "expected_beneficiaries", "basis", "returned_reason",
                             "created_at", "updated_at"}
EXPECTED_TABLES["budget_line"] = {"pool_id", "year", "category", "amount"}
EXPECTED_TABLES["budget_step"] = {"id", "pool_id", "year", "action", "from_state", "to_state", "caller", "roles",
                                  "reason", "changes", "at"}
# 0011: statements sent to persons (issue 16)
EXPECTED_TABLES["statement_sent"] = {"id_number", "year", "delivery", "region_code", "file", "sent_at"}
EXPECTED_TABLES["import_job"] = {"id", "kind", "file_name", "caller", "scope", "state", "progress", "error", "report",
                                 "started_at", "updated_at"}  # 0019
EXPECTED_TABLES["tier_link"] = EXPECTED_TABLES["tier_link"] | {"persons"}  # 0020


async def test_migrating_from_empty_gives_the_expected_schema(admin_url: str) -> None:
    import uuid

    from tests.conftest import _create_db

    url = await _create_db(admin_url, f"tierfed_empty_{uuid.uuid4().hex[:8]}")
    con = await asyncpg.connect(url)
    try:
        applied = await migrate(con)
        assert applied == sorted(name for _, name, _ in migration_files())
        assert applied[:4] == ["0001_directory_and_records.sql", "0002_pools_and_audit.sql",
                               "0003_employer_records.sql", "0004_person_index.sql"]
        rows = await con.fetch("select table_name, column_name from information_schema.columns "
                               "where table_schema = 'public' and table_name not like '%\\_20%'")
        got: dict[str, set[str]] = {}
        for r in rows:
            got.setdefault(r["table_name"], set()).add(r["column_name"])
        assert got == EXPECTED_TABLES
        kinds = dict(await con.fetch("select relname, relkind from pg_class where relname in ('contribution', 'benefit')"))
        assert kinds == {"contribution": b"p", "benefit": b"p"}  # partitioned from the first migration
        dump = await con.fetch("select table_name, column_name, data_type from information_schema.columns "
                               "where table_schema = 'public' order by 1, 2")
        counts = (await con.fetchval("select count(*) from region"), await con.fetchval("select count(*) from agency"))
        assert await migrate(con) == []  # a second run is a no-op
        assert await con.fetch("select table_name, column_name, data_type from information_schema.columns "
                               "where table_schema = 'public' order by 1, 2") == dump
        assert (await con.fetchval("select count(*) from region"), await con.fetchval("select count(*) from agency")) == counts
    finally:
        await con.close()


async def test_two_migrators_starting_together_on_an_empty_database(admin_url: str) -> None:
    """Replicas that each run migrate at start: one applies everything, the other waits and then
    finds nothing to do (both had created the migrations' table, and one failed)."""
    import asyncio
    import uuid

    from tests.conftest import _create_db

    for _ in range(3):
        url = await _create_db(admin_url, f"tierfed_race_{uuid.uuid4().hex[:8]}")
        cons = [await asyncpg.connect(url) for _ in range(2)]
        try:
            runs = await asyncio.gather(*(migrate(c) for c in cons))
        finally:
            for c in cons:
                await c.close()
        assert sorted(len(r) for r in runs) == [0, len(migration_files())], runs


def test_migrate_command_twice(tmp_path: Path, fresh_db: str) -> None:
    cfg = write_cfg(tmp_path, f'[node]\nname = "x"\nregion = "000000"\ndatabase_url = "{fresh_db}"\n'
                              f'[auth]\njwt_secret = "{SECRET}"\n')
    r = tierfed("migrate", "--config", str(cfg))
    assert r.returncode == 0 and "nothing to apply" in r.stdout, r.stderr
