"""Operations in progress and stuck ones, as readiness and metrics report them."""

from __future__ import annotations

from nfs_provisioner.controller.watchdog import OperationWatch


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_operation_past_the_threshold_is_stuck_until_it_returns() -> None:
    clock = Clock()
    watch = OperationWatch(stuck_after=30, clock=clock)
    assert watch.problem() is None
    with watch.track("claims", "ns/a"):
        clock.now += 10
        with watch.track("claims", "ns/b"), watch.track("volumes", "pvc-1"):
            assert (watch.in_progress("claims"), watch.in_progress("volumes")) == (2, 1)
            assert watch.oldest_age("claims") == 10
            assert watch.problem() is None
            clock.now += 25
            assert [op.key for op in watch.stuck()] == ["ns/a"]
            problem = watch.problem()
            assert problem is not None
            assert "1 operation(s) in progress for over 30s" in problem
            assert "claims ns/a for 35s" in problem
            clock.now += 5
            assert [op.key for op in watch.stuck()] == ["ns/a", "ns/b", "pvc-1"]
            assert [op.key for op in watch.stuck("volumes")] == ["pvc-1"]
        assert [op.key for op in watch.stuck()] == ["ns/a"]
    assert (watch.in_progress("claims"), watch.oldest_age("claims")) == (0, 0.0)
    assert watch.problem() is None


def test_a_failing_operation_is_no_longer_in_progress() -> None:
    watch = OperationWatch(stuck_after=0)
    try:
        with watch.track("claims", "ns/a"):
            raise OSError("boom")
    except OSError:
        pass
    assert watch.stuck() == []
