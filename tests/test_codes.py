"""Unit tests: identifiers, months, amounts and the adjustment's exact allocation."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tierfed.resolvers.adjustment import allocate, remittance

from tierfed import codes
from tierfed.importer import Bad, checked, fen


def valid_id(prefix: str = "440305", born: str = "19900307", seq: str = "123") -> str:
    first = prefix + born + seq
    return first + codes.id_check_char(first)


def test_id_number_accepts_valid_and_x_check() -> None:
    assert codes.id_number("11010519491231002X") == "11010519491231002X"
    assert codes.id_number(valid_id()) == valid_id()
    assert codes.id_number(valid_id().lower()) == valid_id().upper()


@pytest.mark.parametrize("bad, words", [
    ("44030519900307123", "malformed"),
    ("4403051990030712345", "malformed"),
    ("44030519900230123X", "impossible birth date"),
    ("440305" + "21000101" + "1234", "outside 1900 to today"),
    ("11010519491231002Y", "malformed"),
])
def test_id_number_rejects(bad: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        codes.id_number(bad)


def test_id_number_check_character() -> None:
    good = valid_id()
    wrong = good[:17] + ("0" if good[17] != "0" else "1")
    with pytest.raises(ValueError, match="check character"):
        codes.id_number(wrong)


def test_mask() -> None:
    assert codes.mask_id("11010519491231002X") == "110105********002X"


def test_credit_code() -> None:
    # A published example of a valid unified social credit code.
    assert codes.credit_code("91350100M000100Y43") == "91350100M000100Y43"
    with pytest.raises(ValueError, match="check character"):
        codes.credit_code("91350100M000100Y44")
    with pytest.raises(ValueError, match="malformed"):
        codes.credit_code("91350100M000100YI3")


def test_months_and_periods() -> None:
    assert codes.month("2025-02") == date(2025, 2, 1)
    for bad in ("2025-13", "2025-1", "25-01", "2025/01", "", "1989-12"):
        with pytest.raises(ValueError):
            codes.month(bad)
    assert len(codes.months(date(2024, 11, 1), date(2025, 2, 1))) == 4
    with pytest.raises(ValueError, match="before"):
        codes.period("2025-03", "2025-02")


@pytest.mark.parametrize("text", ["-1.00", "1.234", "1e3", "abc", "", " ", "1,000.00"])
def test_amount_rejects(text: str) -> None:
    with pytest.raises(Bad, match="at most 2 decimals"):
        checked(text, "base")


def test_amount_format() -> None:
    assert checked("12.5", "base") == "12.5" and checked(" 7 ", "base") == "7"
    assert fen("12.5", "base") == 1250
    assert codes.format_amount(Decimal("12.5")) == "12.50"
    assert codes.format_amount(Decimal("0.045")) == "0.045"


def test_remittance_rounds_to_fen() -> None:
    assert remittance(Decimal("8000.00"), 100, Decimal("0.045")) == Decimal("388800.00")
    assert remittance(Decimal("7777.77"), 3, Decimal("0.035")) == Decimal("8819.99")


@given(st.integers(0, 10**12), st.lists(st.integers(0, 10**7), min_size=1, max_size=31))
def test_allocation_adds_up_to_the_fen(total_fen: int, weights: list[int]) -> None:
    total = Decimal(total_fen).scaleb(-2)
    parts = allocate(total, weights)
    if sum(weights) == 0:
        assert all(p == 0 for p in parts)
        return
    assert sum(parts) == total
    for p, w in zip(parts, weights):
        exact = total * w / sum(weights)
        assert abs(p - exact) < Decimal("0.01")
