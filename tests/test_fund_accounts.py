"""Fund accounts on one node: every figure of Pool.account equal to an independent
computation from the raw records, the insurance transfers and the fund-flows file
(not from the summaries), for pools at province, city and county level, with a raise
and late flows; and the fund_flows import kind's bad rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from tierfed.tiers.figures import BOOKED, FUND_EXPENDITURE, FUND_INCOME
from tierfed.tiers.tree import Tree

from tests.conftest import Client, load_dataset, node_client, node_config, token
from tierfed import codes
from tierfed.importer import ImportFailed, import_file

OP = token("000000", ("VIEWER", "OPERATOR", "PII_READER"))
ACCOUNT = """query($id: ID!, $from: Month!, $to: Month!) { pool(id: $id) {
  balance(asOf: $to)
  account(period: {from: $from, to: $to}) {
    pool { id } period { from to } openingBalance totalIncome totalExpenditure surplus closingBalance monthsOfPayment
    income { category amount } expenditure { category amount } } } }"""
HEADER = "scheme,region_code,month,category,amount\n"


@dataclass(frozen=True)
class Flow:
    scheme: str
    region: str
    month: date
    category: str
    amount: Decimal


def flows_csv(path: Path, flows: list[Flow]) -> Path:
    path.write_text(HEADER + "".join(f"{f.scheme},{f.region},{codes.month_str(f.month)},{f.category},{f.amount}\n"
                                     for f in flows), encoding="utf-8")
    return path


def m(month: int, year: int = 2025) -> date:
    return date(year, month, 1)


# Pools of the data set: Guangdong's pension pool (province), Shenzhen's medical pool (city),
# a county administered by Hainan province (its work-injury pool is at county level).
FLOWS = [
    Flow("PENSION", "440000", m(1), "FISCAL_SUBSIDY", Decimal("1000000.00")),
    Flow("PENSION", "440106", m(2), "INTEREST", Decimal("1234.56")),  # a county inside the province pool
    Flow("PENSION", "440000", m(3), "INVESTMENT_RETURN", Decimal("50000.01")),
    Flow("PENSION", "440000", m(3), "REMITTANCE_TO_ABOVE", Decimal("77777.77")),
    Flow("PENSION", "440000", m(5), "SUBSIDY_FROM_ABOVE", Decimal("88888.88")),
    Flow("PENSION", "440000", m(6), "OTHER_EXPENDITURE", Decimal("0.99")),
    Flow("MEDICAL", "440300", m(2), "FISCAL_SUBSIDY", Decimal("2500.00")),
    Flow("MEDICAL", "440304", m(4), "OTHER_INCOME", Decimal("10.10")),
    Flow("MEDICAL", "440300", m(4), "SUBSIDY_TO_BELOW", Decimal("300.30")),
    Flow("MEDICAL", "440300", m(6), "REMITTANCE_FROM_BELOW", Decimal("40.04")),
    Flow("WORK_INJURY", "469001", m(1), "INTEREST", Decimal("3.33")),
    Flow("WORK_INJURY", "469001", m(6), "OTHER_EXPENDITURE", Decimal("1.11")),
]
SCHEME_NO = {"PENSION": 1, "MEDICAL": 2, "WORK_INJURY": 3, "UNEMPLOYMENT": 4, "MATERNITY": 5}


class Raw:
    """The independent reference: figures straight from the raw tables and the flows written to files."""

    def __init__(self, con: asyncpg.Connection, tree: Tree, flows: list[Flow],
                 others: tuple[asyncpg.Connection, ...] = ()) -> None:
        """``con`` and ``others``: the databases of every node holding part of the records."""
        self.con, self.tree, self.flows = con, tree, flows
        self.cons = (con, *others)

    async def total(self, sql: str, *args: Any) -> Decimal:
        return sum([await c.fetchval(sql, *args) for c in self.cons], Decimal("0.00"))

    async def categories(self, region: str, scheme: int, first: date, last: date) -> dict[str, Decimal]:
        out = {c: Decimal("0.00") for c in (*FUND_INCOME, *FUND_EXPENDITURE)}
        if last < first:
            return out
        subtree = list(self.tree.subtree(region))
        out["CONTRIBUTIONS"] = await self.total(
            "select coalesce(sum(employer_amount + individual_amount - individual_account_amount), 0) from contribution "
            "where scheme = $1 and month between $2 and $3 and region_code = any($4::text[])", scheme, first, last, subtree)
        out["BENEFITS"] = await self.total(
            "select coalesce(sum(amount), 0) from benefit "
            "where scheme = $1 and month between $2 and $3 and region_code = any($4::text[])", scheme, first, last, subtree)
        for direction, key, cat in (("in", "to_region", "TRANSFER_IN"), ("out", "from_region", "TRANSFER_OUT")):
            out[cat] = await self.total(
                f"select coalesce(sum((e->>'pooledFund')::numeric), 0) from insurance_transfer t "
                f"cross join jsonb_array_elements(t.schemes) e where t.direction = '{direction}' "
                f"and (e->>'scheme')::int = $1 and t.effective_from between $2 and $3 and t.{key} = any($4::text[])",
                scheme, first, last, subtree)
        for f in self.flows:
            if SCHEME_NO[f.scheme] == scheme and first <= f.month <= last and self.tree.within(f.region, region):
                out[f.category] += f.amount
        return out

    async def net(self, region: str, scheme: int, first: date, last: date) -> Decimal:
        c = await self.categories(region, scheme, first, last)
        return sum((c[k] for k in FUND_INCOME), Decimal(0)) - sum((c[k] for k in FUND_EXPENDITURE), Decimal(0))

    async def balance(self, pool_id: str, at: date) -> Decimal:
        """Origins' opening balances plus every flow of the pool's chain over the months each member covered."""
        pools = {r["id"]: r for c in self.cons for r in await c.fetch("select * from pool")}

        def members(pid: str) -> list[str]:
            return [pid, *(x for q in pools.values() if q["successor_id"] == pid for x in members(q["id"]))]

        total = Decimal(0)
        for pid in members(pool_id):
            p = pools[pid]
            if not any(q["successor_id"] == pid for q in pools.values()):
                total += p["opening_balance"]
            last = min(p["closed_after"], at) if p["closed_after"] else at
            total += await self.net(p["region_code"], p["scheme"], p["opened_from"], last)
        return total


async def check_account(c: Any, raw: Raw, pool_id: str, first: date, last: date) -> dict[str, Any]:
    """``c``: an in-process Client, or a RunningNode (real HTTP)."""
    variables = {"id": pool_id, "from": codes.month_str(first), "to": codes.month_str(last)}
    if isinstance(c, Client):
        got = (await c.data(ACCOUNT, variables, OP))["pool"]
    else:
        body = await c.post(ACCOUNT, variables, OP)
        assert "errors" not in body, body
        got = body["data"]["pool"]
    a = got["account"]
    found = [r for con in raw.cons for r in await con.fetch("select region_code, scheme from pool where id = $1", pool_id)]
    pool = found[0]
    cats = await raw.categories(pool["region_code"], pool["scheme"], first, last)
    assert [x["category"] for x in a["income"]] == list(FUND_INCOME)
    assert [x["category"] for x in a["expenditure"]] == list(FUND_EXPENDITURE)
    for x in a["income"] + a["expenditure"]:
        assert Decimal(x["amount"]) == cats[x["category"]], (pool_id, x)
    income = sum((cats[k] for k in FUND_INCOME), Decimal(0))
    spent = sum((cats[k] for k in FUND_EXPENDITURE), Decimal(0))
    opening = await raw.balance(pool_id, codes.add_months(first, -1))
    closing = await raw.balance(pool_id, last)
    assert Decimal(a["openingBalance"]) == opening
    assert Decimal(a["totalIncome"]) == income
    assert Decimal(a["totalExpenditure"]) == spent
    assert Decimal(a["surplus"]) == income - spent
    assert Decimal(a["closingBalance"]) == closing == opening + income - spent
    assert Decimal(got["balance"]) == closing
    months = len(codes.months(first, last))
    want = None if spent == 0 else (closing * months / spent).quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert (None if a["monthsOfPayment"] is None else Decimal(a["monthsOfPayment"])) == want
    assert a["pool"]["id"] == pool_id and a["period"] == {"from": codes.month_str(first), "to": codes.month_str(last)}
    return a  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
async def world(new_db: Any, dataset: Path, tree: Tree, tmp_path_factory: pytest.TempPathFactory
                ) -> AsyncIterator[tuple[Client, Raw, Path]]:
    url = await new_db()
    await load_dataset(url, node_config(), dataset)
    d = tmp_path_factory.mktemp("flows")
    async with node_client(url) as c:
        rt = c.runtime
        rep = await import_file(rt.pool, rt.node, "fund_flows", flows_csv(d / "flows.csv", FLOWS), progress=False)
        assert rep.inserted == len(FLOWS)
        con = await asyncpg.connect(url)
        try:
            yield c, Raw(con, tree, list(FLOWS)), d
        finally:
            await con.close()


PERIODS = [(m(1), m(6)), (m(3), m(5)), (m(6), m(6)), (m(1), m(1))]


@pytest.mark.parametrize("pool_id", ["440000-PENSION-202401", "440300-MEDICAL-202401", "469001-WORK_INJURY-202401",
                                     "110000-MEDICAL-202401"])
async def test_account_equals_raw_computation(world: Any, pool_id: str) -> None:
    c, raw, _ = world
    for first, last in PERIODS:
        await check_account(c, raw, pool_id, first, last)


async def test_account_books_each_flow_category(world: Any) -> None:
    c, raw, _ = world
    a = await check_account(c, raw, "440000-PENSION-202401", m(1), m(6))
    income = {x["category"]: Decimal(x["amount"]) for x in a["income"]}
    spent = {x["category"]: Decimal(x["amount"]) for x in a["expenditure"]}
    assert income["FISCAL_SUBSIDY"] == Decimal("1000000.00") and income["INTEREST"] == Decimal("1234.56")
    assert spent["REMITTANCE_TO_ABOVE"] == Decimal("77777.77") and spent["OTHER_EXPENDITURE"] == Decimal("0.99")
    assert income["CONTRIBUTIONS"] > 0 and spent["BENEFITS"] > 0
    # A period from the pool's first month opens with its openingBalance.
    b = (await c.data('{ pool(id: "440000-PENSION-202401") { openingBalance '
                      'account(period: {from: "2024-01", to: "2024-01"}) { openingBalance } } }', None, OP))["pool"]
    assert b["account"]["openingBalance"] == b["openingBalance"]


async def test_transfers_raise_and_late_flows(world: Any) -> None:
    """An insurance transfer books TRANSFER_OUT/TRANSFER_IN; after a raise, the successor's account
    opens with the predecessors' balances, and a late flow for a predecessor's month moves it exactly."""
    c, raw, d = world
    idn = await raw.con.fetchval(
        "select c.id_number from contribution c where c.scheme = 1 and c.region_code like '4401%' "
        "and c.month = '2025-06-01' and exists (select 1 from contribution x where x.id_number = c.id_number "
        "and x.scheme = 2) order by 1 limit 1")
    body = await c.data('mutation($in: TransferInsuranceInput!) { transferInsurance(input: $in) { transfer { state } } }',
                        {"in": {"idNumber": idn, "to": "510104", "effectiveFrom": "2025-07",
                                "idempotencyKey": "fund-transfer-1"}}, OP)
    assert body["transferInsurance"]["transfer"]["state"] == "COMMITTED"
    a = await check_account(c, raw, "440000-PENSION-202401", m(1), m(7))
    assert Decimal(next(x["amount"] for x in a["expenditure"] if x["category"] == "TRANSFER_OUT")) > 0
    b = await check_account(c, raw, "510000-PENSION-202401", m(7), m(7))
    assert Decimal(next(x["amount"] for x in b["income"] if x["category"] == "TRANSFER_IN")) > 0

    # Hainan's work-injury pools (cities and counties) raised to the province from 2025-05.
    got = await c.data('mutation { raisePoolingLevel(input: {scheme: WORK_INJURY, region: "460000", '
                       'effectiveFrom: "2025-05", idempotencyKey: "fund-raise-1"}) { pool { id } } }', None, OP)
    new = got["raisePoolingLevel"]["pool"]["id"]
    await check_account(c, raw, new, m(5), m(6))
    await check_account(c, raw, "469001-WORK_INJURY-202401", m(1), m(4))
    # The same flows again, now that 469001's June flow falls to the province pool: nothing changes.
    rt = c.runtime
    again = await import_file(rt.pool, rt.node, "fund_flows", flows_csv(d / "again-after-raise.csv", FLOWS[::-1]),
                              progress=False)
    assert again.inserted == 0
    await check_account(c, raw, new, m(5), m(6))
    late = [Flow("WORK_INJURY", "469001", m(2), "FISCAL_SUBSIDY", Decimal("500.05")),
            Flow("WORK_INJURY", "460100", m(5), "INVESTMENT_RETURN", Decimal("7.07"))]
    before = Decimal((await c.data('query($id: ID!) { pool(id: $id) { openingBalance } }', {"id": new}, OP))
                     ["pool"]["openingBalance"])
    await import_file(rt.pool, rt.node, "fund_flows", flows_csv(d / "late.csv", late), progress=False)
    raw.flows.extend(late)
    a = await check_account(c, raw, new, m(5), m(6))
    assert Decimal(a["openingBalance"]) == before + Decimal("500.05")
    await check_account(c, raw, "469001-WORK_INJURY-202401", m(1), m(4))


async def test_account_period_outside_the_pool(world: Any) -> None:
    c, _, _ = world
    for first, last in (("2023-12", "2024-02"), ("2025-01", "2099-01")):
        body = await c.gql('query($f: Month!, $t: Month!) { pool(id: "440000-PENSION-202401") { '
                           'account(period: {from: $f, to: $t}) { surplus } } }', {"f": first, "t": last}, OP)
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body


async def test_same_file_again_and_a_conflicting_amount(world: Any) -> None:
    c, raw, d = world
    rt = c.runtime
    n = await raw.con.fetchval("select count(*) from fund_flow")
    again = await import_file(rt.pool, rt.node, "fund_flows", flows_csv(d / "again.csv", FLOWS[:3]), progress=False)
    assert again.inserted == 0
    changed = [Flow("PENSION", "440000", m(1), "FISCAL_SUBSIDY", Decimal("1000000.01"))]
    with pytest.raises(ImportFailed) as e:
        await import_file(rt.pool, rt.node, "fund_flows", flows_csv(d / "changed.csv", changed), progress=False)
    assert [(r.line, r.column) for r in e.value.errors] == [(2, "amount")]
    assert await raw.con.fetchval("select count(*) from fund_flow") == n


async def test_bad_fund_flow_rows_import_nothing(new_db: Any, tmp_path: Path) -> None:
    """Every bad row reported with its line and column; nothing imported, balances unchanged."""
    url = await new_db()
    async with node_client(url, node_config("440000", "guangdong")) as c:
        rt = c.runtime
        (tmp_path / "pools.csv").write_text("scheme,region_code,opened_from,opening_balance\n"
                                            "PENSION,440000,2025-01,100.00\nMEDICAL,440300,2025-01,5.00\n")
        await import_file(rt.pool, rt.node, "pools", tmp_path / "pools.csv", progress=False)
        (tmp_path / "bad.csv").write_text(HEADER + "\n".join([
            "PENSION,440000,2025-02,INTEREST,10.00",            # 2: good
            "PENSION,440000,2025-02,CONTRIBUTIONS,10.00",       # 3: derived category
            "PENSION,440000,2025-03,INTEREST,1.234",            # 4: three decimals
            "PENSION,440000,2024-12,INTEREST,1.00",             # 5: before the pool opened
            "MEDICAL,440100,2025-02,INTEREST,1.00",             # 6: no medical pool covers Guangzhou
            "PENSION,510104,2025-02,INTEREST,1.00",             # 7: outside the node's subtree
            "PENSION,440000,2025-02,TRANSFER_IN,1.00",          # 8: derived category
            "PENSION,440000,2025-02,BONUS,1.00",                # 9: unknown category
            "PENSION,440000,2025-02,INTEREST,-1.00",            # 10: negative
            "PENSION,440100,2025-02,INTEREST,2.00",             # 11: repeats line 2's pool, month and category
        ]) + "\n")
        with pytest.raises(ImportFailed) as e:
            await import_file(rt.pool, rt.node, "fund_flows", tmp_path / "bad.csv", progress=False)
        got = [(r.line, r.column) for r in e.value.errors]
        assert got == [(3, "category"), (4, "amount"), (5, "month"), (6, "month"), (7, "region_code"),
                       (8, "category"), (9, "category"), (10, "amount"), (11, "category")], e.value.errors
        assert "derived" in e.value.errors[0].reason and "outside" in e.value.errors[4].reason
        assert await rt.pool.fetchval("select count(*) from fund_flow") == 0
        bal = await c.data('{ pool(id: "440000-PENSION-202501") { balance(asOf: "2025-06") } }', None,
                           token("440000", ("VIEWER",)))
        assert Decimal(bal["pool"]["balance"]) == Decimal("100.00")


def test_vocabulary_is_one() -> None:
    assert set(BOOKED) | {"CONTRIBUTIONS", "BENEFITS", "TRANSFER_IN", "TRANSFER_OUT"} == set(FUND_INCOME + FUND_EXPENDITURE)
