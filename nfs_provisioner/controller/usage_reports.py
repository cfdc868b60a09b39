"""Per-volume usage: a background scan, gauges, and a warning when a volume outgrows its size.

The storage knows nothing of sizes and cannot enforce them (NFS has no per-directory limit),
so the scan is what makes an overgrown volume visible: as metrics, and as one Warning event
on the claim each time its volume crosses its capacity.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from nfs_provisioner.controller import metrics
from nfs_provisioner.controller.quantities import format_bytes, parse_quantity
from nfs_provisioner.controller.resizing import volume_capacity
from nfs_provisioner.kube import WARNING, EventRecorder, Informer
from nfs_provisioner.objects import (
    ANN_PROVISIONED_BY,
    annotations_of,
    object_name,
    spec_of,
    status_of,
)
from nfs_provisioner.storage import BackendError, UsageMeter

log = structlog.get_logger(__name__)
# Seconds: the shortest wait of the rate limit.
_LEAST_WAIT = 0.1


class ScanStoppedError(Exception):
    """The process is stopping; the scan ends where it is."""


class EntryRate:
    """A token bucket over directory entries: on average at most ``rate`` per second.

    A call may take more than the bucket holds (one huge directory); the debt is then paid by
    waiting, so the average holds without ever splitting a directory listing. Small debts are
    let run up to a tenth of a second's worth before waiting: a wake-up per directory would
    cost more CPU than the stats it paces.
    """

    def __init__(self, rate: float, stop: threading.Event) -> None:
        self.rate = rate
        self._stop = stop
        self._tokens = rate
        self._last = time.monotonic()

    def __call__(self, count: int) -> None:
        now = time.monotonic()
        self._tokens = min(self.rate, self._tokens + (now - self._last) * self.rate) - count
        self._last = now
        if self._tokens < -self.rate * _LEAST_WAIT and self._stop.wait(-self._tokens / self.rate):
            raise ScanStoppedError


@dataclass(frozen=True)
class VolumeRef:
    """A bound volume of ours, and the claim its events go to."""

    name: str
    namespace: str
    claim: str
    claim_uid: str | None
    capacity: str | None

    @property
    def labels(self) -> tuple[str, str, str]:
        return (self.namespace, self.claim, self.name)

    def claim_object(self) -> dict[str, Any]:
        metadata = {"name": self.claim, "namespace": self.namespace}
        if self.claim_uid:
            metadata["uid"] = self.claim_uid
        return {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "metadata": metadata}


def bound_volume(volume: Mapping[str, Any], provisioner_name: str) -> VolumeRef | None:
    """The volume as a VolumeRef if it is ours and Bound, else None."""
    if annotations_of(volume).get(ANN_PROVISIONED_BY) != provisioner_name:
        return None
    if status_of(volume).get("phase") != "Bound":
        return None
    claim_ref = spec_of(volume).get("claimRef") or {}
    if not claim_ref.get("name"):
        return None
    return VolumeRef(
        name=object_name(volume),
        namespace=str(claim_ref.get("namespace", "")),
        claim=str(claim_ref["name"]),
        claim_uid=claim_ref.get("uid"),
        capacity=volume_capacity(volume),
    )


def is_over_capacity(used_bytes: int, capacity: str | None) -> bool:
    if capacity is None:
        return False
    try:
        return used_bytes > parse_quantity(capacity)
    except ValueError:
        return False


class UsageReporter:
    """Scans every bound volume of ours, one after the other, then waits for the next round."""

    def __init__(
        self,
        volumes: Informer,
        meter: UsageMeter,
        events: EventRecorder,
        *,
        provisioner_name: str,
        interval: float,
        rate: float,
        stop: threading.Event,
    ) -> None:
        self.volumes = volumes
        self.meter = meter
        self.events = events
        self.provisioner_name = provisioner_name
        self.interval = interval
        self.stop = stop
        self._throttle = EntryRate(rate, stop)
        self._reported: set[tuple[str, str, str]] = set()
        self._over: set[str] = set()

    def run(self) -> None:
        """Scan at the start of every interval; a scan longer than that is followed at once."""
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                self.scan_once()
            except ScanStoppedError:
                return
            except Exception:  # a bug must not silently end the reporting
                log.exception("usage scan failed")
            else:
                metrics.USAGE_SCAN_DURATION.set(time.monotonic() - started)
                metrics.USAGE_SCANS_TOTAL.inc()
            self.stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def scan_once(self) -> None:
        reported: set[tuple[str, str, str]] = set()
        for volume in self.volumes.items():
            ref = bound_volume(volume, self.provisioner_name)
            if ref is None:
                continue
            try:
                usage = self.meter.measure(volume, self._throttle)
            except BackendError as error:
                log.warning("cannot measure the volume's usage", pv=ref.name, error=str(error))
                continue
            if usage.unreadable:
                log.warning(
                    "parts of the volume could not be read; its usage is undercounted",
                    pv=ref.name,
                    unreadable_directories=usage.unreadable,
                )
            metrics.VOLUME_USED_BYTES.labels(*ref.labels).set(usage.used_bytes)
            metrics.VOLUME_USED_INODES.labels(*ref.labels).set(usage.used_inodes)
            if ref.capacity is not None:
                try:
                    capacity_bytes = float(parse_quantity(ref.capacity))
                except ValueError:
                    pass
                else:
                    metrics.VOLUME_CAPACITY_BYTES.labels(*ref.labels).set(capacity_bytes)
            reported.add(ref.labels)
            self._check_capacity(ref, usage.used_bytes)
        for labels in self._reported - reported:
            for gauge in (
                metrics.VOLUME_USED_BYTES,
                metrics.VOLUME_USED_INODES,
                metrics.VOLUME_CAPACITY_BYTES,
            ):
                with contextlib.suppress(KeyError):
                    gauge.remove(*labels)
        self._over &= {name for _, _, name in reported}
        self._reported = reported

    def _check_capacity(self, ref: VolumeRef, used_bytes: int) -> None:
        if not is_over_capacity(used_bytes, ref.capacity):
            self._over.discard(ref.name)
            return
        if ref.name in self._over:
            return
        self._over.add(ref.name)
        log.warning(
            "volume uses more than its capacity",
            pv=ref.name,
            claim=f"{ref.namespace}/{ref.claim}",
            used_bytes=used_bytes,
            capacity=ref.capacity,
        )
        self.events.record(
            ref.claim_object(),
            WARNING,
            "VolumeOverCapacity",
            f"volume {ref.name} uses {format_bytes(used_bytes)} ({used_bytes} bytes), more than "
            f"its capacity of {ref.capacity}; NFS cannot enforce the size, so the space comes "
            "out of what every volume on the export shares: delete data or expand the claim",
        )
