"""Clones through the claim reconciler and the fake cluster: the source rules and the copy pool."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from nfs_provisioner.controller.cloning import CopyPool, claim_source, foreign_data_source
from nfs_provisioner.controller.provisioning import ClaimReconciler
from nfs_provisioner.controller.settings import ControllerSettings, RetryLaterError
from nfs_provisioner.storage import BackendError, CloneCancelledError, CloneProgress
from tests.unit.controller.fakes import (
    PROVISIONER,
    CloningBackend,
    FakeBackend,
    FakeCluster,
    claim,
    storage_class,
    volume,
)

UID = "0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9"
PV = f"pvc-{UID}"
KEY = "ns/data"
SOURCE_PV = "pvc-source"


def _source_ref(name: str = "src", **extra: Any) -> dict[str, Any]:
    return {"dataSource": {"kind": "PersistentVolumeClaim", "name": name, **extra}}


def _bound_source(
    name: str = "src", *, phase: str = "Bound", pv: str = SOURCE_PV, namespace: str = "ns"
) -> dict[str, Any]:
    """A bound claim as the cache keeps it (compacted: not ours to provision any more)."""
    return {
        "kind": "PersistentVolumeClaim",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"},
        "spec": {"volumeName": pv, "storageClassName": "nfs"},
        "status": {"phase": phase, "capacity": {"storage": "1Gi"}},
    }


class Harness:
    def __init__(self, backend: FakeBackend, workers: int = 2) -> None:
        self.cluster = FakeCluster()
        self.cluster.add(storage_class())
        self.backend = backend
        self.requeued: list[str] = []
        self.done = threading.Condition()
        self.pool = CopyPool(workers, self._on_done)
        self.reconciler = ClaimReconciler(
            self.cluster,
            backend,
            ControllerSettings(
                provisioner_name=PROVISIONER, save_retry_delay=0.0, clone_progress_interval=0.0
            ),
            stop=threading.Event(),
            copies=self.pool,
        )

    def _on_done(self, key: str) -> None:
        with self.done:
            self.requeued.append(key)
            self.done.notify_all()

    def wait_requeued(self, count: int = 1) -> None:
        with self.done:
            assert self.done.wait_for(lambda: len(self.requeued) >= count, timeout=10)

    def failures(self) -> list[str]:
        return [e.message for e in self.cluster.events if e.reason == "ProvisioningFailed"]


@pytest.fixture
def harness() -> Iterator[Harness]:
    made = Harness(CloningBackend())
    yield made
    made.backend.release.set()  # type: ignore[attr-defined]
    made.pool.shutdown()


def test_data_source_and_data_source_ref_name_the_source_claim() -> None:
    assert claim_source(claim(**_source_ref())) is not None
    ref = claim(dataSourceRef={"kind": "PersistentVolumeClaim", "name": "a", "namespace": "x"})
    found = claim_source(ref)
    assert found is not None and (found.name, found.namespace) == ("a", "x")
    snapshot = {"kind": "VolumeSnapshot", "apiGroup": "snapshot.storage.k8s.io", "name": "s"}
    assert claim_source(claim(dataSource=snapshot)) is None
    assert (
        foreign_data_source(claim(dataSource=snapshot)) == "VolumeSnapshot.snapshot.storage.k8s.io"
    )
    assert foreign_data_source(claim(**_source_ref())) is None
    assert claim_source(claim()) is None and foreign_data_source(claim()) is None


@pytest.mark.parametrize(
    ("objects", "spec", "reason"),
    [
        pytest.param(
            [], _source_ref("ghost"), "data source claim ns/ghost does not exist", id="missing"
        ),
        pytest.param(
            [_bound_source(phase="Pending", pv="")],
            _source_ref(),
            "data source claim ns/src is not Bound",
            id="not bound",
        ),
        pytest.param(
            [_bound_source(), volume(SOURCE_PV, phase="Bound", provisioned_by="other.io/nfs")],
            _source_ref(),
            f"bound to PersistentVolume {SOURCE_PV}, which {PROVISIONER} did not provision",
            id="another provisioner",
        ),
        pytest.param(
            [_bound_source(namespace="other"), volume(SOURCE_PV, phase="Bound")],
            {
                "dataSourceRef": {
                    "kind": "PersistentVolumeClaim",
                    "name": "src",
                    "namespace": "other",
                }
            },
            "data source claim other/src is in another namespace",
            id="another namespace",
        ),
        pytest.param(
            [_bound_source(), volume(SOURCE_PV, phase="Bound")],
            {**_source_ref(), "resources": {"requests": {"storage": "512Mi"}}},
            "the claim requests 512Mi, less than the 1Gi of its data source claim ns/src",
            id="smaller than the source",
        ),
        pytest.param(
            [],
            {
                "dataSource": {
                    "kind": "VolumeSnapshot",
                    "apiGroup": "snapshot.storage.k8s.io",
                    "name": "s",
                }
            },
            "data source of kind VolumeSnapshot.snapshot.storage.k8s.io is not supported",
            id="a snapshot",
        ),
    ],
)
def test_each_refused_source_gets_an_event_naming_why_and_no_volume(
    harness: Harness, objects: list[dict[str, Any]], spec: dict[str, Any], reason: str
) -> None:
    for obj in objects:
        harness.cluster.add(obj)
    harness.cluster.add(claim(**spec))
    with pytest.raises(RetryLaterError):
        harness.reconciler.sync(KEY)
    [message] = harness.failures()
    assert reason in message
    assert PV not in harness.cluster.volumes
    assert harness.backend.cloned == []  # type: ignore[attr-defined]
    assert "Provisioning" not in harness.cluster.reasons()


def test_a_backend_that_cannot_clone_refuses_clones() -> None:
    made = Harness(FakeBackend())
    made.cluster.add(_bound_source())
    made.cluster.add(volume(SOURCE_PV, phase="Bound"))
    made.cluster.add(claim(**_source_ref()))
    with pytest.raises(RetryLaterError):
        made.reconciler.sync(KEY)
    assert made.failures() == [
        'failed to provision volume with StorageClass "nfs": this storage backend cannot clone '
        "volumes"
    ]
    assert made.backend.provisioned == []


def test_the_copy_runs_off_the_worker_and_the_claim_is_requeued_when_it_ends(
    harness: Harness,
) -> None:
    harness.cluster.add(_bound_source())
    harness.cluster.add(volume(SOURCE_PV, phase="Bound"))
    harness.cluster.add(claim(**_source_ref()))
    # The worker returns while the copy waits: no volume yet, nothing to retry with backoff.
    harness.reconciler.sync(KEY)
    harness.reconciler.sync(KEY)
    assert harness.cluster.reasons() == ["Provisioning", "CloneStarted"]
    assert PV not in harness.cluster.volumes
    assert harness.requeued == []
    harness.backend.release.set()  # type: ignore[attr-defined]
    harness.wait_requeued()
    assert harness.requeued == [KEY]
    harness.reconciler.sync(KEY)
    assert harness.backend.cloned == [(PV, SOURCE_PV)]  # type: ignore[attr-defined]
    saved = harness.cluster.volumes[PV]
    assert saved["spec"]["claimRef"]["name"] == "data"
    assert harness.cluster.reasons()[-1] == "ProvisioningSucceeded"
    assert not harness.pool.is_known(PV)


def test_a_failed_copy_is_an_event_and_the_next_sync_copies_again(harness: Harness) -> None:
    backend: CloningBackend = harness.backend  # type: ignore[assignment]
    backend.clone_error = BackendError("no space left on the export")
    harness.cluster.add(_bound_source())
    harness.cluster.add(volume(SOURCE_PV, phase="Bound"))
    harness.cluster.add(claim(**_source_ref()))
    harness.reconciler.sync(KEY)
    backend.release.set()
    harness.wait_requeued()
    with pytest.raises(BackendError):
        harness.reconciler.sync(KEY)
    assert "no space left on the export" in harness.failures()[0]
    backend.clone_error = None
    backend.release.clear()
    # Started again, and counted as a retry: a copy that keeps failing backs off.
    with pytest.raises(RetryLaterError, match="started again"):
        harness.reconciler.sync(KEY)
    backend.release.set()
    harness.wait_requeued(2)
    harness.reconciler.sync(KEY)
    assert PV in harness.cluster.volumes
    assert harness.cluster.reasons().count("CloneStarted") == 2


def test_progress_is_reported_in_events_and_the_copied_bytes_metric() -> None:
    backend = CloningBackend(progress_steps=(CloneProgress(10, 4096), CloneProgress(20, 8192)))
    made = Harness(backend)
    made.cluster.add(_bound_source())
    made.cluster.add(volume(SOURCE_PV, phase="Bound"))
    made.cluster.add(claim(**_source_ref()))
    labels = {"class": "nfs"}
    before = REGISTRY.get_sample_value("nfs_provisioner_clone_copied_bytes_total", labels) or 0.0
    backend.release.set()
    made.reconciler.sync(KEY)
    made.wait_requeued()
    made.pool.shutdown()
    progress = [e.message for e in made.cluster.events if e.reason == "CloneProgress"]
    assert progress == [
        "copied 10 entries (4096 bytes) so far",
        "copied 20 entries (8192 bytes) so far",
    ]
    after = REGISTRY.get_sample_value("nfs_provisioner_clone_copied_bytes_total", labels)
    assert after == before + 8192


def test_copies_are_bounded_by_the_pool_and_never_take_a_worker() -> None:
    backend = CloningBackend()
    made = Harness(backend, workers=1)
    made.cluster.add(_bound_source())
    made.cluster.add(volume(SOURCE_PV, phase="Bound"))
    lock = threading.Lock()
    now = [0]
    running: list[int] = []
    original = backend.clone

    def counting(*args: Any) -> dict[str, Any]:
        with lock:
            now[0] += 1
            running.append(now[0])
        try:
            return original(*args)
        finally:
            with lock:
                now[0] -= 1

    backend.clone = counting  # type: ignore[method-assign]
    keys = []
    for index in range(3):
        made.cluster.add(claim(f"data{index}", uid=f"uid-{index}", **_source_ref()))
        keys.append(f"ns/data{index}")
    for key in keys:
        made.reconciler.sync(key)  # each returns at once although no copy can finish
    # A plain claim is provisioned meanwhile by the same reconciler.
    made.cluster.add(claim("plain", uid="uid-plain"))
    made.reconciler.sync("ns/plain")
    assert "pvc-uid-plain" in made.cluster.volumes
    backend.release.set()
    made.wait_requeued(3)
    assert running == [1, 1, 1]  # one copy at a time: the pool has one thread
    for key in keys:
        made.reconciler.sync(key)
    assert sorted(name for name, _ in backend.cloned) == ["pvc-uid-0", "pvc-uid-1", "pvc-uid-2"]
    made.pool.shutdown()


def test_a_forgotten_clone_is_not_handed_to_a_later_claim(harness: Harness) -> None:
    harness.cluster.add(_bound_source())
    harness.cluster.add(volume(SOURCE_PV, phase="Bound"))
    harness.cluster.add(claim(**_source_ref()))
    harness.reconciler.sync(KEY)
    harness.pool.forget(PV)  # the claim was deleted while its copy ran
    assert not harness.pool.is_known(PV)


def test_a_stopping_provisioner_cancels_running_copies() -> None:
    backend = CloningBackend(progress_steps=(CloneProgress(1, 1),))
    made = Harness(backend)
    made.reconciler.stop.set()
    assert made.reconciler.clones is not None
    made.cluster.add(_bound_source())
    made.cluster.add(volume(SOURCE_PV, phase="Bound"))
    made.cluster.add(claim(**_source_ref()))
    # The copy is cancelled at its first report, maybe before the first sync looks at it.
    with pytest.raises(CloneCancelledError):
        made.reconciler.sync(KEY)
        made.wait_requeued()
        made.reconciler.sync(KEY)
    assert backend.cloned == []
    made.pool.shutdown()
