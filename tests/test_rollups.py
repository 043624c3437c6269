"""Every rollup figure equals the same figure computed from the raw records, for every tier."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from tierfed.tiers.figures import SCHEMES

from tests.conftest import Client, node_config

# Straight from the records: the contract's definitions, with no summary table involved.
RAW = """
with sub as (select descendant from region_closure where ancestor = $1),
c as (select * from contribution where region_code in (select descendant from sub) and month between $2 and $3),
b as (select * from benefit where region_code in (select descendant from sub) and month between $2 and $3)
select s.scheme,
  (select count(distinct id_number) from c where c.scheme = s.scheme and c.month = $3) as insured,
  (select count(*) from c where c.scheme = s.scheme) as contributor_months,
  (select coalesce(sum(employer_amount), 0) from c where c.scheme = s.scheme) as employer,
  (select coalesce(sum(individual_amount), 0) from c where c.scheme = s.scheme) as individual,
  (select coalesce(sum(individual_account_amount), 0) from c where c.scheme = s.scheme) as account,
  (select coalesce(sum(amount), 0) from b where b.scheme = s.scheme) as paid,
  (select count(distinct id_number) from b where b.scheme = s.scheme and b.month = $3) as beneficiaries
from generate_series(1, 5) as s(scheme) order by s.scheme
"""

FIELDS = """scheme insured contributorMonths contributionEmployer contributionIndividual contributionTotal
            individualAccount pooled benefitsPaid beneficiaries"""


async def raw_totals(con: asyncpg.Connection, region: str, first: str, last: str) -> list[dict[str, Any]]:
    from datetime import date

    f = date(int(first[:4]), int(first[5:]), 1)
    t = date(int(last[:4]), int(last[5:]), 1)
    out = []
    for r in await con.fetch(RAW, region, f, t):
        total = r["employer"] + r["individual"]
        out.append({
            "scheme": SCHEMES[r["scheme"] - 1], "insured": r["insured"], "contributorMonths": r["contributor_months"],
            "contributionEmployer": f"{r['employer']:.2f}", "contributionIndividual": f"{r['individual']:.2f}",
            "contributionTotal": f"{total:.2f}", "individualAccount": f"{r['account']:.2f}",
            "pooled": f"{total - r['account']:.2f}", "benefitsPaid": f"{r['paid']:.2f}",
            "beneficiaries": r["beneficiaries"],
        })
    return out


# nation; a province; a municipality (counties straight under it); a city; a county;
# a city with no counties; a county administered by its province
REGIONS = ["000000", "440000", "110000", "440300", "440305", "441900", "469001"]
PERIODS = [("2025-01", "2025-06"), ("2025-03", "2025-03"), ("2025-02", "2025-04")]


@pytest.mark.parametrize("first, last", PERIODS)
async def test_rollup_equals_raw_records(client: Client, loaded_db: str, first: str, last: str) -> None:
    con = await asyncpg.connect(loaded_db)
    try:
        for region in REGIONS:
            d = await client.data(f"""query($r: ID!) {{ rollup(region: $r, period: {{from: "{first}", to: "{last}"}}) {{
                totals {{ {FIELDS} }} byChild {{ region {{ code }} totals {{ {FIELDS} }} }}
                byMonth {{ month totals {{ {FIELDS} }} }} }} }}""", {"r": region})
            r = d["rollup"]
            assert r["totals"] == await raw_totals(con, region, first, last), region
            for child in r["byChild"]:
                assert child["totals"] == await raw_totals(con, child["region"]["code"], first, last)
            for m in r["byMonth"]:
                assert m["totals"] == await raw_totals(con, region, m["month"], m["month"])
            assert [m["month"] for m in r["byMonth"]][0] == first
    finally:
        await con.close()


async def test_scheme_subset_in_scheme_order(client: Client) -> None:
    d = await client.data("""{ rollup(region: "440000", period: {from: "2025-01", to: "2025-02"},
                                      schemes: [MATERNITY, PENSION]) { totals { scheme } byMonth { totals { scheme } } } }""")
    assert [t["scheme"] for t in d["rollup"]["totals"]] == ["PENSION", "MATERNITY"]
    assert all([t["scheme"] for t in m["totals"]] == ["PENSION", "MATERNITY"] for m in d["rollup"]["byMonth"])


async def test_data_set_is_not_trivial(client: Client) -> None:
    d = await client.data("""{ rollup(region: "000000", period: {from: "2025-01", to: "2025-06"}) {
        totals { scheme insured beneficiaries benefitsPaid individualAccount } } }""")
    for t in d["rollup"]["totals"]:
        assert t["insured"] > 0 and Decimal(t["benefitsPaid"]) > 0, t
    assert Decimal(d["rollup"]["totals"][0]["individualAccount"]) > 0


def _verify(url: str, tmp_path: Any) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "node.toml"
    cfg.write_text(f'[node]\nname = "v"\nregion = "000000"\ndatabase_url = "{url}"\n'
                   f'[auth]\njwt_secret = "{"s" * 40}"\n')
    return subprocess.run([sys.executable, "-m", "tierfed.cli", "verify", "--config", str(cfg)],
                          capture_output=True, text=True, timeout=120)


async def test_verify_command_on_a_live_database(new_db: Any, dataset: Any, tmp_path: Any) -> None:
    from tests.conftest import load_dataset

    url = await new_db()
    await load_dataset(url, node_config(), dataset)
    ok = _verify(url, tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "all" in ok.stdout and "equal the records" in ok.stdout
    con = await asyncpg.connect(url)
    try:
        row = await con.fetchrow(
            "update summary set employer = employer + 0.01 where ctid = (select ctid from summary "
            "where contributions > 0 order by region_code desc, month limit 1) returning region_code, month, scheme")
    finally:
        await con.close()
    bad = _verify(url, tmp_path)
    assert bad.returncode == 1
    assert f"region {row['region_code']}, month {row['month']:%Y-%m}, scheme {row['scheme']}" in bad.stderr
