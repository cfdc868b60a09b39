"""Which claims and volumes the controller acts on, and what every PV carries."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nfs_provisioner.controller.predicates import (
    compact_claim,
    compact_volume,
    complete_volume,
    should_delete_volume,
)
from nfs_provisioner.objects import (
    ANN_PROVISIONED_BY,
    claim_class,
    is_claim_for,
    volume_name_for,
    waits_for_consumer,
)

NAME = "cluster.local/nfs"


def _claim(**overrides: Any) -> dict[str, Any]:
    claim: dict[str, Any] = {
        "metadata": {
            "name": "data",
            "namespace": "kubeflow",
            "uid": "1234",
            "resourceVersion": "77",
            "annotations": {"volume.kubernetes.io/storage-provisioner": NAME},
        },
        "spec": {"storageClassName": "nfs"},
    }
    for key, value in overrides.items():
        section, _, field = key.partition("__")
        claim[section][field] = value
    return claim


def test_claim_assigned_by_the_binder_is_ours() -> None:
    assert is_claim_for(_claim(), NAME)


def test_beta_annotation_is_enough() -> None:
    claim = _claim(metadata__annotations={"volume.beta.kubernetes.io/storage-provisioner": NAME})
    assert is_claim_for(claim, NAME)


@pytest.mark.parametrize(
    "claim",
    [
        _claim(spec__volumeName="pv-1"),
        _claim(metadata__deletionTimestamp="2026-01-01T00:00:00Z"),
        _claim(metadata__annotations={"volume.kubernetes.io/storage-provisioner": "other"}),
        _claim(metadata__annotations={}),
    ],
)
def test_claims_that_are_not_ours(claim: dict[str, Any]) -> None:
    assert not is_claim_for(claim, NAME)


def test_volume_name_is_deterministic() -> None:
    assert volume_name_for(_claim()) == "pvc-1234"


def test_class_from_spec_or_beta_annotation() -> None:
    assert claim_class(_claim()) == "nfs"
    legacy = _claim(
        spec__storageClassName=None,
        metadata__annotations={"volume.beta.kubernetes.io/storage-class": "old"},
    )
    del legacy["spec"]["storageClassName"]
    assert claim_class(legacy) == "old"


def test_wait_for_first_consumer() -> None:
    wffc = {"volumeBindingMode": "WaitForFirstConsumer"}
    assert waits_for_consumer(_claim(), wffc)
    selected = _claim(metadata__annotations={"volume.kubernetes.io/selected-node": "n1"})
    assert not waits_for_consumer(selected, wffc)
    assert not waits_for_consumer(_claim(), {"volumeBindingMode": "Immediate"})


def _volume(
    phase: str = "Released", policy: str = "Delete", by: str = NAME, deleting: bool = False
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": "pvc-1",
        "annotations": {"pv.kubernetes.io/provisioned-by": by},
    }
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": metadata,
        "spec": {"persistentVolumeReclaimPolicy": policy},
        "status": {"phase": phase},
    }


@pytest.mark.parametrize(
    ("volume", "expected"),
    [
        (_volume(), True),
        (_volume(phase="Bound"), False),
        (_volume(phase="Available"), False),
        (_volume(phase="Failed"), False),
        (_volume(policy="Retain"), False),
        (_volume(by="someone-else"), False),
        (_volume(deleting=True), False),
    ],
)
def test_deletion_decision_table(volume: dict[str, Any], expected: bool) -> None:
    assert should_delete_volume(volume, NAME) is expected


def test_complete_volume_adds_claim_ref_class_and_owner() -> None:
    body = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "pvc-1234"},
        "spec": {"nfs": {"server": "s", "path": "/p"}},
    }
    volume = complete_volume(body, _claim(), class_name="nfs", provisioner_name=NAME)
    assert volume["metadata"]["annotations"] == {"pv.kubernetes.io/provisioned-by": NAME}
    assert volume["spec"]["storageClassName"] == "nfs"
    assert volume["spec"]["claimRef"] == {
        "kind": "PersistentVolumeClaim",
        "apiVersion": "v1",
        "namespace": "kubeflow",
        "name": "data",
        "uid": "1234",
        "resourceVersion": "77",
    }
    assert volume["spec"]["nfs"] == {"server": "s", "path": "/p"}
    assert "claimRef" not in body["spec"]  # the backend's body is not modified


def bound_claim(name: str, size: str, *, conditions: bool = False) -> dict[str, Any]:
    # Decoded separately, as two watch events would be: nothing is shared to begin with.
    text = json.dumps(
        {
            "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}" * 4},
            "spec": {
                "volumeName": f"pvc-{name}",
                "storageClassName": "nfs",
                "resources": {"requests": {"storage": size}},
            },
            "status": {
                "phase": "Bound",
                "accessModes": ["ReadWriteMany"],
                "capacity": {"storage": size},
                **({"conditions": [{"type": "Resizing", "status": "True"}]} if conditions else {}),
            },
        }
    )
    decoded: dict[str, Any] = json.loads(text)
    return decoded


def test_cached_claims_share_their_sizes_and_status_but_keep_their_values() -> None:
    first = compact_claim(bound_claim("a", "1Gi"), "me")
    second = compact_claim(bound_claim("b", "1Gi"), "me")
    other = compact_claim(bound_claim("c", "2Gi"), "me")
    assert first["spec"]["resources"] is second["spec"]["resources"]
    assert first["status"] is second["status"]
    assert other["spec"]["resources"] == {"requests": {"storage": "2Gi"}}
    assert other["status"]["capacity"] == {"storage": "2Gi"}
    assert first["metadata"]["name"] == "a" and second["metadata"]["name"] == "b"
    assert first == {
        "kind": "PersistentVolumeClaim",
        "apiVersion": "v1",
        "metadata": {"name": "a", "namespace": "ns", "uid": "uid-a" * 4},
        "spec": {
            "volumeName": "pvc-a",
            "storageClassName": "nfs",
            "resources": {"requests": {"storage": "1Gi"}},
        },
        "status": {
            "phase": "Bound",
            "accessModes": ["ReadWriteMany"],
            "capacity": {"storage": "1Gi"},
        },
    }


def test_a_status_with_conditions_is_its_own() -> None:
    first = compact_claim(bound_claim("a", "1Gi", conditions=True), "me")
    second = compact_claim(bound_claim("b", "1Gi", conditions=True), "me")
    assert first["status"] is not second["status"]
    assert first["status"]["capacity"] is second["status"]["capacity"]


def test_equal_but_differently_typed_values_are_not_merged() -> None:
    volume = {
        "metadata": {"name": "pv", "annotations": {ANN_PROVISIONED_BY: "me"}},
        "spec": {"capacity": {"storage": 1}, "mountOptions": [True]},
    }
    other = {
        "metadata": {"name": "pv2", "annotations": {ANN_PROVISIONED_BY: "me"}},
        "spec": {"capacity": {"storage": True}, "mountOptions": [1]},
    }
    first, second = compact_volume(volume, "me"), compact_volume(other, "me")
    assert first["spec"]["capacity"]["storage"] == 1 and first["spec"]["mountOptions"] == [True]
    assert second["spec"]["capacity"]["storage"] is True
    assert second["spec"]["mountOptions"][0] == 1 and second["spec"]["mountOptions"][0] is not True


def test_stubs_are_packed_read_only_mappings_equal_to_the_dicts_they_replace() -> None:
    claim = compact_claim(bound_claim("a", "1Gi"), "me")
    volume = compact_volume(
        {
            "metadata": {"name": "other", "uid": "u", "resourceVersion": "7"},
            "spec": {"nfs": {"server": "s", "path": "/p"}, "capacity": {"storage": "1Gi"}},
        },
        "me",
    )
    assert volume == {
        "kind": "PersistentVolume",
        "apiVersion": "v1",
        "metadata": {"name": "other", "resourceVersion": "7"},
        "spec": {"nfs": {"server": "s", "path": "/p"}},
    }
    assert volume["spec"]["nfs"]["path"] == "/p"
    assert volume.get("status") is None and "status" not in volume
    assert claim["metadata"]["uid"] == "uid-a" * 4
    assert claim["metadata"].get("deletionTimestamp") is None
    assert dict(claim["spec"]) == {
        "volumeName": "pvc-a",
        "storageClassName": "nfs",
        "resources": {"requests": {"storage": "1Gi"}},
    }
    with pytest.raises(TypeError):
        claim["spec"]["volumeName"] = "changed"  # type: ignore[index]


def test_our_volumes_are_cached_whole_and_packed() -> None:
    volume = {
        "metadata": {
            "name": "pvc-1",
            "uid": "u",
            "resourceVersion": "3",
            "annotations": {ANN_PROVISIONED_BY: "me"},
            "managedFields": [{"manager": "x"}],
        },
        "spec": {
            "nfs": {"server": "s", "path": "/exports/ns-claim-pvc-1"},
            "capacity": {"storage": "1Gi"},
            "claimRef": {"namespace": "ns", "name": "claim", "uid": "c"},
            "persistentVolumeReclaimPolicy": "Delete",
        },
        "status": {"phase": "Bound", "lastPhaseTransitionTime": "2026-01-01T00:00:00Z"},
    }
    cached = compact_volume(volume, "me")
    assert cached["metadata"] == {
        "name": "pvc-1",
        "uid": "u",
        "resourceVersion": "3",
        "annotations": {ANN_PROVISIONED_BY: "me"},
    }
    assert cached["spec"] == volume["spec"]
    assert cached["spec"]["claimRef"]["uid"] == "c"
    assert cached["status"] == {"phase": "Bound"}
    assert should_delete_volume(cached, "me") is False
