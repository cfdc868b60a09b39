"""The usage reporter: gauges per bound volume, one warning per crossing, a bounded rate."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import pytest
from prometheus_client import REGISTRY

from nfs_provisioner.controller import usage_reports
from nfs_provisioner.controller.usage_reports import EntryRate, ScanStoppedError, UsageReporter
from nfs_provisioner.storage import BackendError, Throttle, VolumeUsage

NAME = "cluster.local/nfs"


def _volume(name: str, *, ours: bool = True, phase: str = "Bound") -> dict[str, Any]:
    owner = NAME if ours else "other"
    return {
        "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": owner}},
        "spec": {
            "capacity": {"storage": "1Ki"},
            "claimRef": {"namespace": "team", "name": f"claim-{name}", "uid": f"uid-{name}"},
        },
        "status": {"phase": phase},
    }


class FakeVolumes:
    def __init__(self, *volumes: dict[str, Any]) -> None:
        self.volumes = list(volumes)

    def items(self) -> list[dict[str, Any]]:
        return list(self.volumes)


class FakeMeter:
    def __init__(self) -> None:
        self.used: dict[str, int] = {}

    def measure(self, pv: Mapping[str, Any], throttle: Throttle) -> VolumeUsage:
        name = pv["metadata"]["name"]
        if name not in self.used:
            raise BackendError(f"directory of {name} does not exist")
        throttle(3)
        return VolumeUsage(self.used[name], 3)


class FakeEvents:
    def __init__(self) -> None:
        self.recorded: list[tuple[Mapping[str, Any], str, str, str]] = []

    def record(self, involved: Mapping[str, Any], event_type: str, reason: str, text: str) -> None:
        self.recorded.append((involved, event_type, reason, text))


def _reporter(volumes: FakeVolumes, meter: FakeMeter, events: FakeEvents) -> UsageReporter:
    return UsageReporter(
        volumes,  # type: ignore[arg-type]
        meter,
        events,  # type: ignore[arg-type]
        provisioner_name=NAME,
        interval=60,
        rate=1e9,
        stop=threading.Event(),
    )


def _sample(metric: str, pv: str) -> float | None:
    return REGISTRY.get_sample_value(
        metric,
        {"namespace": "team", "persistentvolumeclaim": f"claim-{pv}", "persistentvolume": pv},
    )


def test_gauges_follow_the_bound_volumes_of_ours() -> None:
    volumes = FakeVolumes(
        _volume("u-a"), _volume("u-theirs", ours=False), _volume("u-released", phase="Released")
    )
    meter = FakeMeter()
    meter.used = {"u-a": 512, "u-theirs": 1, "u-released": 1}
    reporter = _reporter(volumes, meter, FakeEvents())
    reporter.scan_once()
    assert _sample("nfs_provisioner_volume_used_bytes", "u-a") == 512
    assert _sample("nfs_provisioner_volume_used_inodes", "u-a") == 3
    assert _sample("nfs_provisioner_volume_capacity_bytes", "u-a") == 1024
    assert _sample("nfs_provisioner_volume_used_bytes", "u-theirs") is None
    assert _sample("nfs_provisioner_volume_used_bytes", "u-released") is None

    volumes.volumes = []
    reporter.scan_once()
    assert _sample("nfs_provisioner_volume_used_bytes", "u-a") is None
    assert _sample("nfs_provisioner_volume_capacity_bytes", "u-a") is None


def test_a_volume_that_cannot_be_measured_is_skipped() -> None:
    reporter = _reporter(FakeVolumes(_volume("u-gone"), _volume("u-b")), FakeMeter(), FakeEvents())
    reporter.meter.used = {"u-b": 1}  # type: ignore[attr-defined]
    reporter.scan_once()
    assert _sample("nfs_provisioner_volume_used_bytes", "u-gone") is None
    assert _sample("nfs_provisioner_volume_used_bytes", "u-b") == 1


def test_one_warning_per_crossing_of_the_capacity() -> None:
    meter, events = FakeMeter(), FakeEvents()
    reporter = _reporter(FakeVolumes(_volume("u-c")), meter, events)
    for used in (100, 2048, 4096, 512, 1024, 3000, 3000):
        meter.used["u-c"] = used
        reporter.scan_once()
    warnings = [e for e in events.recorded if e[2] == "VolumeOverCapacity"]
    assert len(warnings) == 2
    involved, event_type, _, message = warnings[0]
    assert event_type == "Warning"
    assert involved["kind"] == "PersistentVolumeClaim"
    assert involved["metadata"] == {"name": "claim-u-c", "namespace": "team", "uid": "uid-u-c"}
    assert "volume u-c uses 2Ki (2048 bytes), more than its capacity of 1Ki" in message
    assert "NFS cannot enforce the size" in message


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordingStop(threading.Event):
    def __init__(self, *, stopping: bool = False) -> None:
        super().__init__()
        self.waits: list[float] = []
        self.stopping = stopping

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.waits.append(timeout)
        return self.stopping


def test_entry_rate_waits_off_the_debt(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(usage_reports.time, "monotonic", clock)
    stop = RecordingStop()
    rate = EntryRate(100, stop)
    rate(100)  # the bucket starts full: one second's worth passes at once
    assert stop.waits == []
    rate(50)
    assert stop.waits == [0.5]
    clock.now += 10  # idle time refills the bucket, but never beyond one second's worth
    rate(100)
    rate(250)
    assert stop.waits[1:] == [2.5]
    clock.now += 10
    rate(100)
    rate(10)  # a debt of less than a tenth of a second's worth runs on
    assert stop.waits[2:] == []


def test_entry_rate_ends_the_scan_when_stopping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(usage_reports.time, "monotonic", FakeClock())
    rate = EntryRate(10, RecordingStop(stopping=True))
    with pytest.raises(ScanStoppedError):
        rate(20)
