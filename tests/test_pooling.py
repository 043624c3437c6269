"""Raising pooling levels: the contract's rules, money conserved to the fen, safety and history."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from tierfed.tiers.pooling import pool_lock_key
from tierfed.tiers.tree import Tree

from tests.conftest import Client, import_held, load_dataset, node_client, node_config, token
from tierfed.generator import Options, generate

OPERATOR = token("440000", ("VIEWER", "OPERATOR"), sub="operator-gd")
RAISE = """mutation($in: RaisePoolingLevelInput!) { raisePoolingLevel(input: $in) {
  pool { id level region { code } openedFrom closedAfter openingBalance balance(asOf: "2025-06")
         predecessors { id closedAfter } }
  closed { id level closedAfter balance(asOf: "2025-06") } transferred dryRun replayed } }"""
GD_MEDICAL = {"scheme": "MEDICAL", "region": "440000", "effectiveFrom": "2025-04", "idempotencyKey": "gd-med-1"}


@pytest.fixture(scope="module")
def gd_data(tmp_path_factory: pytest.TempPathFactory, tree: Tree) -> Path:
    """Guangdong's part of a generated data set (so loading it per test is quick)."""
    out = tmp_path_factory.mktemp("gd")
    generate(tree, out, Options(persons=3000, first=date(2025, 1, 1), last=date(2025, 6, 1), seed=11),
             split=lambda r: "gd" if tree.within(r, "440000") else "rest")
    return out / "gd"


@pytest.fixture
async def gd(new_db: Any, gd_data: Path) -> AsyncIterator[Client]:
    url = await new_db()
    cfg = node_config("440000", "guangdong")
    await load_dataset(url, cfg, gd_data)
    async with node_client(url, cfg) as c:
        yield c


async def snapshot(c: Client) -> Any:
    con = c.runtime.pool
    return (await con.fetch("select * from pool order by id"),
            await con.fetch("select count(*) from pooling_change"),
            await con.fetch("select code, parent_code, vertically_managed from agency order by code"))


async def raise_(c: Client, tok: str = OPERATOR, **over: Any) -> dict[str, Any]:
    return await c.gql(RAISE, {"in": {**GD_MEDICAL, **over}}, tok)


async def test_dry_run_then_apply(gd: Client) -> None:
    before = await snapshot(gd)
    dry = await raise_(gd, dryRun=True)
    assert "errors" not in dry, dry
    assert await snapshot(gd) == before  # nothing changed
    r = dry["data"]["raisePoolingLevel"]
    assert r["dryRun"] is True and r["pool"]["id"] == "440000-MEDICAL-202504" and r["pool"]["level"] == "PROVINCE"
    closed = r["closed"]
    assert len(closed) == 21 and all(p["level"] == "CITY" and p["closedAfter"] == "2025-03" for p in closed)
    assert Decimal(r["transferred"]) == sum(Decimal(p["balance"]) for p in closed)
    assert r["pool"]["openingBalance"] == r["transferred"]

    real = await raise_(gd)
    assert "errors" not in real, real
    applied = real["data"]["raisePoolingLevel"]
    assert applied["dryRun"] is False and applied["replayed"] is False
    for k in ("transferred",):
        assert applied[k] == r[k]
    assert applied["pool"]["openingBalance"] == r["pool"]["openingBalance"]
    assert applied["pool"]["balance"] == r["pool"]["balance"]
    assert sorted(p["id"] for p in applied["pool"]["predecessors"]) == sorted(p["id"] for p in closed)

    # history: the pool that covers a county, before and after the raise
    q = """{ a: region(code: "440305") { pool(scheme: MEDICAL, asOf: "2025-03") { id closedAfter } }
             b: region(code: "440305") { pool(scheme: MEDICAL, asOf: "2025-04") { id predecessors { id } } }
             c: region(code: "440305") { pool(scheme: PENSION, asOf: "2025-04") { id } } }"""
    d = await gd.data(q, tok=OPERATOR)
    assert d["a"]["pool"] == {"id": "440300-MEDICAL-202401", "closedAfter": "2025-03"}
    assert d["b"]["pool"]["id"] == "440000-MEDICAL-202504"
    assert d["c"]["pool"] == {"id": "440000-PENSION-202401"}  # another scheme: untouched


async def test_money_is_conserved_across_a_raise_and_late_records(gd: Client, tmp_path: Path) -> None:
    async def covered_total() -> Decimal:
        pools = await gd.runtime.pool.fetch(
            "select id from pool where scheme = 2 and closed_after is null")
        q = "query($id: ID!) { pool(id: $id) { balance(asOf: \"2025-06\") } }"
        total = Decimal(0)
        for p in pools:
            total += Decimal((await gd.data(q, {"id": p["id"]}, OPERATOR))["pool"]["balance"])
        return total

    async def origin_plus_flows() -> Decimal:
        con = gd.runtime.pool
        opening = await con.fetchval(
            "select sum(opening_balance) from pool p where scheme = 2 "
            "and not exists (select 1 from pool q where q.successor_id = p.id)")
        c = await con.fetchval("select coalesce(sum(employer_amount + individual_amount - individual_account_amount), 0) "
                               "from contribution where scheme = 2 and month <= '2025-06-01'")
        b = await con.fetchval("select coalesce(sum(amount), 0) from benefit where scheme = 2 and month <= '2025-06-01'")
        return opening + c - b

    assert await covered_total() == await origin_plus_flows()
    assert "errors" not in await raise_(gd)
    after_raise = await covered_total()
    assert after_raise == await origin_plus_flows()

    # A late record for a month the closed Shenzhen pool covered
    person = await gd.runtime.pool.fetchval("select id_number from person where region_code like '4403%' limit 1")
    late = tmp_path / "late.csv"
    late.write_text("id_number,scheme,month,region_code,employer_credit_code,base,employer_amount,individual_amount,"
                    f"individual_account_amount\n{person},MEDICAL,2024-12,440305,,1000.00,80.00,20.00,5.00\n")
    from tierfed.importer import import_file

    q = """{ sz: pool(id: "440300-MEDICAL-202401") { balance(asOf: "2025-06") }
             gd: pool(id: "440000-MEDICAL-202504") { openingBalance balance(asOf: "2025-06") } }"""
    before = await gd.data(q, tok=OPERATOR)
    await import_file(gd.runtime.pool, gd.runtime.node, "contributions", late, progress=False)
    after = await gd.data(q, tok=OPERATOR)
    delta = Decimal("95.00")  # 80 + 20 - 5 pooled
    assert Decimal(after["sz"]["balance"]) - Decimal(before["sz"]["balance"]) == delta
    assert Decimal(after["gd"]["openingBalance"]) - Decimal(before["gd"]["openingBalance"]) == delta
    assert Decimal(after["gd"]["balance"]) - Decimal(before["gd"]["balance"]) == delta
    assert await covered_total() == after_raise + delta == await origin_plus_flows()


async def test_idempotency(gd: Client) -> None:
    first = await raise_(gd)
    again = await raise_(gd)
    assert "errors" not in again
    a, b = first["data"]["raisePoolingLevel"], again["data"]["raisePoolingLevel"]
    assert b["replayed"] is True and b["transferred"] == a["transferred"] and b["pool"]["id"] == a["pool"]["id"]
    snap = await snapshot(gd)
    other = await raise_(gd, effectiveFrom="2025-05")
    assert other["errors"][0]["extensions"]["code"] == "CONFLICT"
    assert "other input" in other["errors"][0]["message"]
    assert await snapshot(gd) == snap


@pytest.mark.parametrize("over, tok, code, words", [
    ({"region": "440300", "idempotencyKey": "k1"}, OPERATOR, "BAD_USER_INPUT", "not below CITY"),
    ({"effectiveFrom": "2024-01", "idempotencyKey": "k2"}, OPERATOR, "BAD_USER_INPUT", "not after pool"),
    ({"region": "510000", "idempotencyKey": "k3"}, OPERATOR, "BAD_USER_INPUT", "outside this node's subtree"),
    ({"region": "4400", "idempotencyKey": "k4"}, OPERATOR, "BAD_USER_INPUT", "6 digits"),
    ({"effectiveFrom": "2025-13", "idempotencyKey": "k5"}, OPERATOR, "BAD_USER_INPUT", "YYYY-MM"),
    ({"idempotencyKey": "k6"}, token("440000", ("VIEWER",)), "FORBIDDEN", "OPERATOR"),
    ({"idempotencyKey": "k7"}, token("440300", ("VIEWER", "OPERATOR")), "FORBIDDEN", "outside your token's scope"),
])
async def test_refusals_change_nothing(gd: Client, over: dict[str, Any], tok: str, code: str, words: str) -> None:
    snap = await snapshot(gd)
    body = await raise_(gd, tok, **over)
    assert body["errors"][0]["extensions"]["code"] == code, body
    assert words in body["errors"][0]["message"]
    assert await snapshot(gd) == snap


async def test_raise_above_a_raised_pool_and_below_it(gd: Client) -> None:
    assert "errors" not in await raise_(gd)
    snap = await snapshot(gd)
    body = await raise_(gd, region="440300", effectiveFrom="2025-06", idempotencyKey="sz")
    assert "already pooled at PROVINCE level" in body["errors"][0]["message"]
    assert await snapshot(gd) == snap


async def test_overlapping_raises_conflict(gd: Client) -> None:
    # A raise of Shenzhen in flight holds its region exclusively and Guangdong shared:
    # a raise of Guangdong (an overlapping subtree) must not wait, it is a CONFLICT.
    con = await asyncpg.connect(gd.runtime.pool._connect_args[0])
    try:
        async with con.transaction():
            await con.execute("select pg_advisory_xact_lock($1)", pool_lock_key(2, "440300"))
            await con.execute("select pg_advisory_xact_lock_shared($1)", pool_lock_key(2, "440000"))
            snap = await snapshot(gd)
            body = await raise_(gd)
            assert body["errors"][0]["extensions"]["code"] == "CONFLICT"
            assert await snapshot(gd) == snap
            # a raise elsewhere (Sichuan would be outside; take another Guangdong scheme) is not blocked
            ok = await raise_(gd, scheme="WORK_INJURY", idempotencyKey="wi")
            assert "errors" not in ok, ok
    finally:
        await con.close()
    # and two real raises racing on the same subtree, each valid on its own: exactly one lands
    results = await asyncio.gather(
        raise_(gd, scheme="MATERNITY", idempotencyKey="m1"),
        raise_(gd, scheme="MATERNITY", effectiveFrom="2025-05", idempotencyKey="m2"))
    ok = [r for r in results if "errors" not in r]
    assert len(ok) == 1, results
    lost = next(r for r in results if "errors" in r)
    # CONFLICT when they overlapped in time; when one ran first, the other no longer fits
    assert lost["errors"][0]["extensions"]["code"] in ("CONFLICT", "BAD_USER_INPUT")
    open_overlaps = await gd.runtime.pool.fetchval(
        "select count(*) from pool a join pool b on a.id < b.id and a.scheme = b.scheme "
        "join region_closure rc on rc.ancestor = a.region_code and rc.descendant = b.region_code "
        "or rc.ancestor = b.region_code and rc.descendant = a.region_code "
        "where a.closed_after is null and b.closed_after is null")
    assert open_overlaps == 0


async def test_a_pools_import_and_a_raise_over_it_never_both_go_through(gd: Client, tmp_path: Path) -> None:
    """A pools import adding a county's pool while a raise over its province runs: each checked
    only the pools the other had committed, so both went through and two open pools covered the
    county (its records counted in both). The import now locks the pools it adds as a raise
    does: the raise, meeting the import's locks, is a CONFLICT."""
    rt = gd.runtime
    # Shenzhen's city pool gone (its county pools are what this file brings): no stored pool overlaps.
    await rt.pool.execute("delete from pool where id = '440300-MEDICAL-202401'")
    f = tmp_path / "pools.csv"
    f.write_text("scheme,region_code,opened_from,opening_balance\nMEDICAL,440304,2024-01,1000.00\n", "utf-8")
    async with import_held(rt.pool, rt.node, "pools", f) as importing:
        body = await raise_(gd)
    rep = await importing
    assert body.get("errors") and body["errors"][0]["extensions"]["code"] == "CONFLICT", body
    assert rep.inserted == 1
    covering = await rt.pool.fetch(
        "select p.id from pool p join region_closure rc on rc.ancestor = p.region_code and rc.descendant = '440304' "
        "where p.scheme = 2 and p.closed_after is null")
    assert [r["id"] for r in covering] == ["440304-MEDICAL-202401"], covering


async def test_vertical_management_audit_and_overview(gd: Client) -> None:
    q = """{ region(code: "440305") { agencies(department: HEALTHCARE_SECURITY) { code verticallyManaged parent { code } } } }"""
    assert (await gd.data(q, tok=OPERATOR))["region"]["agencies"][0]["verticallyManaged"] is False
    assert "errors" not in await raise_(gd, verticalManagement=True)
    ag = (await gd.data(q, tok=OPERATOR))["region"]["agencies"][0]
    assert ag == {"code": "YB440305", "verticallyManaged": True, "parent": {"code": "YB440300"}}
    hr = await gd.data('{ agency(code: "RS440305") { verticallyManaged } }', tok=OPERATOR)
    assert hr["agency"]["verticallyManaged"] is False  # pension's department is untouched

    log = await gd.data("{ poolingChanges { idempotencyKey caller input result } }", tok=OPERATOR)
    ch = log["poolingChanges"][0]
    assert ch["idempotencyKey"] == "gd-med-1" and ch["caller"] == "operator-gd"
    assert ch["input"]["region"] == "440000" and ch["result"]["pool"] == "440000-MEDICAL-202504"
    denied = await gd.gql("{ poolingChanges { id } }", tok=token("440000", ("VIEWER",)))
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    ov = """query($m: Month) { poolingOverview(asOf: $m) { scheme levels { level count regions { code } } } }"""
    before = {s["scheme"]: {lv["level"]: lv["count"] for lv in s["levels"]}
              for s in (await gd.data(ov, {"m": "2025-03"}, OPERATOR))["poolingOverview"]}
    after = {s["scheme"]: {lv["level"]: lv["count"] for lv in s["levels"]}
             for s in (await gd.data(ov, {"m": "2025-04"}, OPERATOR))["poolingOverview"]}
    assert before["MEDICAL"] == {"CENTRAL": 0, "PROVINCE": 0, "CITY": 21, "COUNTY": 0}
    assert after["MEDICAL"] == {"CENTRAL": 0, "PROVINCE": 1, "CITY": 0, "COUNTY": 0}
    assert after["WORK_INJURY"]["CITY"] == 21


async def test_raise_spanning_nodes_is_refused_naming_them(fresh_db: str) -> None:
    cfg = node_config("000000", "central", [{"region": "440000", "url": "http://127.0.0.1:9/graphql", "name": "guangdong"},
                                            {"region": "510000", "url": "http://127.0.0.1:10/graphql", "name": "sichuan"}])
    async with node_client(fresh_db, cfg) as c:
        rt = c.runtime
        tok = token("000000", ("OPERATOR",))
        body = await c.gql(RAISE, {"in": {**GD_MEDICAL, "region": "000000", "idempotencyKey": "n"}}, tok)
        assert body["errors"][0]["extensions"]["nodes"] == ["guangdong", "sichuan"]
        body = await c.gql(RAISE, {"in": GD_MEDICAL}, tok)
        assert "held by node 'guangdong'" in body["errors"][0]["message"]
        assert await rt.pool.fetchval("select count(*) from pool") == 0
