"""Parsing and checking of the identifiers and values users send: division codes,
resident ID numbers, unified social credit codes, months and amounts.

Each parser returns the normalised value or raises ``ValueError`` with a message
that says what is wrong and what is expected; callers turn that into a
BAD_USER_INPUT error or a row report.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# ASCII digits only: str.isdigit and \d take full-width and other Unicode digits, which no
# stored code, month or amount may hold.
REGION_RE = re.compile(r"^[0-9]{6}\Z")
MONTH_RE = re.compile(r"^([0-9]{4})-([0-9]{2})\Z")
AMOUNT_RE = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,2})?\Z")
DECIMAL_RE = re.compile(r"^-?[0-9]{1,15}(\.[0-9]{1,6})?\Z")
AGENCY_RE = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,31}\Z")

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"
CREDIT_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CREDIT_INDEX = {c: i for i, c in enumerate(CREDIT_CHARS)}
CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
FEN = Decimal("0.01")
MIN_MONTH = date(1990, 1, 1)
MAX_MONTH = date(2100, 12, 1)


def region_code(value: str) -> str:
    if not isinstance(value, str) or not REGION_RE.match(value):
        raise ValueError(f"region code {value!r} is malformed: expected 6 digits (GB/T 2260), e.g. 440000")
    return value


def agency_code(value: str) -> str:
    if not isinstance(value, str) or not AGENCY_RE.match(value):
        raise ValueError(
            f"agency code {value!r} is malformed: expected 2-32 upper-case letters, digits or '-', e.g. RS440000"
        )
    return value


def id_check_char(first17: str) -> str:
    return ID_CHECK[sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS)) % 11]


def id_number(value: str, today: date | None = None) -> str:
    """An 18-character resident ID number (GB 11643) with its ISO 7064 MOD 11-2 check character."""
    if not isinstance(value, str):
        raise ValueError("ID number must be a string of 18 characters")
    v = value.strip().upper()
    if len(v) != 18 or not v.isascii() or not v[:17].isdigit() or not (v[17].isdigit() or v[17] == "X"):
        raise ValueError(f"ID number {mask_id(value)} is malformed: expected 17 digits and a check digit or X")
    try:
        born = date(int(v[6:10]), int(v[10:12]), int(v[12:14]))
    except ValueError:
        # The birth date is what the mask hides: named by its place, never shown.
        raise ValueError(f"ID number {mask_id(value)} has an impossible birth date (characters 7 to 14, "
                         "YYYYMMDD)") from None
    if born.year < 1900 or born > (today or date.today()):
        raise ValueError(f"ID number {mask_id(value)} has a birth date (characters 7 to 14) outside 1900 to today")
    if id_check_char(v[:17]) != v[17]:
        raise ValueError(f"ID number {mask_id(value)} fails its check character (ISO 7064 MOD 11-2)")
    return v


def mask_id(value: str) -> str:
    """First 6 and last 4 characters shown, the rest '*'; anything else fully masked."""
    if not isinstance(value, str) or len(value) != 18:
        return "*" * 18
    return value[:6] + "*" * 8 + value[-4:]


def credit_check_char(first17: str) -> str:
    r = 31 - sum(CREDIT_INDEX[c] * w for c, w in zip(first17, CREDIT_WEIGHTS)) % 31
    return CREDIT_CHARS[0 if r == 31 else r]


def credit_code(value: str) -> str:
    """An 18-character unified social credit code with its GB 32100 check character."""
    if not isinstance(value, str):
        raise ValueError("credit code must be a string of 18 characters")
    v = value.strip().upper()
    if len(v) != 18 or any(c not in CREDIT_INDEX for c in v):
        raise ValueError(
            f"credit code {value!r} is malformed: expected 18 characters of 0-9 and A-Y without I, O, S, V, Z"
        )
    if credit_check_char(v[:17]) != v[17]:
        raise ValueError(f"credit code {value!r} fails its check character (GB 32100)")
    return v


def month(value: str) -> date:
    """'YYYY-MM' to the first day of that month."""
    m = MONTH_RE.match(value) if isinstance(value, str) else None
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ValueError(f"month {value!r} is malformed: expected YYYY-MM, e.g. 2025-01")
    d = date(int(m.group(1)), int(m.group(2)), 1)
    if not MIN_MONTH <= d <= MAX_MONTH:
        raise ValueError(f"month {value!r} is out of range: expected 1990-01 to 2100-12")
    return d


def month_str(d: date) -> str:
    return f"{d.year:04d}-{d.month:02d}"


def add_months(d: date, n: int) -> date:
    k = d.year * 12 + d.month - 1 + n
    return date(k // 12, k % 12 + 1, 1)


def months(start: date, end: date) -> list[date]:
    """Inclusive list of months from start to end."""
    n = (end.year - start.year) * 12 + end.month - start.month
    return [add_months(start, i) for i in range(n + 1)]


def current_month() -> date:
    t = date.today()
    return date(t.year, t.month, 1)


def period(start: str, end: str) -> tuple[date, date]:
    f, t = month(start), month(end)
    if t < f:
        raise ValueError(f"period is empty: 'to' ({end}) is before 'from' ({start})")
    if len(months(f, t)) > 120:
        raise ValueError(f"period {start}..{end} is longer than 120 months")
    return f, t


def decimal(value: str) -> Decimal:
    """A plain decimal string (no exponent, NaN or infinity), up to 6 fraction digits."""
    if not isinstance(value, str) or not DECIMAL_RE.match(value.strip()):
        raise ValueError(f"decimal {value!r} is malformed: expected a plain decimal string, e.g. 0.045 or 1234.50")
    try:
        d = Decimal(value.strip())
    except InvalidOperation:  # pragma: no cover - the regex admits only valid text
        raise ValueError(f"decimal {value!r} is malformed") from None
    return d.copy_abs() if d.is_zero() else d  # "-0" is zero, never printed back as -0.00


def fen(d: Decimal) -> Decimal:
    """Round half up to the fen."""
    return d.quantize(FEN, rounding=ROUND_HALF_UP)


def format_amount(d: Decimal) -> str:
    """Amounts always print with exactly two fraction digits; finer values (a ratio) keep theirs."""
    if d == d.quantize(FEN):
        return f"{d.quantize(FEN):f}"
    return f"{d.normalize():f}"
