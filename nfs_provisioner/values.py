"""Parsers of the values settings and StorageClass parameters share, for every layer."""

from __future__ import annotations

import math
import re
from typing import Final

GO_BOOL_ACCEPTED: Final = "true, false (also 1, 0, t, f, TRUE, FALSE, True, False)"
_TRUE: Final = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE: Final = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_go_bool(value: str) -> bool:
    """A boolean exactly as Go's strconv.ParseBool reads it, so Go-era settings keep working."""
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"invalid boolean {value!r}: expected {GO_BOOL_ACCEPTED}")


# One grammar of durations for every setting, flag and StorageClass parameter: numbers with
# units, largest first or not, e.g. 500ms, 15s, 10m, 1h30m, 30d, 2w. "0" needs no unit.
DURATION_UNITS: Final = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}
DURATION_ACCEPTED: Final = (
    "a duration: numbers with a unit ms, s, m, h, d or w, such as 500ms, 15s, 10m, 1h30m or 30d"
)
# "ms" before "m": the alternation takes the first that matches.
_DURATION: Final = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+")
_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_NUMBER: Final = re.compile(r"\d+(?:\.\d+)?")


def parse_duration(value: str, *, bare_seconds: bool = False) -> float:
    """Seconds from a duration such as "500ms", "1h30m" or "30d".

    A bare number other than 0 is refused ("5": seconds? days?) unless ``bare_seconds``: the
    provisioner's settings keep accepting seconds there, as they always have and as the
    chart's schema allows.
    """
    text = value.strip()
    if _DURATION.fullmatch(text):
        seconds = sum(
            float(number) * DURATION_UNITS[unit] for number, unit in _DURATION_PART.findall(text)
        )
    elif _NUMBER.fullmatch(text) and (bare_seconds or float(text) == 0):
        seconds = float(text)
    elif _NUMBER.fullmatch(text):
        raise ValueError(f"{text!r} has no unit: write {text}s, {text}m, {text}h or {text}d")
    else:
        raise ValueError(f"expected {DURATION_ACCEPTED}")
    if not math.isfinite(seconds):
        raise ValueError(f"expected {DURATION_ACCEPTED}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact spelling parse_duration reads back: 600 -> "10m", 0.5 -> "500ms"."""
    if seconds == 0:
        return "0"
    milliseconds = round(seconds * 1000)
    parts = []
    for unit in ("d", "h", "m", "s", "ms"):
        size = round(DURATION_UNITS[unit] * 1000)
        count, milliseconds = divmod(milliseconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
