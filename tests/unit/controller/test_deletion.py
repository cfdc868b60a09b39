"""The volume reconciler's decision table, through the fake cluster (no API server)."""

from __future__ import annotations

from typing import Any

import pytest

from nfs_provisioner.controller.deletion import VolumeReconciler
from nfs_provisioner.controller.settings import ControllerSettings
from nfs_provisioner.kube import ApiError
from nfs_provisioner.storage import BackendError, DeleteOutcome
from tests.unit.controller.fakes import (
    PROVISIONER,
    FakeBackend,
    FakeCluster,
    storage_class,
    volume,
)

PV = "pvc-1"


def _reconcile(cluster: FakeCluster, backend: FakeBackend) -> None:
    settings = ControllerSettings(provisioner_name=PROVISIONER)
    VolumeReconciler(cluster, backend, settings).sync(PV)


@pytest.fixture
def cluster() -> FakeCluster:
    fake = FakeCluster()
    fake.add(storage_class())
    return fake


@pytest.mark.parametrize(
    "kept",
    [
        pytest.param(None, id="not in the cache"),
        pytest.param(volume(PV, phase="Bound"), id="still bound"),
        pytest.param(volume(PV, phase="Available"), id="available"),
        pytest.param(volume(PV, policy="Retain"), id="reclaim policy Retain"),
        pytest.param(volume(PV, provisioned_by="other.io/nfs"), id="another provisioner's"),
        pytest.param(volume(PV, deletionTimestamp="now"), id="being deleted"),
    ],
)
def test_volumes_that_are_not_ours_to_delete_are_kept(
    cluster: FakeCluster, kept: dict[str, Any] | None
) -> None:
    if kept is not None:
        cluster.add(kept)
    backend = FakeBackend()
    _reconcile(cluster, backend)
    assert (backend.deleted, cluster.calls, cluster.events) == ([], [], [])


def test_the_api_server_has_the_last_word(cluster: FakeCluster) -> None:
    """The cache says Released; the re-read says it was bound again, or is gone."""
    cluster.add(volume(PV))
    backend = FakeBackend()
    reread = volume(PV, phase="Bound")
    original_get = cluster.get_volume
    cluster.get_volume = lambda name: reread  # type: ignore[method-assign]
    _reconcile(cluster, backend)
    cluster.get_volume = original_get  # type: ignore[method-assign]
    cluster.failures["get_volume"] = [ApiError(404, "NotFound", "gone")]
    _reconcile(cluster, backend)
    assert backend.deleted == [] and cluster.events == []


def test_a_failing_re_read_is_retried(cluster: FakeCluster) -> None:
    cluster.add(volume(PV))
    cluster.failures["get_volume"] = [ApiError(500, "InternalError", "etcd")]
    with pytest.raises(ApiError):
        _reconcile(cluster, FakeBackend())


@pytest.mark.parametrize(
    "outcome", [DeleteOutcome.REMOVED, DeleteOutcome.ARCHIVED, DeleteOutcome.RETAINED]
)
def test_a_released_volume_loses_its_storage_then_its_pv(
    cluster: FakeCluster, outcome: DeleteOutcome
) -> None:
    cluster.add(volume(PV))
    backend = FakeBackend(delete_outcome=outcome)
    _reconcile(cluster, backend)
    assert backend.deleted == [PV]
    assert cluster.calls == ["get_volume", "delete_volume"]
    assert PV not in cluster.volumes
    assert cluster.events == []


@pytest.mark.parametrize(
    ("outcome", "event_type", "reason"),
    [
        (DeleteOutcome.SHARED, "Normal", "VolumeStorageKept"),
        (DeleteOutcome.ALREADY_GONE, "Warning", "VolumeStorageMissing"),
    ],
)
def test_kept_or_missing_storage_is_reported(
    cluster: FakeCluster, outcome: DeleteOutcome, event_type: str, reason: str
) -> None:
    cluster.add(volume(PV))
    _reconcile(cluster, FakeBackend(delete_outcome=outcome))
    assert PV not in cluster.volumes
    [event] = cluster.events
    assert (event.involved, event.type, event.reason) == (PV, event_type, reason)


def test_a_backend_refusal_keeps_the_pv_and_says_why(cluster: FakeCluster) -> None:
    cluster.add(volume(PV))
    backend = FakeBackend(delete_error=BackendError("holds other volumes"))
    with pytest.raises(BackendError):
        _reconcile(cluster, backend)
    assert PV in cluster.volumes
    [event] = cluster.events
    assert (event.type, event.reason, event.message) == (
        "Warning",
        "VolumeFailedDelete",
        "holds other volumes",
    )


def test_a_pv_that_vanished_meanwhile_is_fine(cluster: FakeCluster) -> None:
    cluster.add(volume(PV))
    cluster.failures["delete_volume"] = [ApiError(404, "NotFound", "gone")]
    _reconcile(cluster, FakeBackend())
    assert cluster.events == []


def test_a_pv_that_cannot_be_deleted_is_retried_with_an_event(cluster: FakeCluster) -> None:
    cluster.add(volume(PV))
    cluster.failures["delete_volume"] = [ApiError(500, "InternalError", "etcd")]
    with pytest.raises(ApiError):
        _reconcile(cluster, FakeBackend())
    [event] = cluster.events
    assert event.reason == "VolumeFailedDelete"
    assert event.message.startswith(f"failed to delete PersistentVolume {PV}")


def test_the_backend_gets_the_class_or_none_when_it_is_gone() -> None:
    seen: list[dict[str, Any] | None] = []

    class Recording(FakeBackend):
        def delete(self, pv: Any, storage_class: Any) -> DeleteOutcome:
            seen.append(storage_class)
            return DeleteOutcome.ARCHIVED

    cluster = FakeCluster()
    cluster.add(storage_class(parameters={"onDelete": "delete"}))
    cluster.add(volume(PV))
    _reconcile(cluster, Recording())
    cluster.add(volume(PV, class_name="deleted-class"))
    _reconcile(cluster, Recording())
    assert seen[0] is not None and seen[0]["parameters"] == {"onDelete": "delete"}
    assert seen[1] is None
