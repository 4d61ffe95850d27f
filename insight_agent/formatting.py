"""How figures are written for people: one home for every answer, headline, persona and chart.

The grounding check (agent/grounding.py) reads figures back out of answers and matches them
to tool facts, so the formats here are the ones it understands: a share as a percentage with
one decimal ("31.1%"), thousands separators, two decimals only when a value has cents.
"""

from __future__ import annotations

from typing import Any


def pct(share: Any, digits: int = 1) -> str:
    """A share (0.311) as a percentage: "31.1%"; halves round up as people round them
    (0.7045 is "70.5%", where binary floats would give "70.4%")."""
    from decimal import ROUND_HALF_UP, Decimal

    value = Decimal(repr(float(share))) * 100
    return f"{value.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)}%"


def signed_pct(change: Any) -> str:
    """A relative change (-0.052) with its sign: "-5.2%", "+3.0%"."""
    value = float(change)
    return f"{'+' if value >= 0 else '-'}{abs(value) * 100:.1f}%"


def amount(value: Any) -> str:
    """Money or any total: "1,234" when whole, else "1,234.50"."""
    value = float(value)
    return f"{value:,.2f}" if value % 1 else f"{value:,.0f}"


def number(value: Any) -> str:
    """A plain number, no trailing zeros: "1,234", "12.5", "0.37"."""
    value = float(value)
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}".rstrip("0").rstrip(".")


def short_number(value: Any) -> str:
    """A number inside a sentence about a person ("spend 1,234", "12.50 days"): whole from 100
    up, else two decimals; -0.0 reads "0"."""
    f = float(value) + 0.0
    return f"{f:,.0f}" if abs(f) >= 100 or f.is_integer() else f"{f:,.2f}"


def axis_pct(share: float) -> str:
    """A chart label: "12%", "3.4%", "0%" (one decimal below 10% so small shares do not all
    read "0%")."""
    if share != 0 and abs(share) < 0.1:
        return f"{share:.1%}"
    return f"{share:.0%}"


def axis_amount(value: float) -> str:
    """A chart label for money: whole from 100 up, else at most two decimals."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}".rstrip("0").rstrip(".")
