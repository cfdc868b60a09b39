"""Volume expansion on the real control plane, where no expand controller or resizer runs.

kube-controller-manager's expand controller would only say "waiting for an external controller
to expand this PVC" for an NFS volume; the provisioner is that external controller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from nfs_provisioner.kube import ApiError
from tests.e2e.harness import Cluster, Provisioner, wait_for

MakeProvisioner = Callable[..., Provisioner]


def _resized(cluster: Cluster, namespace: str, name: str, size: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        claim = cluster.claim(namespace, name)
        status = (claim or {}).get("status") or {}
        if (status.get("capacity") or {}).get("storage") == size:
            return claim
        return None

    return wait_for(done, what=f"claim {namespace}/{name} to record {size}")


def _bound_expandable_claim(
    cluster: Cluster, namespace: str, provisioner: Provisioner
) -> tuple[str, str]:
    storage_class = cluster.create_storage_class(provisioner.name)
    cluster.api.merge_patch(
        f"/apis/storage.k8s.io/v1/storageclasses/{storage_class}", {"allowVolumeExpansion": True}
    )
    cluster.create_claim(namespace, "data", storage_class=storage_class, size="1Mi")
    return storage_class, cluster.wait_bound(namespace, "data")["spec"]["volumeName"]


def test_growing_a_claim_grows_its_volume_and_finishes_the_resize(
    cluster: Cluster, namespace: str, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner()
    _, pv_name = _bound_expandable_claim(cluster, namespace, provisioner)

    cluster.patch_claim(
        namespace, "data", {"spec": {"resources": {"requests": {"storage": "2Mi"}}}}
    )

    claim = _resized(cluster, namespace, "data", "2Mi")
    volume = cluster.volume(pv_name)
    assert volume is not None
    assert volume["spec"]["capacity"]["storage"] == "2Mi"
    status = claim["status"]
    assert not status.get("conditions")
    assert not status.get("allocatedResourceStatuses")
    assert status["allocatedResources"] == {"storage": "2Mi"}
    assert cluster.wait_event(namespace, "data", "Resizing")["type"] == "Normal"
    success = cluster.wait_event(namespace, "data", "VolumeResizeSuccessful")
    assert success["message"] == "Resize volume succeeded"
    wait_for(
        lambda: (
            provisioner.metric("nfs_provisioner_volume_resizes_total", {"result": "completed"}) == 1
        ),
        what="the resize to be counted",
    )

    # Below status.capacity the API server itself refuses: nothing reaches the provisioner.
    with pytest.raises(ApiError) as refused:
        cluster.patch_claim(
            namespace, "data", {"spec": {"resources": {"requests": {"storage": "1Mi"}}}}
        )
    assert refused.value.status == 422
    assert "status.capacity" in refused.value.message


def test_a_shrink_the_api_lets_through_is_refused_with_an_event(
    cluster: Cluster, namespace: str, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner()
    _, pv_name = _bound_expandable_claim(cluster, namespace, provisioner)
    # The PV grew behind the claim's back (an admin's edit, say): a request between the two is
    # valid for the API server, yet below what the volume has.
    cluster.api.merge_patch(
        f"/api/v1/persistentvolumes/{pv_name}", {"spec": {"capacity": {"storage": "10Mi"}}}
    )
    cluster.patch_claim(
        namespace, "data", {"spec": {"resources": {"requests": {"storage": "5Mi"}}}}
    )

    event = cluster.wait_event(namespace, "data", "VolumeResizeFailed")
    assert event["type"] == "Warning"
    assert "requests 5Mi, less than the volume's capacity of 10Mi" in event["message"]
    assert "volumes cannot shrink" in event["message"]
    volume = cluster.volume(pv_name)
    claim = cluster.claim(namespace, "data")
    assert volume is not None and claim is not None
    assert volume["spec"]["capacity"]["storage"] == "10Mi"
    assert claim["status"]["capacity"]["storage"] == "1Mi"

    # Asking for what the volume has completes the resize without touching the volume.
    cluster.patch_claim(
        namespace, "data", {"spec": {"resources": {"requests": {"storage": "10Mi"}}}}
    )
    _resized(cluster, namespace, "data", "10Mi")
