"""One duration grammar for settings, adopt --timeout and archiveRetention."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nfs_provisioner.config import parse_duration as parse_setting
from nfs_provisioner.nfs import parse_retention
from nfs_provisioner.values import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("15s", 15),
        ("10m", 600),
        ("1h30m", 5400),
        ("1d12h", 129600),
        ("2w", 1209600),
        ("1.5h", 5400),
        ("0", 0),
        ("0s", 0),
    ],
)
def test_durations_with_units_are_read_the_same_everywhere(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_setting(text) == seconds
    if seconds > 0:
        assert parse_retention(text) == seconds


@pytest.mark.parametrize("text", ["5", "30", "0.5"])
def test_a_bare_number_needs_a_unit_except_in_settings(text: str) -> None:
    with pytest.raises(ValueError, match="has no unit"):
        parse_duration(text)
    with pytest.raises(ValueError, match="invalid retention"):
        parse_retention(text)
    assert parse_setting(text) == float(text)


@pytest.mark.parametrize("text", ["", "s", "-1s", "1m30", "15x", "1e3s", "nan", "inf", "1 m"])
def test_malformed_durations_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(text, bare_seconds=True)


@given(st.integers(min_value=0, max_value=10**10))
def test_format_duration_reads_back(milliseconds: int) -> None:
    seconds = milliseconds / 1000
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


def test_format_duration_is_the_readme_spelling() -> None:
    assert [format_duration(s) for s in (600, 3600, 900, 60, 1000, 0.5, 0)] == [
        "10m",
        "1h",
        "15m",
        "1m",
        "16m40s",
        "500ms",
        "0",
    ]
