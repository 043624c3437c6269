"""The one vocabulary: tiers, schemes, departments, agency kinds, fund-flow categories,
pool ids and the pooled-fund formula, defined here once.

The schema's enums are these classes; the database stores each as its 1-based
position (``tier`` from 0), and its check constraints must accept exactly these
positions (``tests/test_vocabulary.py`` proves they do). SQL that needs the names
receives them as parameters (``SCHEME_NAMES_SQL``), never as literals.
"""

from __future__ import annotations

import re
from datetime import date
from enum import Enum


class Tier(Enum):
    CENTRAL = "CENTRAL"
    PROVINCE = "PROVINCE"
    CITY = "CITY"
    COUNTY = "COUNTY"


class Scheme(Enum):
    PENSION = "PENSION"
    MEDICAL = "MEDICAL"
    WORK_INJURY = "WORK_INJURY"
    UNEMPLOYMENT = "UNEMPLOYMENT"
    MATERNITY = "MATERNITY"


class Department(Enum):
    HUMAN_RESOURCES_SOCIAL_SECURITY = "HUMAN_RESOURCES_SOCIAL_SECURITY"
    HEALTHCARE_SECURITY = "HEALTHCARE_SECURITY"


class AgencyKind(Enum):
    AGENCY = "AGENCY"
    BRANCH = "BRANCH"
    SERVICE_OUTLET = "SERVICE_OUTLET"


TIER_NAMES: tuple[str, ...] = tuple(t.value for t in Tier)  # index = the stored tier
TIER_ID = {name: i for i, name in enumerate(TIER_NAMES)}
SCHEMES: tuple[str, ...] = tuple(s.value for s in Scheme)  # stored as index + 1
SCHEME_ID = {name: i + 1 for i, name in enumerate(SCHEMES)}
DEPARTMENTS: tuple[str, ...] = tuple(d.value for d in Department)
DEPARTMENT_ID = {name: i + 1 for i, name in enumerate(DEPARTMENTS)}
AGENCY_KINDS: tuple[str, ...] = tuple(k.value for k in AgencyKind)
AGENCY_KIND_ID = {name: i + 1 for i, name in enumerate(AGENCY_KINDS)}

# Columns of the database holding each, and the stored values they must accept.
STORED = {
    "tier": range(len(TIER_NAMES)),
    "scheme": range(1, len(SCHEMES) + 1),
    "department": range(1, len(DEPARTMENTS) + 1),
    "kind": range(1, len(AGENCY_KINDS) + 1),
}

# The contract's FundFlowCategory: a pooled fund's income, then its expenditure, in enum order.
FUND_INCOME = ("CONTRIBUTIONS", "FISCAL_SUBSIDY", "INTEREST", "INVESTMENT_RETURN", "TRANSFER_IN",
               "SUBSIDY_FROM_ABOVE", "REMITTANCE_FROM_BELOW", "OTHER_INCOME")
FUND_EXPENDITURE = ("BENEFITS", "TRANSFER_OUT", "SUBSIDY_TO_BELOW", "REMITTANCE_TO_ABOVE", "OTHER_EXPENDITURE")
FUND_CATEGORIES = FUND_INCOME + FUND_EXPENDITURE
# Derived from the records (pooled contributions, benefits) and from insurance transfers; never imported.
DERIVED_CATEGORIES = ("CONTRIBUTIONS", "BENEFITS", "TRANSFER_IN", "TRANSFER_OUT")
# Booked from fund_flows files, one summary column each (the category in lower case).
BOOKED = tuple(c for c in FUND_CATEGORIES if c not in DERIVED_CATEGORIES)
BOOKED_SIGN = tuple(1 if c in FUND_INCOME else -1 for c in BOOKED)

# What a month adds to a pooled fund, by summary column: pooled contributions (employer and
# individual parts less the individual-account part) less benefits, plus transfers in less
# out, plus booked fund flows' income less expenditure (``booked_net``, a generated column).
FUND_FLOW_TERMS: tuple[tuple[str, int], ...] = (
    ("employer", 1), ("individual", 1), ("individual_account", -1), ("benefits_paid", -1),
    ("transfers_in", 1), ("transfers_out", -1), ("booked_net", 1))


def fund_flow_sql(alias: str = "s") -> str:
    """The pooled-fund formula over the summary row ``alias``, for SQL."""
    sql = " ".join(f"{'+' if sign > 0 else '-'} {alias}.{column}" for column, sign in FUND_FLOW_TERMS)
    return sql[2:] if sql.startswith("+ ") else sql


# Pool ids name their region, scheme and first month: REGION-SCHEME-YYYYMM, routable
# across the federation without asking anyone.
POOL_ID_RE = re.compile(rf"^([0-9]{{6}})-({'|'.join(SCHEMES)})-([0-9]{{4}})([0-9]{{2}})\Z")
POOL_ID_EXAMPLE = "440000-MEDICAL-202501"


def pool_id(region: str, scheme: int, opened_from: date) -> str:
    return f"{region}-{SCHEMES[scheme - 1]}-{opened_from.year:04d}{opened_from.month:02d}"


def pool_id_parts(value: object) -> tuple[str, int, date] | None:
    """(region, scheme, first month) of a well-formed pool id; None otherwise."""
    m = POOL_ID_RE.match(value) if isinstance(value, str) else None
    if not m or not 1 <= int(m.group(4)) <= 12 or not 1 <= int(m.group(3)):
        return None
    return m.group(1), SCHEME_ID[m.group(2)], date(int(m.group(3)), int(m.group(4)), 1)


def sql_names(names: tuple[str, ...]) -> str:
    """A vocabulary's names as an SQL array literal (constant text built from this module)."""
    return "array[" + ",".join(f"'{n}'" for n in names) + "]"


def pool_id_sql(region: str, scheme: str, month: str, names: str) -> str:
    """The pool id in SQL, from expressions of the region, the scheme's number, the first month
    and the parameter carrying ``SCHEMES`` (e.g. ``$3::text[]``)."""
    return f"{region} || '-' || ({names})[{scheme}] || '-' || to_char({month}, 'YYYYMM')"
