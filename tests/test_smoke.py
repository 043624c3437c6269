from __future__ import annotations

from tests.conftest import Client


async def test_national_rollup_by_province(client: Client) -> None:
    d = await client.data("""{ rollup(region: "000000", period: {from: "2025-01", to: "2025-06"}) {
        complete totals { scheme insured contributorMonths contributionTotal pooled benefitsPaid beneficiaries }
        byChild { region { code name } totals { scheme insured } }
        byMonth { month totals { scheme insured } } } }""")
    r = d["rollup"]
    assert r["complete"] is True
    assert len(r["byChild"]) == 31
    assert [t["scheme"] for t in r["totals"]] == ["PENSION", "MEDICAL", "WORK_INJURY", "UNEMPLOYMENT", "MATERNITY"]
    assert r["totals"][0]["insured"] > 0
    assert len(r["byMonth"]) == 6
