"""Summary figures and the one way they merge: added figure by figure, exactly.

The same arithmetic merges two counties on one node or thirty-one province
nodes at the centre.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from .vocabulary import (  # noqa: F401 - the vocabulary, as the modules reading figures know it
    BOOKED,
    BOOKED_SIGN,
    DERIVED_CATEGORIES,
    FUND_CATEGORIES,
    FUND_EXPENDITURE,
    FUND_FLOW_TERMS,
    FUND_INCOME,
    SCHEME_ID,
    SCHEMES,
)

ZERO = Decimal("0.00")


def booked_zero() -> list[Decimal]:
    return [ZERO] * len(BOOKED)


@dataclass(slots=True)
class Figures:
    """One region's records for one month and scheme (or a sum of such)."""

    contributions: int = 0
    employer: Decimal = ZERO
    individual: Decimal = ZERO
    individual_account: Decimal = ZERO
    base: Decimal = ZERO
    benefits: int = 0
    benefits_paid: Decimal = ZERO
    # Pooled funds moved by insurance transfers effective in the month (tiers/transfers.py).
    transfers_in: Decimal = ZERO
    transfers_out: Decimal = ZERO
    # Amounts booked from fund_flows files, in BOOKED order (tierfed/imports: the fund_flows kind).
    booked: list[Decimal] = field(default_factory=booked_zero)

    def add(self, other: Figures) -> None:
        self.contributions += other.contributions
        self.employer += other.employer
        self.individual += other.individual
        self.individual_account += other.individual_account
        self.base += other.base
        self.benefits += other.benefits
        self.benefits_paid += other.benefits_paid
        self.transfers_in += other.transfers_in
        self.transfers_out += other.transfers_out
        self.booked = [a + b for a, b in zip(self.booked, other.booked)]

    @property
    def pooled(self) -> Decimal:
        return self.employer + self.individual - self.individual_account

    @property
    def booked_net(self) -> Decimal:
        """Booked income less booked expenditure."""
        return sum((v if sign > 0 else -v for v, sign in zip(self.booked, BOOKED_SIGN)), ZERO)

    @property
    def fund_flow(self) -> Decimal:
        """What the month adds to a pooled fund: pooled contributions less benefits, plus transfers in less
        out, plus the booked fund flows' income less their expenditure."""
        return sum((getattr(self, column) if sign > 0 else -getattr(self, column) for column, sign in FUND_FLOW_TERMS),
                   ZERO)

    def category(self, name: str) -> Decimal:
        """The amount of one FundFlowCategory."""
        derived = {"CONTRIBUTIONS": self.pooled, "BENEFITS": self.benefits_paid,
                   "TRANSFER_IN": self.transfers_in, "TRANSFER_OUT": self.transfers_out}
        return derived[name] if name in derived else self.booked[BOOKED.index(name)]

    def to_json(self) -> list:
        return [self.contributions, str(self.employer), str(self.individual), str(self.individual_account),
                str(self.base), self.benefits, str(self.benefits_paid), str(self.transfers_in), str(self.transfers_out),
                *(str(v) for v in self.booked)]

    @classmethod
    def from_json(cls, v: list) -> Figures:
        moved = (Decimal(v[7]), Decimal(v[8])) if len(v) > 8 else (ZERO, ZERO)
        booked = [Decimal(x) for x in v[9:9 + len(BOOKED)]] if len(v) > 9 else booked_zero()
        return cls(int(v[0]), Decimal(v[1]), Decimal(v[2]), Decimal(v[3]), Decimal(v[4]), int(v[5]), Decimal(v[6]),
                   *moved, booked)




@dataclass(slots=True)
class Summary:
    """A region's figures per (month, scheme) over a period, with what could not be reached."""

    rows: dict[tuple[date, int], Figures] = field(default_factory=dict)
    complete: bool = True
    missing: list[str] = field(default_factory=list)

    def add_row(self, month: date, scheme: int, figs: Figures) -> None:
        cur = self.rows.get((month, scheme))
        if cur is None:
            self.rows[(month, scheme)] = Figures(figs.contributions, figs.employer, figs.individual,
                                                 figs.individual_account, figs.base, figs.benefits,
                                                 figs.benefits_paid, figs.transfers_in, figs.transfers_out,
                                                 list(figs.booked))
        else:
            cur.add(figs)

    def merge(self, other: Summary) -> None:
        for (m, s), f in other.rows.items():
            self.add_row(m, s, f)
        if not other.complete:
            self.complete = False
        for code in other.missing:
            if code not in self.missing:
                self.missing.append(code)

    def mark_missing(self, code: str) -> None:
        self.complete = False
        if code not in self.missing:
            self.missing.append(code)


@dataclass(slots=True)
class SchemeTotal:
    """The contract's SchemeTotals for one scheme over one period."""

    scheme: str
    insured: int
    contributor_months: int
    contribution_employer: Decimal
    contribution_individual: Decimal
    individual_account: Decimal
    benefits_paid: Decimal
    beneficiaries: int
    base: Decimal

    @property
    def contribution_total(self) -> Decimal:
        return self.contribution_employer + self.contribution_individual

    @property
    def pooled(self) -> Decimal:
        return self.contribution_total - self.individual_account


def totals(summary: Summary, months: list[date], schemes: list[str]) -> list[SchemeTotal]:
    """SchemeTotals per scheme: sums over the months; insured and beneficiaries in the last month."""
    out = []
    last = months[-1]
    for name in schemes:
        sid = SCHEME_ID[name]
        acc = Figures()
        for m in months:
            f = summary.rows.get((m, sid))
            if f is not None:
                acc.add(f)
        lastf = summary.rows.get((last, sid))
        out.append(SchemeTotal(
            scheme=name,
            insured=lastf.contributions if lastf else 0,
            contributor_months=acc.contributions,
            contribution_employer=acc.employer,
            contribution_individual=acc.individual,
            individual_account=acc.individual_account,
            benefits_paid=acc.benefits_paid,
            beneficiaries=lastf.benefits if lastf else 0,
            base=acc.base,
        ))
    return out
