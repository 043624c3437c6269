"""The public fund report of a region (Social Insurance Law art. 70): for a year or half-year,
insured per scheme and each scheme's pool accounts, with Chinese labels. A region pooled
higher up names the pool that covers it; its account is that pool's own report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from strawberry.types import Info
from tierfed.tiers.figures import SCHEME_ID, SCHEMES, SchemeTotal, totals
from tierfed.tiers.store import PoolRec

from tierfed import codes
from tierfed.errors import bad_input

from . import funds
from .common import year_arg
from .context import ctx

SCHEME_LABELS = {"PENSION": "基本养老保险", "MEDICAL": "基本医疗保险", "WORK_INJURY": "工伤保险",
                 "UNEMPLOYMENT": "失业保险", "MATERNITY": "生育保险"}
CATEGORY_LABELS = {
    "CONTRIBUTIONS": "保险费收入（统筹部分）", "FISCAL_SUBSIDY": "财政补贴收入", "INTEREST": "利息收入",
    "INVESTMENT_RETURN": "委托投资收益", "TRANSFER_IN": "转移收入", "SUBSIDY_FROM_ABOVE": "上级补助收入",
    "REMITTANCE_FROM_BELOW": "下级上解收入", "OTHER_INCOME": "其他收入",
    "BENEFITS": "社会保险待遇支出", "TRANSFER_OUT": "转移支出", "SUBSIDY_TO_BELOW": "补助下级支出",
    "REMITTANCE_TO_ABOVE": "上解上级支出", "OTHER_EXPENDITURE": "其他支出",
}
RETURNS = ("INTEREST", "INVESTMENT_RETURN")


@dataclass(frozen=True, slots=True)
class ReportSchemeRec:
    scheme: str
    insured: int
    beneficiaries: int
    pool: PoolRec | None
    own_pool: bool
    note: str
    account: funds.AccountRec | None

    @property
    def label(self) -> str:
        return SCHEME_LABELS[self.scheme]

    @property
    def returns(self) -> Decimal | None:
        if self.account is None:
            return None
        return sum((f.amount for f in self.account.income if f.category in RETURNS), Decimal("0.00"))


@dataclass(frozen=True, slots=True)
class FundReportRec:
    region_code: str
    year: int
    half: int | None
    first: date
    last: date
    title: str
    schemes: list[ReportSchemeRec]
    missing_codes: list[str]

    @property
    def complete(self) -> bool:
        return not self.missing_codes


def period_of(year: int, half: int | None) -> tuple[date, date, str]:
    """The months of a year or half-year, and its Chinese name."""
    if half is None:
        return date(year, 1, 1), date(year, 12, 1), f"{year}年"
    if half not in (1, 2):
        raise bad_input(f"half must be 1 (January to June) or 2 (July to December), got {half}", argument="half")
    return (date(year, 1, 1), date(year, 6, 1), f"{year}年上半年") if half == 1 else \
        (date(year, 7, 1), date(year, 12, 1), f"{year}年下半年")


def clipped(first: date, last: date, name: str) -> tuple[date, date, str]:
    """A period not yet ended: up to this month, and its report's title says how far it goes (it
    had the whole half-year's title over months still to come)."""
    now = codes.current_month()
    if now < last:
        return first, now, f"{name}社会保险基金报告（截至{now.month}月）"
    return first, last, f"{name}社会保险基金报告"


def unavailable_report(_root: Any, info: Any, args: dict[str, Any], region: str) -> FundReportRec:
    """The report of a region held by a child node that did not answer: incomplete (missing
    names the region), no figures, each scheme's note saying why; the TIER_UNAVAILABLE error
    names the child. The rest of the caller's answer stands."""
    year, half = year_arg(int(args["year"])), args.get("half")  # as the child would have checked them
    first, last, name = clipped(*period_of(year, half))
    rec = info.context.node.tree.by_code[region]
    note = "本地区由下级节点持有，该节点未应答，本报告缺少其数据"
    schemes = [ReportSchemeRec(sc, 0, 0, None, False, note, None) for sc in SCHEMES]
    return FundReportRec(region, year, half, first, last, f"{rec.name}{name}", schemes, [region])


async def fund_report(info: Info, region: str, year: int, half: int | None) -> Any:
    code = region  # checked by its rule; held by a child node, asked there (resolvers/held.py)
    c = ctx(info)
    first, last, name = period_of(year_arg(year), half)
    now = codes.current_month()
    if first > now:
        raise bad_input(f"the report of {name} cannot be made before it begins (this month is "
                        f"{codes.month_str(now)})", argument="year")
    first, last, name = clipped(first, last, name)
    tree = c.node.tree
    rec = tree.by_code[code]
    s = await c.summary.load((code, first, last, True))
    figures: dict[str, SchemeTotal] = {t.scheme: t for t in totals(
        s, [first, last] if first != last else [last], list(SCHEMES))}
    keys = [(code, SCHEME_ID[sc], last) for sc in SCHEMES]
    covering = await c.loaders.pool_covering.load_many(keys)
    below = await c.loaders.pools_below.load_many(keys)
    out = []
    for sc, pool, n_below in zip(SCHEMES, covering, below):
        t = figures[sc]
        account = None
        if pool is None:
            if n_below:
                note = "本地区由下级各统筹区分别统筹，基金收支见各统筹区的报告"
            elif c.runtime is not None and c.runtime.cfg.parent is not None:
                note = "本地区由上级统筹区统筹，基金由上级节点持有，基金收支见该统筹区的报告"
            else:
                note = "本地区无覆盖的统筹基金"
        elif pool.region_code == code:
            note = "本地区统筹"
            f = max(first, pool.opened_from)
            to = min(last, pool.closed_after) if pool.closed_after else last
            if f <= to:
                account = await funds.account(pool, info, f, to)
        else:
            above = tree.by_code[pool.region_code]
            note = f"由{above.name}（{above.code}）统筹，基金收支见该统筹区的报告（基金 {pool.id}）"
        own = pool is not None and pool.region_code == code
        # A pool above the token's scope is named (the directory is open) but not given: its figures
        # are the whole province's.
        shown = pool if pool is not None and c.access.may(pool.region_code) else None
        out.append(ReportSchemeRec(sc, t.insured, t.beneficiaries, shown, own, note, account))
    return FundReportRec(code, year, half, first, last, f"{rec.name}{name}", out, sorted(s.missing))
