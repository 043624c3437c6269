"""Property: under any sequence of records (late ones included), fund flows (late ones
included) and raises, the pools' balances add up, to the fen, to their origins' opening
balances plus every pooled contribution minus every benefit of the records they cover,
plus every booked income less every booked expenditure; nothing is covered twice."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tierfed.tiers.figures import BOOKED, FUND_INCOME

from tests.conftest import node_client, node_config, token
from tierfed import codes
from tierfed.importer import ImportFailed, import_file

# Hainan: four cities (one without counties) and counties administered by the province.
CITIES = ["460100", "460200", "460300", "460400"]
LEAVES = ["460105", "460106", "460202", "460203", "460400", "469001", "469002", "469005"]
MONTHS = [date(2024, 10, 1), date(2024, 11, 1), date(2024, 12, 1)] + [date(2025, m, 1) for m in range(1, 13)]
TOKEN = token("460000", ("VIEWER", "OPERATOR"))


def pid(i: int) -> str:
    first = f"460105199001{i + 1:02d}{i:03d}"
    return first + codes.id_check_char(first)


record = st.tuples(st.just("record"), st.integers(0, len(LEAVES) - 1), st.integers(0, len(MONTHS) - 1),
                   st.integers(0, 500_000), st.integers(0, 200_000), st.integers(0, 100), st.integers(0, 300_000))
flow = st.tuples(st.just("flow"), st.integers(0, len(LEAVES) - 1), st.integers(0, len(MONTHS) - 1),
                 st.sampled_from(BOOKED), st.integers(0, 10_000_000))
raise_op = st.tuples(st.just("raise"), st.sampled_from(["460000", *CITIES[:2]]), st.integers(4, len(MONTHS) - 1))


async def check(c: Any, url: str) -> None:
    con = await asyncpg.connect(url)
    try:
        pools = await con.fetch("select * from pool where scheme = 2")
        regions = {r["code"]: [*r["ancestors"], r["code"]] for r in await con.fetch("select code, ancestors from region")}
        rows = await con.fetch(
            "select region_code, month, employer_amount + individual_amount - individual_account_amount as v "
            "from contribution where scheme = 2 union all "
            "select region_code, month, -amount from benefit where scheme = 2 union all "
            "select region_code, month, case when category = any($1::text[]) then amount else -amount end "
            "from fund_flow where scheme = 2", list(FUND_INCOME))
    finally:
        await con.close()
    covered = Decimal(0)
    for r in rows:
        cover = [p for p in pools if p["region_code"] in regions[r["region_code"]] and p["opened_from"] <= r["month"]
                 and (p["closed_after"] is None or r["month"] <= p["closed_after"])]
        assert len(cover) <= 1, (r, cover)  # never counted twice
        if cover and r["month"] <= MONTHS[-1]:
            covered += r["v"]
    origins = sum((p["opening_balance"] for p in pools if not any(q["successor_id"] == p["id"] for q in pools)),
                  Decimal(0))
    total = Decimal(0)
    for p in pools:
        if p["closed_after"] is None:
            body = await c.data('query($id: ID!) { pool(id: $id) { balance(asOf: "2025-12") } }', {"id": p["id"]}, TOKEN)
            total += Decimal(body["pool"]["balance"])
    assert total == origins + covered


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=st.lists(st.one_of(record, record, flow, raise_op), min_size=1, max_size=7))
@example(ops=[("record", 0, 5, 300_000, 100_000, 50, 20_000), ("raise", "460000", 6),
              ("record", 1, 8, 200_000, 50_000, 10, 0), ("record", 6, 4, 1_000, 2_000, 0, 500)])
@example(ops=[("flow", 0, 5, "INTEREST", 12_345), ("raise", "460000", 6), ("flow", 1, 4, "OTHER_EXPENDITURE", 999),
              ("flow", 2, 9, "SUBSIDY_FROM_ABOVE", 5_000_000)])
@example(ops=[("flow", 0, 8, "INTEREST", 100), ("raise", "460000", 6), ("flow", 0, 8, "INTEREST", 100),
              ("flow", 1, 8, "INTEREST", 100)])
async def test_conservation_under_any_sequence(new_db: Any, tmp_path_factory: Any, ops: list[tuple]) -> None:
    url = await new_db()
    cfg = node_config("460000", "hainan")
    d = Path(tmp_path_factory.mktemp("cons"))
    async with node_client(url, cfg) as c:
        rt = c.runtime
        (d / "pools.csv").write_text("scheme,region_code,opened_from,opening_balance\n" + "".join(
            f"MEDICAL,{r},2025-01,{1000 * (i + 1)}.00\n" for i, r in enumerate(CITIES + LEAVES[5:])))
        (d / "persons.csv").write_text("id_number,name,region_code\n" + "".join(
            f"{pid(i)},测试{i},{r}\n" for i, r in enumerate(LEAVES)))
        for kind in ("pools", "persons"):
            await import_file(rt.pool, rt.node, kind, d / f"{kind}.csv", progress=False)
        used: set[tuple[int, int]] = set()
        province_raised = False
        for n, op in enumerate(ops):
            if op[0] == "record":
                _, leaf, mi, e, i, a_pct, benefit = op
                if (leaf, mi) in used:
                    continue
                used.add((leaf, mi))
                acct = i * a_pct // 100
                m = codes.month_str(MONTHS[mi])
                f = d / f"c{n}.csv"
                f.write_text("id_number,scheme,month,region_code,employer_credit_code,base,employer_amount,"
                             f"individual_amount,individual_account_amount\n{pid(leaf)},MEDICAL,{m},{LEAVES[leaf]},,"
                             f"1.00,{e / 100:.2f},{i / 100:.2f},{acct / 100:.2f}\n")
                await import_file(rt.pool, rt.node, "contributions", f, progress=False)
                f = d / f"b{n}.csv"
                f.write_text(f"id_number,scheme,month,region_code,amount\n{pid(leaf)},MEDICAL,{m},{LEAVES[leaf]},"
                             f"{benefit / 100:.2f}\n")
                await import_file(rt.pool, rt.node, "benefits", f, progress=False)
            elif op[0] == "flow":
                _, leaf, mi, category, amount = op
                f = d / f"f{n}.csv"
                f.write_text(f"scheme,region_code,month,category,amount\nMEDICAL,{LEAVES[leaf]},"
                             f"{codes.month_str(MONTHS[mi])},{category},{amount / 100:.2f}\n")
                try:
                    await import_file(rt.pool, rt.node, "fund_flows", f, progress=False)
                except ImportFailed as e:
                    # before the pools opened, or the same pool, month and category with another amount
                    assert e.errors[0].column in ("month", "amount"), e.errors
            else:
                _, region, mi = op
                body = await c.gql("mutation($in: RaisePoolingLevelInput!) { raisePoolingLevel(input: $in) { transferred } }",
                                   {"in": {"scheme": "MEDICAL", "region": region,
                                           "effectiveFrom": codes.month_str(MONTHS[mi]), "idempotencyKey": f"k{n}"}},
                                   TOKEN)
                # The first raise of the whole province, after the pools opened, is valid: it must be
                # applied (a run whose raises were all refused would prove nothing).
                if region == "460000" and MONTHS[mi] > MONTHS[3] and not province_raised:
                    assert "errors" not in body, body
                    province_raised = True
            await check(c, url)
