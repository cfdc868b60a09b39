"""The soak's schedule: one seed, the same operations and faults at the same offsets."""

from __future__ import annotations

from collections import Counter

import pytest
from soak.__main__ import DEFAULT_DURATION, DEFAULT_SEED
from soak.schedule import (
    CLASSES,
    FAULT_HOLDS,
    NAMESPACES,
    QUIET_TAIL,
    build_schedule,
    parse_duration,
)


def test_the_same_seed_gives_the_same_schedule() -> None:
    first = build_schedule(17, 180)
    second = build_schedule(17, 180)
    assert first == second
    assert first.fingerprint() == second.fingerprint()


def test_another_seed_gives_another_schedule() -> None:
    assert build_schedule(17, 180).fingerprint() != build_schedule(18, 180).fingerprint()


def test_a_longer_run_starts_with_the_shorter_runs_operations() -> None:
    """Operations depend on the seed and the offset only: a 30-minute run of a seed replays
    its 3-minute run's operations first."""
    short = build_schedule(5, 180)
    long = build_schedule(5, 1800)
    assert long.operations[: len(short.operations)] == short.operations


def test_faults_come_one_at_a_time_and_end_before_the_quiet_tail() -> None:
    schedule = build_schedule(3, 600)
    for fault, following in zip(schedule.faults, schedule.faults[1:], strict=False):
        assert following.at > fault.heals_at
    assert all(f.heals_at <= 600 - QUIET_TAIL for f in schedule.faults)
    for fault in schedule.faults:
        low, high = FAULT_HOLDS[fault.kind]
        assert low <= fault.hold <= high
        assert (fault.target != "") == fault.kind.startswith("api-")
        assert (fault.delay_ms > 0) == (fault.kind == "api-delay")


def test_a_30_minute_run_reaches_the_targets() -> None:
    """>= 2000 claim lifecycles need >= 2000 creates and deletes; >= 100 faults; every kind."""
    schedule = build_schedule(17, 1800)
    kinds = Counter(o.kind for o in schedule.operations)
    assert kinds["create"] >= 2300
    assert kinds["delete"] >= 2200
    assert kinds["expand"] > 0
    assert len(schedule.faults) >= 100
    assert {f.kind for f in schedule.faults} == set(FAULT_HOLDS)
    assert {o.namespace for o in schedule.operations} == set(NAMESPACES)
    assert {o.storage_class for o in schedule.operations} == set(CLASSES)


def test_the_default_3_minute_run_injects_almost_every_kind_of_fault() -> None:
    schedule = build_schedule(DEFAULT_SEED, parse_duration(DEFAULT_DURATION))
    assert len(schedule.faults) >= 20
    assert len({f.kind for f in schedule.faults}) >= len(FAULT_HOLDS) - 1
    assert all(0 <= o.at < 180 for o in schedule.operations)


@pytest.mark.parametrize(
    ("text", "seconds"), [("180", 180.0), ("180s", 180.0), ("3m", 180.0), ("1h", 3600.0)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "0", "-3m", "3x"])
def test_a_bad_duration_is_refused_by_name(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
