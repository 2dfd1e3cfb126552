"""Reading loosely typed values out of JSON data: the one money parser, text, local dates.

Project data and record payloads are JSON: amounts arrive as text (``"1234.50"``), ints or
decimals, and may be missing or malformed in data a rule has to judge. These readers
never raise; the strict validator for input models is `grantflow.records.money`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

__all__ = ["CENT", "ZERO", "decimal", "decimal_or_zero", "local_date", "money", "text"]

#: One fen: money is kept to two places.
CENT = Decimal("0.01")
#: Zero yuan, to two places.
ZERO = Decimal("0.00")


def decimal(value: Any) -> Decimal | None:
    """`value` as a finite Decimal; ``None`` when absent, a bool, malformed or not finite.

    >>> decimal("12.5"), decimal(3), decimal("NaN"), decimal(True), decimal("x")
    (Decimal('12.5'), Decimal('3'), None, None, None)
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        result = Decimal(str(value))
    except ArithmeticError:
        return None
    return result if result.is_finite() else None


def decimal_or_zero(value: Any) -> Decimal:
    """`decimal(value)`, with 0 for what is not a number."""
    found = decimal(value)
    return ZERO if found is None else found


def money(value: Any) -> Decimal | None:
    """`decimal(value)` rounded to the fen (two places), or ``None``."""
    found = decimal(value)
    return None if found is None else found.quantize(CENT)


def text(data: Mapping[str, Any], key: str) -> str:
    """Return ``data[key]`` as a string ('' when absent)."""
    value = data.get(key)
    return "" if value is None else str(value)


def local_date(moment: datetime, timezone: str) -> date:
    """The calendar date of `moment` in `timezone` (an IANA name such as Asia/Shanghai)."""
    return moment.astimezone(ZoneInfo(timezone)).date()
