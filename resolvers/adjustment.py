"""The pension central adjustment: remittances from each province, allocations in
proportion to retirees, adding up to the total remittance to the fen."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from strawberry.types import Info
from tierfed.tiers.figures import SCHEME_ID

from tierfed import codes
from tierfed.errors import bad_input

from .common import year_arg
from .context import ctx

PENSION = SCHEME_ID["PENSION"]


@dataclass(frozen=True, slots=True)
class ProvinceAdjustmentRec:
    region_code: str
    insured_workers: int
    average_base: Decimal
    retirees: int
    remittance: Decimal
    allocation: Decimal

    @property
    def net(self) -> Decimal:
        return self.allocation - self.remittance


@dataclass(frozen=True, slots=True)
class CentralAdjustmentRec:
    year: int
    ratio: Decimal
    provinces: list[ProvinceAdjustmentRec]
    complete: bool
    missing_codes: list[str]


def remittance(average_base: Decimal, insured: int, ratio: Decimal) -> Decimal:
    return codes.fen(Decimal("0.9") * 12 * average_base * insured * ratio)


def allocate(total: Decimal, weights: list[int]) -> list[Decimal]:
    """Split ``total`` in proportion to ``weights`` by largest remainder, in whole fen.

    The parts add up to ``total`` exactly; ties go to the earlier entry (code order).
    With no weight at all nothing can be shared and every part is zero.
    """
    fen_total = int((total * 100).to_integral_value())
    w_sum = sum(weights)
    if w_sum == 0:
        return [Decimal("0.00") for _ in weights]
    quotas = [fen_total * w for w in weights]
    parts = [q // w_sum for q in quotas]
    rest = fen_total - sum(parts)
    order = sorted(range(len(weights)), key=lambda i: (-(quotas[i] % w_sum), i))
    for i in order[:rest]:
        parts[i] += 1
    return [Decimal(p).scaleb(-2).quantize(codes.FEN) for p in parts]


async def central_adjustment(info: Info, year: int, ratio: object) -> CentralAdjustmentRec:
    year_arg(year)
    try:
        r = ratio if isinstance(ratio, Decimal) else codes.decimal(str(ratio))
    except ValueError as e:
        raise bad_input(str(e), argument="ratio") from None
    if not Decimal(0) <= r <= Decimal(1):
        raise bad_input(f"ratio {ratio} is out of range: expected 0 to 1, e.g. 0.045 for 4.5%", argument="ratio")
    c = ctx(info)
    provinces = c.node.provinces()
    first, last = date(year, 1, 1), date(year, 12, 1)
    sums = await c.summary.load_many([(p, first, last, True) for p in provinces])
    rows = []
    missing: list[str] = []
    complete = True
    for p, s in zip(provinces, sums):
        if not s.complete:
            complete = False
            missing.extend(m for m in s.missing if m not in missing)
        count, base = 0, Decimal("0.00")
        for (_month, sc), f in s.rows.items():
            if sc == PENSION:
                count += f.contributions
                base += f.base
        dec = s.rows.get((last, PENSION))
        insured = dec.contributions if dec else 0
        retirees = dec.benefits if dec else 0
        avg = codes.fen(base / count) if count else Decimal("0.00")
        rows.append((p, insured, avg, retirees, remittance(avg, insured, r)))
    total = sum((x[4] for x in rows), Decimal("0.00"))
    allocs = allocate(total, [x[3] for x in rows])
    provs = [ProvinceAdjustmentRec(p, i, a, rt, rem, al) for (p, i, a, rt, rem), al in zip(rows, allocs)]
    return CentralAdjustmentRec(year, r, provs, complete, sorted(missing))
