"""The claim reconciler's decision table, through the fake cluster (no API server)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from nfs_provisioner.controller.provisioning import ClaimReconciler
from nfs_provisioner.controller.settings import ControllerSettings, RetryLaterError
from nfs_provisioner.kube import ApiError
from nfs_provisioner.storage import BackendError
from tests.unit.controller.fakes import (
    PROVISIONER,
    FakeBackend,
    FakeCluster,
    claim,
    storage_class,
    volume,
)

PV = "pvc-0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9"
KEY = "ns/data"


def _reconcile(cluster: FakeCluster, backend: FakeBackend, **settings: Any) -> None:
    options = {"save_retry_delay": 0.0, **settings}
    ClaimReconciler(
        cluster,
        backend,
        ControllerSettings(provisioner_name=PROVISIONER, **options),
        stop=threading.Event(),
    ).sync(KEY)


@pytest.fixture
def cluster() -> FakeCluster:
    fake = FakeCluster()
    fake.add(storage_class())
    return fake


@pytest.mark.parametrize(
    "ignored",
    [
        pytest.param(None, id="not in the cache"),
        pytest.param(claim(provisioner=None), id="not assigned to any provisioner"),
        pytest.param(claim(provisioner="other.io/nfs"), id="another provisioner's"),
        pytest.param(claim(volumeName="pv-x"), id="already bound"),
        pytest.param(
            {**claim(), "metadata": {**claim()["metadata"], "deletionTimestamp": "now"}},
            id="being deleted",
        ),
    ],
)
def test_claims_that_are_not_ours_to_provision_are_ignored(
    cluster: FakeCluster, ignored: dict[str, Any] | None
) -> None:
    if ignored is not None:
        cluster.add(ignored)
    backend = FakeBackend()
    _reconcile(cluster, backend)
    assert (backend.provisioned, cluster.calls, cluster.events) == ([], [], [])


def test_a_claim_whose_pv_exists_is_not_provisioned_again(cluster: FakeCluster) -> None:
    cluster.add(claim())
    cluster.add(volume(PV, phase="Bound"))
    backend = FakeBackend()
    _reconcile(cluster, backend)
    assert (backend.provisioned, cluster.calls, cluster.events) == ([], [], [])


def test_a_class_not_in_the_cache_yet_is_retried_quietly() -> None:
    cluster = FakeCluster()
    cluster.add(claim())
    with pytest.raises(RetryLaterError, match="StorageClass 'nfs' not found"):
        _reconcile(cluster, FakeBackend())
    assert cluster.events == []


def test_a_class_of_another_provisioner_is_ignored() -> None:
    cluster = FakeCluster()
    cluster.add(storage_class(provisioner="other.io/nfs"))
    cluster.add(claim())
    _reconcile(cluster, backend := FakeBackend())
    assert (backend.provisioned, cluster.events) == ([], [])


def test_wait_for_first_consumer_waits_for_the_selected_node() -> None:
    cluster = FakeCluster()
    cluster.add(storage_class(volumeBindingMode="WaitForFirstConsumer"))
    cluster.add(claim())
    backend = FakeBackend()
    _reconcile(cluster, backend)
    assert backend.provisioned == []
    cluster.add(claim(annotations={"volume.kubernetes.io/selected-node": "node-1"}))
    _reconcile(cluster, backend)
    assert backend.provisioned == [PV]


def test_a_block_claim_fails_with_an_event_and_is_not_retried(cluster: FakeCluster) -> None:
    cluster.add(claim(volumeMode="Block"))
    backend = FakeBackend()
    _reconcile(cluster, backend)
    assert backend.provisioned == []
    [event] = cluster.events
    assert (event.type, event.reason) == ("Warning", "ProvisioningFailed")
    assert event.message == f"{PROVISIONER} does not support block volume provisioning"


def test_a_claim_is_provisioned_with_its_claim_ref_class_and_provisioner(
    cluster: FakeCluster,
) -> None:
    cluster.add(claim())
    backend = FakeBackend(reports=[("ReusingDirectory", "reused as it is")])
    _reconcile(cluster, backend)
    saved = cluster.volumes[PV]
    assert saved["metadata"]["annotations"] == {"pv.kubernetes.io/provisioned-by": PROVISIONER}
    assert saved["spec"]["storageClassName"] == "nfs"
    assert saved["spec"]["claimRef"] == {
        "kind": "PersistentVolumeClaim",
        "apiVersion": "v1",
        "namespace": "ns",
        "name": "data",
        "uid": PV.removeprefix("pvc-"),
        "resourceVersion": "7",
    }
    assert cluster.reasons() == ["Provisioning", "ReusingDirectory", "ProvisioningSucceeded"]
    assert cluster.events[-1].message == f"Successfully provisioned volume {PV}"
    assert (
        cluster.events[0].message
        == f'External provisioner is provisioning volume for claim "{KEY}"'
    )


def test_a_backend_failure_is_an_event_and_a_retry(cluster: FakeCluster) -> None:
    cluster.add(claim())
    backend = FakeBackend(provision_error=BackendError("export is full"))
    with pytest.raises(BackendError):
        _reconcile(cluster, backend)
    assert cluster.calls == []
    assert cluster.reasons() == ["Provisioning", "ProvisioningFailed"]
    assert cluster.events[-1].message == (
        'failed to provision volume with StorageClass "nfs": export is full'
    )


def test_a_pv_that_already_exists_on_the_server_counts_as_saved(cluster: FakeCluster) -> None:
    cluster.add(claim())
    cluster.failures["create_volume"] = [ApiError(409, "AlreadyExists", "exists")]
    _reconcile(cluster, FakeBackend())
    assert cluster.reasons() == ["Provisioning", "ProvisioningSucceeded"]


def test_a_transient_save_failure_is_retried_in_place(cluster: FakeCluster) -> None:
    cluster.add(claim())
    cluster.failures["create_volume"] = [ApiError(503, "ServiceUnavailable", "busy")]
    _reconcile(cluster, FakeBackend())
    assert cluster.calls == ["create_volume", "create_volume"]
    assert PV in cluster.volumes


def test_an_unreachable_api_server_keeps_the_storage_for_the_next_attempt(
    cluster: FakeCluster,
) -> None:
    cluster.add(claim())
    cluster.failures["create_volume"] = [ApiError(0, "", "connection refused")] * 3
    backend = FakeBackend()
    with pytest.raises(RetryLaterError):
        _reconcile(cluster, backend, save_attempts=3)
    assert backend.discarded == []
    assert cluster.events[-1].reason == "ProvisioningFailed"
    assert cluster.events[-1].message.endswith("; will retry")


def test_a_refused_pv_is_undone_and_retried(cluster: FakeCluster) -> None:
    cluster.add(claim())
    cluster.failures["create_volume"] = [ApiError(422, "Invalid", "bad volume")] * 2
    backend = FakeBackend()
    with pytest.raises(RetryLaterError):
        _reconcile(cluster, backend, save_attempts=2)
    assert backend.discarded == [PV]
    assert cluster.events[-1].message.endswith("Deleting the volume.")
    assert PV not in cluster.volumes


def test_a_refused_pv_whose_storage_cannot_be_undone_says_so(cluster: FakeCluster) -> None:
    cluster.add(claim())
    cluster.failures["create_volume"] = [ApiError(422, "Invalid", "bad volume")]
    backend = FakeBackend(discard_error=BackendError("read-only export"))
    with pytest.raises(RetryLaterError):
        _reconcile(cluster, backend, save_attempts=1)
    assert cluster.reasons()[-2:] == ["ProvisioningFailed", "ProvisioningCleanupFailed"]
    assert "read-only export" in cluster.events[-1].message
