"""The operations the benchmarks send, and the raw SQL baselines that answer the same figures."""

from __future__ import annotations

TOTALS = """fragment T on SchemeTotals { scheme insured contributorMonths contributionEmployer
  contributionIndividual contributionTotal individualAccount pooled benefitsPaid beneficiaries }"""

# Case 2: the national rollup by province for a year (totals of the nation and of each province).
ROLLUP_BY_CHILD = """query Rollup($region: ID!, $p: PeriodInput!) {
  rollup(region: $region, period: $p) { totals { ...T } byChild { region { code name } totals { ...T } } }
}
""" + TOTALS

# The cheapest operation a node answers (auth, parse cache, execution, JSON): the floor.
FLOOR = "query Floor { __typename }"

# Case 4: a provincial dashboard.
DASH_TOTALS = """query Totals($region: ID!, $p: PeriodInput!) {
  rollup(region: $region, period: $p) { complete totals { ...T } } }
""" + TOTALS
DASH_BY_CHILD = """query ByChild($region: ID!, $p: PeriodInput!) {
  rollup(region: $region, period: $p) { byChild { region { code name } totals { ...T } } } }
""" + TOTALS
DASH_BY_MONTH = """query ByMonth($region: ID!, $p: PeriodInput!) {
  rollup(region: $region, period: $p) { byMonth { month totals { ...T } } } }
""" + TOTALS
DASH_STATEMENT = """query Statement($id: String!, $year: Int!) {
  person(idNumber: $id) { idNumber name region { code name }
    statement(year: $year) { year schemes { scheme months contributionEmployer contributionIndividual
      individualAccount benefitsPaid } } } }"""

# Federation: what a central node sends a province node for the national rollup.
TIER_SUMMARIES = """query TierfedForward { s: _tierSummaries(keys: [{region: "%s", from: "%s", to: "%s"}]) }"""

# Case 2 baseline: the same figures from the 24M raw records (by province: GB/T 2260 codes
# start with their province's two digits). insured and beneficiaries are record counts in
# the last month, which the one-record-per-(person, scheme, month) rule makes distinct persons.
RAW_RECORDS = """
with c as (
    select substr(region_code, 1, 2) as p, scheme, count(*) as contributor_months,
           sum(employer_amount) as employer, sum(individual_amount) as individual,
           sum(individual_account_amount) as account, count(*) filter (where month = $2) as insured
    from contribution where month between $1 and $2 group by 1, 2
), b as (
    select substr(region_code, 1, 2) as p, scheme, sum(amount) as paid,
           count(*) filter (where month = $2) as beneficiaries
    from benefit where month between $1 and $2 group by 1, 2
)
select coalesce(c.p, b.p) || '0000' as region_code, coalesce(c.scheme, b.scheme) as scheme,
       coalesce(c.contributor_months, 0) as contributor_months, coalesce(c.employer, 0) as employer,
       coalesce(c.individual, 0) as individual, coalesce(c.account, 0) as account,
       coalesce(b.paid, 0) as paid, coalesce(c.insured, 0) as insured, coalesce(b.beneficiaries, 0) as beneficiaries
from c full join b on b.p = c.p and b.scheme = c.scheme
"""

# The figures of case 2 with a distinct headcount from the records (what a server without
# the one-record rule, or a summary, would have to run): shown once, for scale.
RAW_RECORDS_DISTINCT = """
select substr(region_code, 1, 2) as p, scheme, count(distinct id_number) filter (where month = $2) as insured,
       count(*) as contributor_months, sum(employer_amount) as employer
from contribution where month between $1 and $2 group by 1, 2
"""

# Issue 17: one person across the federation.
PERSON_STATEMENT = """query PersonStatement($id: String!) { person(idNumber: $id) { idNumber name region { code }
  complete statement(year: 2025) { complete schemes { scheme months contributionEmployer contributionIndividual
  individualAccount benefitsPaid } } } }"""
DUPLICATES = """query Duplicates($r: ID!, $p: PeriodInput!) { duplicateInsurance(region: $r, period: $p, first: 100) {
  person { idNumber } scheme month regions { code } } }"""
