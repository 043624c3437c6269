"""Rankings on one node: every page of a ranking, put together, equals sorting every region's
figures computed independently from the raw records (not the summaries), for each RankBy,
both directions, at three tiers; ties broken by code; bad arguments refused before any read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from typing import Any

import asyncpg
import pytest
from tierfed.tiers.tree import TIER_NAMES, Tree

from tests.conftest import Client, token

OP = token("000000", ("VIEWER",))
RANKING = """query($r: ID!, $tier: Tier!, $from: Month!, $to: Month!, $scheme: Scheme!, $by: RankBy!,
                  $desc: Boolean, $first: Int, $after: String) {
  ranking(region: $r, tier: $tier, period: {from: $from, to: $to}, scheme: $scheme, by: $by,
          descending: $desc, first: $first, after: $after) {
    count complete missing { code }
    entries { rank region { code } value cursor
              totals { scheme insured contributorMonths contributionTotal pooled benefitsPaid beneficiaries } } } }"""
RANK_BY = ("INSURED", "CONTRIBUTION_TOTAL", "POOLED", "BENEFITS_PAID", "BENEFICIARIES", "DEPENDENCY_RATIO",
           "INCOME_EXPENDITURE_RATIO")
SCHEME_NO = {"PENSION": 1, "MEDICAL": 2, "WORK_INJURY": 3, "UNEMPLOYMENT": 4, "MATERNITY": 5}


@dataclass
class Raw:
    insured: int = 0
    months: int = 0
    total: int = 0  # fen
    pooled: int = 0
    paid: int = 0
    beneficiaries: int = 0


def half_up(x: Fraction) -> str:
    """x to two decimals, half up, as the API writes it (x >= 0)."""
    cents = (x * 100 * 2 + 1) // 2
    return f"{cents // 100}.{cents % 100:02d}"


def fen(v: Any) -> int:
    return int(v * 100)


def shown(by: str, r: Raw) -> str | None:
    if by == "INSURED":
        return str(r.insured)
    if by == "BENEFICIARIES":
        return str(r.beneficiaries)
    if by in ("CONTRIBUTION_TOTAL", "POOLED", "BENEFITS_PAID"):
        return half_up(Fraction({"CONTRIBUTION_TOTAL": r.total, "POOLED": r.pooled, "BENEFITS_PAID": r.paid}[by], 100))
    if by == "DEPENDENCY_RATIO":
        return half_up(Fraction(r.insured, r.beneficiaries)) if r.beneficiaries else None
    return half_up(Fraction(r.pooled, r.paid)) if r.paid else None


async def raw_figures(cons: list[asyncpg.Connection], tree: Tree, region: str, tier: str, scheme: str,
                      first: date, last: date) -> dict[str, Raw]:
    """Every region of the tier in the subtree, its figures from the raw records of every database."""
    level = TIER_NAMES.index(tier)
    ranked = [c for c in tree.subtree(region) if tree.by_code[c].tier == level]
    home: dict[str, str] = {}
    for code in ranked:
        for d in tree.subtree(code):
            home[d] = code
    out = {c: Raw() for c in ranked}
    s = SCHEME_NO[scheme]
    for con in cons:
        for r in await con.fetch(
                "select region_code, count(*) as n, count(*) filter (where month = $3) as last_n, "
                "sum(employer_amount + individual_amount) as total, "
                "sum(employer_amount + individual_amount - individual_account_amount) as pooled "
                "from contribution where scheme = $1 and month between $2 and $3 group by region_code",
                s, first, last):
            if r["region_code"] in home:
                x = out[home[r["region_code"]]]
                x.insured += r["last_n"]
                x.months += r["n"]
                x.total += fen(r["total"])
                x.pooled += fen(r["pooled"])
        for r in await con.fetch(
                "select region_code, count(*) filter (where month = $3) as last_n, sum(amount) as paid "
                "from benefit where scheme = $1 and month between $2 and $3 group by region_code", s, first, last):
            if r["region_code"] in home:
                x = out[home[r["region_code"]]]
                x.beneficiaries += r["last_n"]
                x.paid += fen(r["paid"])
    return out


def expected(figures: dict[str, Raw], by: str, descending: bool) -> list[tuple[str, str | None]]:
    """Sorted by the shown value, ties by code ascending, undefined values last (by code)."""
    rows = [(code, shown(by, r)) for code, r in figures.items()]
    defined = [x for x in rows if x[1] is not None]
    defined.sort(key=lambda x: x[0])
    defined.sort(key=lambda x: Fraction(x[1]), reverse=descending)  # type: ignore[arg-type]  # stable: codes kept
    return defined + sorted(x for x in rows if x[1] is None)


async def all_pages(ask: Any, variables: dict[str, Any], first: int) -> tuple[list[dict[str, Any]], int, int]:
    """Every entry, page by page; the number of pages and the count."""
    entries: list[dict[str, Any]] = []
    after, pages, count = None, 0, -1
    while True:
        d = await ask(RANKING, {**variables, "first": first, "after": after})
        r = d["ranking"]
        assert r["complete"] and r["missing"] == []
        assert count in (-1, r["count"])
        count = r["count"]
        pages += 1
        entries.extend(r["entries"])
        if len(r["entries"]) < first:
            return entries, pages, count
        after = r["entries"][-1]["cursor"]


def check(entries: list[dict[str, Any]], count: int, figures: dict[str, Raw], by: str, descending: bool,
          scheme: str) -> None:
    want = expected(figures, by, descending)
    assert count == len(want)
    assert [(e["region"]["code"], e["value"]) for e in entries] == want
    assert [e["rank"] for e in entries] == list(range(1, len(want) + 1))
    for e in entries:
        r, t = figures[e["region"]["code"]], e["totals"]
        assert t["scheme"] == scheme
        assert (t["insured"], t["contributorMonths"], t["beneficiaries"]) == (r.insured, r.months, r.beneficiaries)
        assert (fen_s(t["contributionTotal"]), fen_s(t["pooled"]), fen_s(t["benefitsPaid"])) == (r.total, r.pooled, r.paid)


def fen_s(s: str) -> int:
    whole, _, frac = s.partition(".")
    return int(whole) * 100 + int((frac + "00")[:2])


@pytest.fixture(scope="module")
async def raw_con(loaded_db: str) -> Any:
    con = await asyncpg.connect(loaded_db)
    yield con
    await con.close()


@pytest.mark.parametrize("by", RANK_BY)
async def test_counties_of_the_nation_page_by_page_equal_the_raw_records(
        client: Client, raw_con: asyncpg.Connection, tree: Tree, by: str) -> None:
    first, last = date(2025, 1, 1), date(2025, 6, 1)
    figures = await raw_figures([raw_con], tree, "000000", "COUNTY", "PENSION", first, last)
    for descending in (True, False):
        v = {"r": "000000", "tier": "COUNTY", "from": "2025-01", "to": "2025-06", "scheme": "PENSION", "by": by,
             "desc": descending}
        entries, pages, count = await all_pages(lambda q, x: client.data(q, x, OP), v, 400)
        check(entries, count, figures, by, descending, "PENSION")
        assert pages == count // 400 + 1


@pytest.mark.parametrize(("region", "tier", "scheme", "by", "months"), [
    ("440000", "CITY", "MEDICAL", "DEPENDENCY_RATIO", ("2025-02", "2025-05")),
    ("440000", "COUNTY", "UNEMPLOYMENT", "INCOME_EXPENDITURE_RATIO", ("2025-06", "2025-06")),
    ("000000", "PROVINCE", "PENSION", "POOLED", ("2025-01", "2025-06")),
    ("000000", "CITY", "WORK_INJURY", "BENEFITS_PAID", ("2025-03", "2025-04")),
])
async def test_other_tiers_schemes_and_periods(client: Client, raw_con: asyncpg.Connection, tree: Tree,
                                               region: str, tier: str, scheme: str, by: str,
                                               months: tuple[str, str]) -> None:
    first, last = (date(int(m[:4]), int(m[5:]), 1) for m in months)
    figures = await raw_figures([raw_con], tree, region, tier, scheme, first, last)
    v = {"r": region, "tier": tier, "from": months[0], "to": months[1], "scheme": scheme, "by": by, "desc": True}
    entries, _, count = await all_pages(lambda q, x: client.data(q, x, OP), v, 7)
    check(entries, count, figures, by, True, scheme)


async def test_ties_and_undefined_values_go_by_code(client: Client, raw_con: asyncpg.Connection, tree: Tree) -> None:
    """The data set has many counties with equal insured counts and some with no beneficiary:
    the test above would pass by chance without them."""
    figures = await raw_figures([raw_con], tree, "000000", "COUNTY", "PENSION", date(2025, 1, 1), date(2025, 6, 1))
    values = [shown("INSURED", r) for r in figures.values()]
    assert len(values) - len(set(values)) > 100
    assert sum(1 for r in figures.values() if r.beneficiaries == 0) > 10
    assert sum(1 for r in figures.values() if r.beneficiaries > 0) > 10


BAD = [
    ({"r": "440300", "tier": "CITY"}, "tier", "not below region 440300"),
    ({"r": "440000", "tier": "PROVINCE"}, "tier", "not below region 440000"),
    ({"first": 501}, "first", "between 0 and 500"),
    ({"first": -1}, "first", "between 0 and 500"),
    ({"after": "not a cursor!"}, "after", "not a cursor"),
    ({"after": "WyJhYmMiLDEsMl0"}, "after", "not a cursor"),
    ({"to": "2024-12"}, "period", "empty"),
]


@pytest.mark.parametrize(("change", "argument", "says"), BAD)
async def test_bad_arguments_are_refused_without_reading(client: Client, change: dict[str, Any], argument: str,
                                                         says: str) -> None:
    v = {"r": "000000", "tier": "COUNTY", "from": "2025-01", "to": "2025-06", "scheme": "PENSION", "by": "INSURED",
         "desc": True, "first": 5, "after": None, **change}
    counter = client.runtime.statements
    counter.queries = []
    try:
        body = await client.gql(RANKING, v, OP)
        assert not [q for q in counter.queries if "summary" in q], "figures were read for a refused ranking"
    finally:
        counter.queries = None
    assert body["data"] is None
    (err,) = body["errors"]
    assert err["extensions"]["code"] == "BAD_USER_INPUT", err
    assert says in err["message"]
    assert err["extensions"].get("argument") == argument


async def test_a_cursor_of_another_ranking_is_refused(client: Client) -> None:
    v = {"r": "000000", "tier": "COUNTY", "from": "2025-01", "to": "2025-06", "scheme": "PENSION", "by": "INSURED",
         "desc": True, "first": 3}
    cursor = (await client.data(RANKING, v, OP))["ranking"]["entries"][-1]["cursor"]
    for other in ({"by": "POOLED"}, {"desc": False}, {"scheme": "MEDICAL"}, {"r": "440000"}):
        body = await client.gql(RANKING, {**v, **other, "after": cursor}, OP)
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert "another ranking" in body["errors"][0]["message"]


async def test_crafted_cursors_are_bad_input_not_internal_errors(client: Client) -> None:
    """A cursor is the caller's to send back: one of the right ranking with a figure too large to
    negate, or nested too deep to parse, is refused saying so (both had been INTERNAL)."""
    import base64
    import json

    v = {"r": "000000", "tier": "COUNTY", "from": "2025-01", "to": "2025-06", "scheme": "PENSION", "by": "INSURED",
         "desc": True, "first": 3}
    cursor = (await client.data(RANKING, v, OP))["ranking"]["entries"][-1]["cursor"]
    fp, _, code = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))

    def enc(raw: str) -> str:
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    for bad in (enc(json.dumps([fp, "1e1000000", code])), enc(json.dumps([fp, "NaN", code])), enc("[" * 5000)):
        body = await client.gql(RANKING, {**v, "after": bad}, OP)
        (err,) = body["errors"]
        assert err["extensions"]["code"] == "BAD_USER_INPUT" and "not a cursor" in err["message"], err


async def test_outside_the_scope_is_forbidden(client: Client) -> None:
    v = {"r": "000000", "tier": "PROVINCE", "from": "2025-01", "to": "2025-06", "scheme": "PENSION", "by": "INSURED"}
    body = await client.gql(RANKING, v, token("440000", ("VIEWER",)))
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    d = await client.data(RANKING, {**v, "r": "440000", "tier": "CITY"}, token("440000", ("VIEWER",)))
    assert d["ranking"]["count"] == 21


def test_counts_are_whole_numbers_and_amounts_have_two_decimals() -> None:
    r = Raw(insured=7, beneficiaries=3, total=12345, pooled=1001, paid=300)
    assert [shown(b, r) for b in RANK_BY] == ["7", "123.45", "10.01", "3.00", "3", "2.33", "3.34"]
    assert shown("DEPENDENCY_RATIO", Raw(insured=5)) is None
    assert half_up(Fraction(1, 8)) == "0.13"


async def test_statements_do_not_grow_with_regions(client: Client) -> None:
    """One statement for the figures of every region ranked, one for the regions' names."""
    counts = []
    for region, tier in (("000000", "COUNTY"), ("440000", "CITY")):
        v = {"r": region, "tier": tier, "from": "2025-01", "to": "2025-06", "scheme": "PENSION", "by": "POOLED",
             "first": 100}
        before = client.runtime.statements.count
        await client.data(RANKING, v, token("000000", ("VIEWER", "AUDITOR")))
        counts.append(client.runtime.statements.count - before)
    assert counts[0] == counts[1] <= 3, counts
