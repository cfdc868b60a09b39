"""Kubernetes resource quantities ("1Gi", "500M", "1.5e3"), compared exactly."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Final

_QUANTITY: Final = re.compile(
    r"(?P<number>[+-]?(?:\d+\.?\d*|\.\d+))(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?"
)
_BINARY: Final = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL: Final = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_UNITS: Final = ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei")


def parse_quantity(text: str) -> Decimal:
    """The value of a quantity; ValueError if the API server would not have accepted it."""
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid quantity {text!r}")
    try:
        number = Decimal(match["number"])
    except InvalidOperation:
        raise ValueError(f"invalid quantity {text!r}") from None
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * Decimal(1024) ** _BINARY[suffix]
    if suffix in _DECIMAL:
        return number.scaleb(_DECIMAL[suffix])
    if suffix:
        return number.scaleb(int(suffix[1:]))
    return number


def format_bytes(count: float) -> str:
    """A short binary-unit size for messages: "512", "1.5Ki", "20Gi"."""
    value = float(count)
    unit = ""
    for next_unit in _UNITS:
        if abs(value) < 1024:
            break
        value /= 1024
        unit = next_unit
    text = f"{value:.1f}".removesuffix(".0") if unit else f"{value:.0f}"
    return text + unit
