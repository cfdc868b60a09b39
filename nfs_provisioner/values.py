"""Parsers of the values settings and StorageClass parameters share, for every layer."""

from __future__ import annotations

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
