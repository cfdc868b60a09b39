"""The controller's settings and the error that asks for a quiet retry."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ControllerSettings:
    provisioner_name: str
    # A worker spends nearly all of a claim waiting for the API server (the PV create): at a
    # burst's pace of a few hundred claims/s and ~0.1 s per create, 16 workers let claims
    # queue for seconds (benchmarks/README.md, "Where a claim's time goes"). An idle worker
    # thread costs ~20 KiB.
    workers: int = 64
    resync_period: float = 900.0
    retry_base_delay: float = 15.0
    retry_max_delay: float = 1000.0
    # The Go library gives up after this many failures; we keep retrying at the cap and say so.
    failure_threshold: int = 15
    save_attempts: int = 5
    save_retry_delay: float = 0.5
    # Background work of the leader; 0 turns it off.
    usage_scan_interval: float = 600.0
    usage_scan_rate: float = 2000.0
    archive_sweep_interval: float = 3600.0
    # An operation running this long is reported stuck (readiness, metrics): see watchdog.
    stuck_operation_after: float = 60.0
    # Copies of cloned volumes running at once, on threads of their own (not workers).
    clone_workers: int = 2
    # How often a running copy reports its progress in an event.
    clone_progress_interval: float = 10.0

    @property
    def resize_workers(self) -> int:
        # Resizes are rare and take three API calls each: a few workers keep up with bursts.
        return max(1, self.workers // 4)


class RetryLaterError(Exception):
    """Not an error the user must act on (e.g. the class is not in the cache yet)."""
