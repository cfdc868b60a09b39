"""The resize reconciler's decision table, through the fake cluster (no API server)."""

from __future__ import annotations

from typing import Any

import pytest

from nfs_provisioner.controller.expansion import ResizeReconciler
from nfs_provisioner.controller.settings import ControllerSettings, RetryLaterError
from nfs_provisioner.kube import ApiError
from nfs_provisioner.storage import BackendError
from tests.unit.controller.fakes import (
    PROVISIONER,
    ExpandingBackend,
    FakeBackend,
    FakeCluster,
    claim,
    storage_class,
    volume,
)

PV = "pvc-1"
UID = "0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9"


def _bound(request: str, recorded: str = "1Gi") -> dict[str, Any]:
    bound = claim(volumeName=PV)
    bound["spec"]["resources"] = {"requests": {"storage": request}}
    bound["status"] = {"phase": "Bound", "capacity": {"storage": recorded}}
    return bound


def _volume(capacity: str = "1Gi", **options: Any) -> dict[str, Any]:
    body = volume(PV, phase="Bound", **options)
    body["spec"]["capacity"] = {"storage": capacity}
    body["spec"]["claimRef"] = {"namespace": "ns", "name": "data", "uid": UID}
    return body


def _reconcile(cluster: FakeCluster, backend: FakeBackend) -> None:
    settings = ControllerSettings(provisioner_name=PROVISIONER)
    ResizeReconciler(cluster, backend, settings).sync("ns/data")


def _world(expandable: bool = True) -> FakeCluster:
    cluster = FakeCluster()
    cluster.add(storage_class(allowVolumeExpansion=expandable))
    return cluster


@pytest.mark.parametrize(
    ("the_claim", "the_volume"),
    [
        pytest.param(None, _volume(), id="claim not in the cache"),
        pytest.param(_bound("1Gi"), _volume(), id="no resize asked"),
        pytest.param(_bound("2Gi"), None, id="volume not in the cache"),
        pytest.param(_bound("2Gi"), _volume(provisioned_by="other.io/nfs"), id="not ours"),
        pytest.param(
            _bound("2Gi"),
            {**_volume(), "spec": {**_volume()["spec"], "claimRef": {"uid": "other"}}},
            id="bound to another claim",
        ),
    ],
)
def test_resizes_that_are_not_ours_are_ignored(
    the_claim: dict[str, Any] | None, the_volume: dict[str, Any] | None
) -> None:
    cluster = _world()
    for obj in (the_claim, the_volume):
        if obj is not None:
            cluster.add(obj)
    backend = ExpandingBackend()
    _reconcile(cluster, backend)
    assert (backend.expanded, cluster.calls, cluster.events) == ([], [], [])


def test_a_grown_claim_is_expanded_and_recorded() -> None:
    cluster = _world()
    cluster.add(_bound("2Gi"))
    cluster.add(_volume())
    backend = ExpandingBackend()
    _reconcile(cluster, backend)
    assert backend.expanded == [(PV, "2Gi")]
    assert cluster.calls == ["patch_claim_status", "patch_volume", "patch_claim_status"]
    assert cluster.volumes[PV]["spec"]["capacity"] == {"storage": "2Gi"}
    assert cluster.claims["ns/data"]["status"]["capacity"] == {"storage": "2Gi"}
    assert cluster.reasons() == ["Resizing", "VolumeResizeSuccessful"]


def test_a_volume_that_grew_already_only_finishes_the_claim() -> None:
    cluster = _world()
    cluster.add(_bound("2Gi"))
    cluster.add(_volume("2Gi"))
    backend = ExpandingBackend()
    _reconcile(cluster, backend)
    assert backend.expanded == []
    assert cluster.calls == ["patch_claim_status"]
    assert cluster.reasons() == ["VolumeResizeSuccessful"]


@pytest.mark.parametrize(
    ("world", "the_volume", "backend", "message"),
    [
        pytest.param(
            _world(), _volume("3Gi"), ExpandingBackend(), "volumes cannot shrink", id="shrink"
        ),
        pytest.param(
            _world(expandable=False),
            _volume(),
            ExpandingBackend(),
            "does not allow volume expansion",
            id="class does not allow expansion",
        ),
        pytest.param(
            _world(), _volume(), FakeBackend(), "cannot expand volumes", id="backend cannot"
        ),
    ],
)
def test_refused_resizes_say_why_and_change_nothing(
    world: FakeCluster, the_volume: dict[str, Any], backend: FakeBackend, message: str
) -> None:
    world.add(_bound("2Gi"))
    world.add(the_volume)
    _reconcile(world, backend)
    assert world.calls == []
    [event] = world.events
    assert (event.type, event.reason) == ("Warning", "VolumeResizeFailed")
    assert message in event.message


def test_a_backend_failure_is_an_event_and_a_retry() -> None:
    cluster = _world()
    cluster.add(_bound("2Gi"))
    cluster.add(_volume())
    with pytest.raises(BackendError):
        _reconcile(cluster, ExpandingBackend(expand_error=BackendError("no space")))
    assert cluster.reasons() == ["Resizing", "VolumeResizeFailed"]


def test_a_claim_that_changed_meanwhile_is_retried_quietly() -> None:
    cluster = _world()
    cluster.add(_bound("2Gi"))
    cluster.add(_volume())
    cluster.failures["patch_claim_status"] = [ApiError(409, "Conflict", "changed")]
    with pytest.raises(RetryLaterError):
        _reconcile(cluster, ExpandingBackend())
    assert cluster.events == []


def test_an_api_failure_is_an_event_and_a_retry() -> None:
    cluster = _world()
    cluster.add(_bound("2Gi"))
    cluster.add(_volume())
    cluster.failures["patch_volume"] = [ApiError(500, "InternalError", "etcd")]
    with pytest.raises(ApiError):
        _reconcile(cluster, ExpandingBackend())
    assert cluster.reasons() == ["Resizing", "VolumeResizeFailed"]
