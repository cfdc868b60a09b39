"""Which Pending claims adoption moves, and what the re-created claim keeps."""

from __future__ import annotations

from typing import Any

import pytest

from nfs_provisioner.commands.claims import (
    ANN_BACKUP_TARGET,
    Action,
    ClusterView,
    assigns_default_retroactively,
    claim_manifest,
    class_label,
    decide,
    default_class_names,
    users_of,
)

NFS = "nfs"


def _class(
    name: str, provisioner: str = "cluster.local/nfs", *, default: bool = False, created: str = ""
) -> dict[str, Any]:
    annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
    return {
        "metadata": {"name": name, "annotations": annotations, "creationTimestamp": created},
        "provisioner": provisioner,
    }


def _classes(*classes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["metadata"]["name"]: c for c in classes}


UNSET = object()


def _claim(storage_class: object = "", *, phase: str = "Pending", **spec: Any) -> dict[str, Any]:
    claim: dict[str, Any] = {
        "metadata": {"name": "minio-pvc", "namespace": "kubeflow", "uid": "u1"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "20Gi"}},
            **spec,
        },
        "status": {"phase": phase},
    }
    if storage_class is not UNSET:
        claim["spec"]["storageClassName"] = storage_class
    return claim


def _pod(name: str, claim: str = "minio-pvc", *, node: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
    }
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name, "namespace": "kubeflow"}, "spec": spec}


NEW_CLUSTER = ClusterView(
    _classes(
        _class(NFS, default=True),
        _class("local", "kubernetes.io/no-provisioner"),
        _class("ceph", "rbd.csi.ceph.com"),
    ),
    retroactive_default=True,
)


@pytest.mark.parametrize(
    ("storage_class", "reason"),
    [
        ("", 'class "": only pre-made volumes'),
        ("gone", "class gone does not exist"),
        ("local", "class local has no provisioner"),
    ],
)
def test_claims_nothing_will_serve_are_recreated(storage_class: str, reason: str) -> None:
    decision = decide(_claim(storage_class), NEW_CLUSTER, NFS, (), [])
    assert decision is not None
    assert (decision.action, decision.reason, decision.new_class) == (Action.RECREATE, reason, NFS)


def test_claim_of_a_working_class_is_left_alone_unless_named_with_from_class() -> None:
    assert decide(_claim("ceph"), NEW_CLUSTER, NFS, (), []) is None
    decision = decide(_claim("ceph"), NEW_CLUSTER, NFS, ("ceph",), [])
    assert decision is not None
    assert decision.action is Action.RECREATE


@pytest.mark.parametrize(
    "claim",
    [
        _claim("", phase="Bound"),
        _claim("", phase="Lost"),
        _claim("", volumeName="pv-static"),
        {**_claim(""), "metadata": {"name": "x", "namespace": "y", "deletionTimestamp": "now"}},
    ],
    ids=["bound", "lost", "volume-name-set", "being-deleted"],
)
def test_bound_or_deleted_claims_are_never_candidates(claim: dict[str, Any]) -> None:
    assert decide(claim, NEW_CLUSTER, NFS, ("",), []) is None


def test_unset_class_is_left_to_the_cluster_when_it_assigns_the_default() -> None:
    decision = decide(_claim(UNSET), NEW_CLUSTER, NFS, (), [])
    assert decision is not None
    assert (decision.action, decision.new_class) == (Action.CLUSTER, NFS)


def test_unset_class_gets_another_default_from_the_cluster_not_the_target() -> None:
    view = ClusterView(_classes(_class("ceph", default=True), _class(NFS)), True)
    decision = decide(_claim(UNSET), view, NFS, (), [])
    assert decision is not None
    assert (decision.action, decision.new_class) == (Action.CLUSTER, "ceph")
    assert "--from-class ceph" in decision.reason


def test_unset_class_without_a_default_is_set_in_place_on_new_clusters() -> None:
    view = ClusterView(_classes(_class(NFS)), retroactive_default=True)
    decision = decide(_claim(UNSET), view, NFS, (), [])
    assert decision is not None
    assert decision.action is Action.SET_CLASS


def test_unset_class_is_recreated_on_clusters_before_1_28() -> None:
    view = ClusterView(NEW_CLUSTER.classes, retroactive_default=False)
    decision = decide(_claim(UNSET), view, NFS, (), [])
    assert decision is not None
    assert decision.action is Action.RECREATE


def test_beta_annotation_counts_as_a_class() -> None:
    claim = _claim(UNSET)
    claim["metadata"]["annotations"] = {"volume.beta.kubernetes.io/storage-class": ""}
    decision = decide(claim, NEW_CLUSTER, NFS, (), [])
    assert decision is not None
    assert decision.action is Action.RECREATE
    assert class_label(claim) == '""'
    assert class_label(_claim(UNSET)) == "<unset>"


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"selector": {"matchLabels": {"a": "b"}}}, "spec.selector"),
        ({"volumeMode": "Block"}, "volumeMode Block"),
    ],
)
def test_claims_a_provisioner_cannot_serve_are_skipped(spec: dict[str, Any], reason: str) -> None:
    decision = decide(_claim("", **spec), NEW_CLUSTER, NFS, (), [])
    assert decision is not None
    assert decision.action is Action.SKIP
    assert reason in decision.reason


def test_claim_used_by_a_scheduled_pod_is_not_recreated() -> None:
    users = [_pod("minio-0", node="node-1"), _pod("minio-1")]
    decision = decide(_claim(""), NEW_CLUSTER, NFS, (), users)
    assert decision is not None
    assert decision.action is Action.SKIP
    assert decision.reason == "used by scheduled pod(s) minio-0"
    unscheduled = decide(_claim(""), NEW_CLUSTER, NFS, (), [_pod("minio-1")])
    assert unscheduled is not None
    assert unscheduled.action is Action.RECREATE


def test_users_are_pods_of_the_same_namespace_mounting_the_claim() -> None:
    other_namespace = _pod("elsewhere")
    other_namespace["metadata"]["namespace"] = "default"
    ephemeral = {
        "metadata": {"name": "minio", "namespace": "kubeflow"},
        "spec": {"volumes": [{"name": "pvc", "ephemeral": {"volumeClaimTemplate": {}}}]},
    }
    pods = [_pod("uses"), _pod("other", claim="mysql"), other_namespace, ephemeral]
    assert [p["metadata"]["name"] for p in users_of(_claim(""), pods)] == ["uses", "minio"]


def test_default_class_is_the_newest_of_several() -> None:
    classes = _classes(
        _class("old", default=True, created="2024-01-01T00:00:00Z"),
        _class("new", default=True, created="2025-01-01T00:00:00Z"),
        _class("plain", created="2026-01-01T00:00:00Z"),
    )
    beta = _class("beta", created="2023-01-01T00:00:00Z")
    beta["metadata"]["annotations"] = {"storageclass.beta.kubernetes.io/is-default-class": "true"}
    classes["beta"] = beta
    assert default_class_names(classes) == ["new", "old", "beta"]
    assert ClusterView(classes, True).default_class == "new"


@pytest.mark.parametrize(
    ("version", "expected"),
    [((1, 27), False), ((1, 28), True), ((1, 36), True), ((2, 0), True), (None, True)],
)
def test_retroactive_default_from_1_28(version: tuple[int, int] | None, expected: bool) -> None:
    assert assigns_default_retroactively(version) is expected


def test_manifest_keeps_the_request_and_drops_server_state() -> None:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": "katib-mysql",
            "namespace": "kubeflow",
            "uid": "u1",
            "resourceVersion": "42",
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "generation": 1,
            "finalizers": ["kubernetes.io/pvc-protection"],
            "managedFields": [{"manager": "kubectl"}],
            "labels": {"app": "katib"},
            "ownerReferences": [{"kind": "Pod", "name": "p", "uid": "p1", "controller": True}],
            "annotations": {
                "team": "ml",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
                "pv.kubernetes.io/bind-completed": "yes",
                "pv.kubernetes.io/bound-by-controller": "yes",
                "volume.kubernetes.io/storage-provisioner": "old",
                "volume.beta.kubernetes.io/storage-provisioner": "old",
                "volume.kubernetes.io/selected-node": "node-1",
                "volume.beta.kubernetes.io/storage-class": "",
                ANN_BACKUP_TARGET: NFS,
            },
        },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "10Gi"}},
            "storageClassName": "",
            "volumeMode": "Filesystem",
            "volumeName": "",
            "dataSource": {"kind": "PersistentVolumeClaim", "name": "seed"},
            "dataSourceRef": {"kind": "PersistentVolumeClaim", "name": "seed"},
        },
        "status": {"phase": "Pending"},
    }
    assert claim_manifest(claim, NFS) == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": "katib-mysql",
            "namespace": "kubeflow",
            "labels": {"app": "katib"},
            "annotations": {"team": "ml"},
            "ownerReferences": [{"kind": "Pod", "name": "p", "uid": "p1", "controller": True}],
        },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "10Gi"}},
            "storageClassName": NFS,
            "volumeMode": "Filesystem",
            "dataSource": {"kind": "PersistentVolumeClaim", "name": "seed"},
            "dataSourceRef": {"kind": "PersistentVolumeClaim", "name": "seed"},
        },
    }


def test_manifest_does_not_share_state_with_the_claim() -> None:
    claim = _claim("")
    manifest = claim_manifest(claim, NFS)
    manifest["spec"]["resources"]["requests"]["storage"] = "1Gi"
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert "labels" not in manifest["metadata"]
    assert "annotations" not in manifest["metadata"]
