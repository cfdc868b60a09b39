"""The archive sweep counts what it removed and what it could not (the alert reads the latter)."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import REGISTRY

from nfs_provisioner.controller.archive_sweeps import sweep_once
from nfs_provisioner.storage import ExpiredStorage


class _Sweeper:
    def __init__(self, found: list[ExpiredStorage]) -> None:
        self.found = found

    def sweep_expired(self, now: datetime) -> list[ExpiredStorage]:
        return self.found


def _sample(name: str) -> float:
    value = REGISTRY.get_sample_value(name)
    assert value is not None, name
    return value


def test_removed_and_failed_archives_are_counted_apart() -> None:
    removed = _sample("nfs_provisioner_archives_removed_total")
    failed = _sample("nfs_provisioner_archive_sweep_errors_total")
    sweep_once(
        _Sweeper(
            [
                ExpiredStorage("nfs:/x/archived-a", 90000.0),
                ExpiredStorage("nfs:/x/archived-b", 90000.0, error="Permission denied"),
                ExpiredStorage("nfs:/x/archived-c", 90000.0, error="Directory not empty"),
            ]
        )
    )
    assert _sample("nfs_provisioner_archives_removed_total") == removed + 1
    assert _sample("nfs_provisioner_archive_sweep_errors_total") == failed + 2
