"""A synthetic, reproducible data set written as the import CSV files.

Persons are spread over counties roughly like the real population (province
weights from the 2020 census, a skewed split inside each province); about one
in five is insured away from the province of household registration, as
migrant workers are. Bases follow each province's wage level; rates are the
usual ones per scheme (pension 16% + 8% with 8% to the individual account,
medical 8% + 2%, unemployment 0.5% + 0.5%, work injury 0.2%-1.9% by industry
risk class, maternity 0.8%); flexible workers pay pension and medical alone.
Retirees draw pensions; some insured draw medical, unemployment, work-injury
and maternity benefits.

The same seed gives the same files. With ``split`` the rows go to one
directory per node, by the node that holds the record's region.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from . import codes
from .tiers.tree import Tree
from .tiers.vocabulary import SCHEMES

# 2020 census, millions; and a relative wage level.
PROVINCES = {
    "110000": (21.9, 1.9), "120000": (13.9, 1.3), "130000": (74.6, 0.85), "140000": (34.9, 0.85),
    "150000": (24.0, 0.95), "210000": (42.6, 0.9), "220000": (24.1, 0.85), "230000": (31.9, 0.8),
    "310000": (24.9, 2.0), "320000": (84.7, 1.2), "330000": (64.6, 1.25), "340000": (61.0, 0.95),
    "350000": (41.5, 1.0), "360000": (45.2, 0.85), "370000": (101.5, 0.95), "410000": (99.4, 0.8),
    "420000": (57.8, 0.95), "430000": (66.4, 0.85), "440000": (126.0, 1.2), "450000": (50.1, 0.85),
    "460000": (10.1, 0.95), "500000": (32.1, 1.0), "510000": (83.7, 0.95), "520000": (38.6, 0.9),
    "530000": (47.2, 0.9), "540000": (3.6, 1.3), "610000": (39.5, 0.9), "620000": (25.0, 0.8),
    "630000": (5.9, 1.05), "640000": (7.2, 0.95), "650000": (25.9, 0.95),
}
AVERAGE_WAGE = 7800  # yuan a month, urban units, order of magnitude of recent years
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国文辉玉兰红梅志强海燕婷雪浩宇子涵欣怡梓轩一诺思远佳琪俊杰晨阳嘉怡雨桐"
# Pools: (scheme, level) where the data set starts; cities fall back to their province
# or county as the ragged tree requires.
POOL_LEVELS = {"PENSION": 1, "MEDICAL": 2, "WORK_INJURY": 2, "UNEMPLOYMENT": 1, "MATERNITY": 2}
WORK_INJURY_RATES = (0.002, 0.004, 0.007, 0.009, 0.011, 0.013, 0.016, 0.019)


@dataclass
class Options:
    persons: int = 10_000
    first: date = date(2025, 1, 1)
    last: date = date(2025, 12, 1)
    seed: int = 1
    pools_from: date = date(2024, 1, 1)


def id_number(rng: random.Random, household: str, born: date) -> str:
    first17 = f"{household}{born:%Y%m%d}{rng.randrange(1000):03d}"
    return first17 + codes.id_check_char(first17)


def credit_code(rng: random.Random, region: str) -> str:
    org = "".join(rng.choice(codes.CREDIT_CHARS[:10] + "ABCDEFGHJKLMNPQRTUWXY") for _ in range(9))
    first17 = "91" + region + org
    return first17 + codes.credit_check_char(first17)


def record_regions(tree: Tree) -> dict[str, list[str]]:
    """Per province, the regions that handle records: counties, and cities that have none."""
    out: dict[str, list[str]] = {}
    for p in PROVINCES:
        regs = []
        for code in tree.subtree(p):
            r = tree.by_code[code]
            if r.tier == 3 or (r.tier == 2 and not tree.kids(code)):
                regs.append(code)
        out[p] = regs
    return out


def pool_regions(tree: Tree, scheme: str) -> list[str]:
    """The regions pooled for a scheme at the start: the scheme's level where the tree has it."""
    level = POOL_LEVELS[scheme]
    out = []
    for p in PROVINCES:
        if level == 1:
            out.append(p)
            continue
        kids = tree.kids(p)
        if not any(tree.by_code[c].tier == 2 for c in kids):
            out.append(p)  # a municipality: its city level is the province
            continue
        out.extend(kids)  # cities, and counties administered directly by the province
    return out


class Writers:
    """One set of CSV writers per output directory."""

    HEADERS = {
        "persons": ("id_number", "name", "region_code"),
        "employers": ("credit_code", "name", "region_code", "industry_risk_class"),
        "contributions": ("id_number", "scheme", "month", "region_code", "employer_credit_code", "base",
                          "employer_amount", "individual_amount", "individual_account_amount"),
        "benefits": ("id_number", "scheme", "month", "region_code", "amount"),
        "pools": ("scheme", "region_code", "opened_from", "opening_balance"),
    }

    def __init__(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.files = {k: (out / f"{k}.csv").open("w", encoding="utf-8", newline="") for k in self.HEADERS}
        self.csv = {k: csv.writer(f, lineterminator="\n") for k, f in self.files.items()}
        for k, h in self.HEADERS.items():
            self.csv[k].writerow(h)
        self.counts = {k: 0 for k in self.HEADERS}

    def raw(self, kind: str, line: str) -> None:
        self.files[kind].write(line)
        self.counts[kind] += 1

    def row(self, kind: str, row: tuple) -> None:
        self.csv[kind].writerow(row)
        self.counts[kind] += 1

    def close(self) -> None:
        for f in self.files.values():
            f.close()


def y(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def generate(tree: Tree, out: Path, opts: Options,
             split: Callable[[str], str] | None = None) -> dict[str, dict[str, int]]:
    """Write the data set; with ``split`` (region -> subdirectory name) one directory per node."""
    rng = random.Random(opts.seed)
    writers: dict[str, Writers] = {}

    def w(region: str) -> Writers:
        key = split(region) if split else ""
        if key not in writers:
            writers[key] = Writers(out / key if key else out)
        return writers[key]

    regions = record_regions(tree)
    prov_codes = list(PROVINCES)
    prov_weights = [PROVINCES[p][0] for p in prov_codes]
    county_weights = {p: [rng.lognormvariate(0, 0.8) for _ in regions[p]] for p in prov_codes}
    months = codes.months(opts.first, opts.last)
    month_text = [m.isoformat()[:7] for m in months]

    # Employers are founded where the workers are: about one per 15 employees, in the
    # employee's county, so a node split keeps every employer with its records.
    employers: dict[str, list[tuple[str, int]]] = {}

    def employer_in(reg: str) -> tuple[str, int]:
        here = employers.setdefault(reg, [])
        if here and rng.random() > 1 / 15:
            return rng.choice(here)
        code = credit_code(rng, reg)
        risk = rng.choices(range(1, 9), (30, 25, 15, 10, 8, 6, 4, 2))[0]
        here.append((code, risk))
        w(reg).row("employers", (code, f"{tree.by_code[reg].name}{rng.choice('华新达盛兴源利安')}"
                                       f"{rng.choice('科技实业制造物流贸易建设')}有限公司", reg, risk))
        return code, risk

    seen_ids: set[str] = set()
    for _ in range(opts.persons):
        p = rng.choices(prov_codes, prov_weights)[0]
        reg = rng.choices(regions[p], county_weights[p])[0]
        wage = AVERAGE_WAGE * PROVINCES[p][1]
        if rng.random() < 0.2:
            hp = rng.choices(prov_codes, prov_weights)[0]
            household = rng.choice(regions[hp])
        else:
            household = reg
        kind = rng.random()
        retiree = kind < 0.17
        flexible = 0.17 <= kind < 0.25
        born = date(rng.randint(1948, 1964), rng.randint(1, 12), rng.randint(1, 28)) if retiree else \
            date(rng.randint(1966, 2004), rng.randint(1, 12), rng.randint(1, 28))
        idn = id_number(rng, household, born)
        while idn in seen_ids:
            # Two persons drew the same region, birth date and sequence number (about ten in a
            # million): take the next free sequence number, drawing nothing more at random.
            seq = (int(idn[14:17]) + 1) % 1000
            first17 = f"{idn[:14]}{seq:03d}"
            idn = first17 + codes.id_check_char(first17)
        seen_ids.add(idn)
        name = rng.choice(SURNAMES) + rng.choice(GIVEN) + (rng.choice(GIVEN) if rng.random() < 0.6 else "")
        ww = w(reg)
        ww.row("persons", (idn, name, reg))
        if retiree:
            pension = int(wage * rng.uniform(0.35, 0.6)) * 100
            for mt in month_text:
                ww.raw("benefits", f"{idn},PENSION,{mt},{reg},{y(pension)}\n")
                if rng.random() < 0.06:
                    ww.raw("benefits", f"{idn},MEDICAL,{mt},{reg},{y(rng.randint(20000, 400000))}\n")
            continue
        base = int(min(max(wage * rng.lognormvariate(0, 0.35), wage * 0.6), wage * 3))
        emp, risk = ("", 1) if flexible else employer_in(reg)
        schemes = ["PENSION", "MEDICAL"]
        if not flexible:
            if rng.random() < 0.8:
                schemes.append("WORK_INJURY")
            if rng.random() < 0.7:
                schemes.append("UNEMPLOYMENT")
            if rng.random() < 0.75:
                schemes.append("MATERNITY")
        start = rng.randrange(len(months)) if rng.random() < 0.08 else 0
        stop = rng.randrange(start, len(months)) if rng.random() < 0.05 else len(months) - 1
        b100 = base * 100
        lines = []
        for mi in range(start, stop + 1):
            mt = month_text[mi]
            for s in schemes:
                if flexible:
                    if s == "PENSION":
                        e, i, a = 0, b100 * 20 // 100, b100 * 8 // 100
                    else:
                        e, i, a = 0, b100 * 9 // 100, 0
                elif s == "PENSION":
                    e, i, a = b100 * 16 // 100, b100 * 8 // 100, b100 * 8 // 100
                elif s == "MEDICAL":
                    e, i, a = b100 * 8 // 100, b100 * 2 // 100, b100 * 2 // 100
                elif s == "WORK_INJURY":
                    e, i, a = int(b100 * WORK_INJURY_RATES[risk - 1]), 0, 0
                elif s == "UNEMPLOYMENT":
                    e, i, a = b100 * 5 // 1000, b100 * 5 // 1000, 0
                else:
                    e, i, a = b100 * 8 // 1000, 0, 0
                lines.append(f"{idn},{s},{mt},{reg},{emp},{base}.00,{y(e)},{y(i)},{y(a)}\n")
            r = rng.random()
            if r < 0.04:
                ww.raw("benefits", f"{idn},MEDICAL,{mt},{reg},{y(rng.randint(5000, 300000))}\n")
            elif r < 0.045 and "UNEMPLOYMENT" in schemes:
                ww.raw("benefits", f"{idn},UNEMPLOYMENT,{mt},{reg},{y(int(wage * 0.5) * 100)}\n")
            elif r < 0.047 and "WORK_INJURY" in schemes:
                ww.raw("benefits", f"{idn},WORK_INJURY,{mt},{reg},{y(rng.randint(100000, 3000000))}\n")
            elif r < 0.049 and "MATERNITY" in schemes:
                ww.raw("benefits", f"{idn},MATERNITY,{mt},{reg},{y(rng.randint(1000000, 3000000))}\n")
        for line in lines:
            ww.raw("contributions", line)

    for s in SCHEMES:
        for reg in pool_regions(tree, s):
            size = PROVINCES.get(reg[:2] + "0000", (10, 1))[0]
            opening = int(rng.uniform(0.2, 1.0) * size * 1_000_000) * 100
            w(reg).row("pools", (s, reg, opts.pools_from.isoformat()[:7], y(opening)))

    for ww in writers.values():
        ww.close()
    return {k or ".": v.counts for k, v in writers.items()}
