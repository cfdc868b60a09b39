"""The chart rendered with `helm template` (no cluster): defaults, the install line, checks."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.helm import (
    CHART,
    SEED_ARGS,
    SEED_RELEASE,
    SEED_SERVER,
    Rendered,
    helm,
    render,
    render_error,
    values_file,
)
from tests.chart.values import EVERYTHING, MINIMAL, merged

# What the provisioner calls (nfs_provisioner/kube, controller): nothing more may be granted.
CLUSTER_RULES = [
    {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["list", "watch"]},
    {
        "apiGroups": [""],
        "resources": ["persistentvolumes"],
        "verbs": ["get", "list", "watch", "create", "delete"],
    },
    {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["list", "watch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
]


def _lease_rules(lease: str) -> list[dict[str, Any]]:
    return [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": [lease],
            "verbs": ["get", "update"],
        },
    ]


@pytest.mark.parametrize("values", [MINIMAL, EVERYTHING], ids=["minimal", "everything"])
def test_helm_lint_strict(values: dict[str, Any], tmp_path: Path) -> None:
    result = helm("lint", str(CHART), "--strict", "--values", str(values_file(values, tmp_path)))
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_default_values_ask_for_the_nfs_server() -> None:
    # Upstream renders `server: ` and the API server refuses the Deployment; we say what to set.
    message = render_error()
    assert "nfs.server is required" in message
    assert "--set nfs.server=" in message


def test_defaults() -> None:
    rendered = render("nfs-provisioner", MINIMAL)
    assert rendered.kinds() == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
        "StorageClass",
    ]
    deployment = rendered.deployment
    assert deployment["metadata"]["name"] == "nfs-provisioner"
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert deployment["spec"]["selector"]["matchLabels"] == {
        "app": "nfs-provisioner",
        "release": "nfs-provisioner",
    }
    pod = rendered.pod
    assert pod["serviceAccountName"] == "nfs-provisioner"
    for absent in ("priorityClassName", "imagePullSecrets", "securityContext", "nodeSelector"):
        assert absent not in pod
    assert pod["volumes"] == [
        {
            "name": "nfs-subdir-external-provisioner-root",
            "nfs": {"server": "10.0.0.5", "path": "/nfs-storage"},
        }
    ]
    container = rendered.container
    assert container["image"] == "ghcr.io/nfs-provisioner/nfs-provisioner:0.1.0"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["volumeMounts"] == [
        {"name": "nfs-subdir-external-provisioner-root", "mountPath": "/persistentvolumes"}
    ]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert rendered.env == {
        "PROVISIONER_NAME": "cluster.local/nfs-provisioner",
        "NFS_SERVER": "10.0.0.5",
        "NFS_PATH": "/nfs-storage",
        "ENABLE_LEADER_ELECTION": "true",
        "POD_NAMESPACE": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        "NFS_MOUNT_PATH": "/persistentvolumes",
        "NFS_PROVISIONER_METRICS_ADDRESS": "0.0.0.0:8080",
        "NFS_PROVISIONER_LOG_FORMAT": "json",
        "NFS_PROVISIONER_LOG_LEVEL": "info",
        "NFS_PROVISIONER_WORKERS": "16",
        "NFS_PROVISIONER_KUBE_API_QPS": "200",
        "NFS_PROVISIONER_KUBE_API_BURST": "400",
    }
    storage_class = rendered.one("StorageClass")
    assert storage_class["metadata"]["name"] == "nfs-client"
    assert "annotations" not in storage_class["metadata"]
    assert storage_class["provisioner"] == "cluster.local/nfs-provisioner"
    assert storage_class["allowVolumeExpansion"] is True
    assert storage_class["reclaimPolicy"] == "Delete"
    assert storage_class["volumeBindingMode"] == "Immediate"
    assert storage_class["parameters"] == {"archiveOnDelete": "true"}
    assert "mountOptions" not in storage_class
    service = rendered.one("Service")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}
    ]


def test_seed_line_gives_a_default_class_served_by_the_provisioner() -> None:
    rendered = render(SEED_RELEASE, args=SEED_ARGS)
    storage_class = rendered.one("StorageClass")
    assert storage_class["metadata"]["name"] == "nfs"
    assert storage_class["metadata"]["annotations"] == {
        "storageclass.kubernetes.io/is-default-class": "true"
    }
    # The name stable/nfs-client-provisioner gave this release: its volumes stay ours.
    assert storage_class["provisioner"] == "cluster.local/nfs-client-provisioner"
    assert rendered.provisioner_name == storage_class["provisioner"]
    assert rendered.env["NFS_SERVER"] == SEED_SERVER
    assert rendered.env["NFS_PATH"] == "/exported/path"
    assert rendered.pod["volumes"][0]["nfs"] == {"server": SEED_SERVER, "path": "/exported/path"}
    assert rendered.deployment["metadata"]["name"] == "nfs-client-provisioner"


@pytest.mark.parametrize(
    ("release", "values", "provisioner"),
    [
        # The upstream charts' default provisioner names for their usual release names.
        ("nfs-client-provisioner", {}, "cluster.local/nfs-client-provisioner"),
        ("nfs-subdir-external-provisioner", {}, "cluster.local/nfs-subdir-external-provisioner"),
        ("my-nfs-client-provisioner", {}, "cluster.local/my-nfs-client-provisioner"),
        # Any other release: upstream appended its chart name; nameOverride reproduces it.
        ("storage", {}, "cluster.local/storage-nfs-provisioner"),
        (
            "storage",
            {"nameOverride": "nfs-client-provisioner"},
            "cluster.local/storage-nfs-client-provisioner",
        ),
        (
            "storage",
            {"nameOverride": "nfs-subdir-external-provisioner"},
            "cluster.local/storage-nfs-subdir-external-provisioner",
        ),
        ("storage", {"storageClass": {"provisionerName": "k8s-sigs.io/nfs"}}, "k8s-sigs.io/nfs"),
    ],
)
def test_provisioner_name_is_upstreams(
    release: str, values: dict[str, Any], provisioner: str
) -> None:
    rendered = render(release, merged(MINIMAL, values))
    assert rendered.provisioner_name == provisioner
    assert rendered.one("StorageClass")["provisioner"] == provisioner


def test_rbac_is_exactly_what_the_provisioner_calls() -> None:
    rendered = render("nfs-client-provisioner", MINIMAL, namespace="storage")
    assert rendered.one("ClusterRole")["rules"] == CLUSTER_RULES
    role = rendered.one("Role")
    assert role["metadata"]["namespace"] == "storage"
    assert role["rules"] == _lease_rules("cluster.local-nfs-client-provisioner")
    subject = {"kind": "ServiceAccount", "name": "nfs-client-provisioner", "namespace": "storage"}
    cluster_binding, binding = rendered.one("ClusterRoleBinding"), rendered.one("RoleBinding")
    assert cluster_binding["subjects"] == [subject]
    assert cluster_binding["roleRef"]["name"] == rendered.one("ClusterRole")["metadata"]["name"]
    assert binding["subjects"] == [subject]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }


def test_long_release_names_stay_valid() -> None:
    release = "a-release-name-of-fifty-three-characters-exactly-abcd"
    assert len(release) == 53  # helm's own maximum
    rendered = render(release, MINIMAL)
    for obj in rendered:
        name = obj["metadata"]["name"]
        limit = 63 if obj["kind"] in ("Service", "Deployment") else 253
        assert len(name) <= limit, (obj["kind"], name)
        for value in obj["metadata"]["labels"].values():
            assert len(value) <= 63, value


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicaCount": "two"}, "at '/replicaCount': got string, want integer"),
        ({"strategyType": "Rolling"}, "at '/strategyType': value must be one of"),
        ({"nfs": {"path": "exports"}}, "at '/nfs/path': 'exports' does not match pattern '^/'"),
        ({"nfs": {"mountOptions": "nfsvers=4.1"}}, "at '/nfs/mountOptions': got string, want"),
        ({"storageClass": {"defaultClass": "yes"}}, "at '/storageClass/defaultClass'"),
        ({"storageClass": {"archiveOnDelete": "maybe"}}, "at '/storageClass/archiveOnDelete'"),
        ({"storageClass": {"onDelete": "Delete"}}, "at '/storageClass/onDelete'"),
        ({"storageClass": {"reclaimPolicy": "Recycle"}}, "at '/storageClass/reclaimPolicy'"),
        ({"storageClass": {"annotations": {"a": 1}}}, "at '/storageClass/annotations/a'"),
        ({"leaderElection": {"enabled": "no"}}, "at '/leaderElection/enabled'"),
        ({"labels": ["team=storage"]}, "at '/labels': got array, want"),
        (
            {"podDisruptionBudget": {"maxUnavailable": "half"}},
            "/podDisruptionBudget/maxUnavailable",
        ),
        ({"metrics": {"port": 70000}}, "at '/metrics/port'"),
        ({"log": {"format": "text"}}, "at '/log/format'"),
        ({"workers": 0}, "at '/workers'"),
        ({"kubeApi": {"qps": "fast"}}, "at '/kubeApi/qps': got string, want number"),
    ],
)
def test_schema_refuses_wrong_types(values: dict[str, Any], message: str) -> None:
    error = render_error(merged(MINIMAL, values))
    assert "values don't meet the specifications of the schema" in error
    assert message in error


def test_archive_on_delete_accepts_go_spellings() -> None:
    # A values file copied from a StorageClass may quote the boolean; the class gets it verbatim.
    rendered = render(values=merged(MINIMAL, {"storageClass": {"archiveOnDelete": "false"}}))
    assert rendered.one("StorageClass")["parameters"] == {"archiveOnDelete": "false"}


def _notes(tmp_path: Path, release: str, values: dict[str, Any], namespace: str) -> str:
    """NOTES.txt as `helm install` prints it.

    `helm template` skips NOTES.txt, so a copy of the chart gets one more template that renders
    the same text (NOTES.txt only includes "nfs-provisioner.notes") into a YAML document.
    """
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "notes-under-test.yaml").write_text(
        'notes: {{ include "nfs-provisioner.notes" . | toJson }}\n'
    )
    result = helm(
        "template",
        release,
        str(chart),
        "--namespace",
        namespace,
        "--values",
        str(values_file(values, tmp_path)),
        "--show-only",
        "templates/notes-under-test.yaml",
    )
    notes = yaml.safe_load(result.stdout)["notes"]
    assert (CHART / "templates" / "NOTES.txt").read_text().count("nfs-provisioner.notes") == 1
    return str(notes)


def test_notes_tell_how_to_check_the_class(tmp_path: Path) -> None:
    values = merged(
        MINIMAL, {"storageClass": {"name": "nfs", "defaultClass": True}, "nfs": {"path": "/x"}}
    )
    notes = _notes(tmp_path, "nfs-client-provisioner", values, "storage")
    assert 'provisioner "cluster.local/nfs-client-provisioner"' in notes
    assert 'StorageClass "nfs" is the cluster\'s default class' in notes
    assert "kubectl -n storage rollout status deployment/nfs-client-provisioner" in notes
    assert "kubectl get storageclass" in notes
    assert '"storageClassName": "nfs"' in notes
    assert "kubectl -n storage get pvc nfs-provisioner-check" in notes
    assert "/x now holds the directory storage-nfs-provisioner-check-<volume name>" in notes
    assert "renames its directory to archived-<directory>" in notes
    assert "PodSecurityPolicy" not in notes


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"podSecurityPolicy": {"enabled": True}}, "PodSecurityPolicy was removed in Kubernetes"),
        ({"replicaCount": 2, "leaderElection": {"enabled": False}}, "every replica"),
        ({"rbac": {"create": False}}, "bind the ServiceAccount"),
        ({"storageClass": {"create": False}}, "No StorageClass was created"),
        ({"storageClass": {"onDelete": "retain"}}, "deletes the volume and keeps its directory"),
        ({"storageClass": {"archiveOnDelete": False}}, "removes its directory"),
        ({"storageClass": {"reclaimPolicy": "Retain"}}, "keeps the volume and its directory"),
    ],
)
def test_notes_explain_the_values(tmp_path: Path, values: dict[str, Any], expected: str) -> None:
    assert expected in _notes(tmp_path, "r", merged(MINIMAL, values), "default")


def _kinds_with_release_namespace(rendered: Rendered) -> set[str]:
    return {obj["kind"] for obj in rendered if obj["metadata"].get("namespace") == "storage"}


def test_namespaced_objects_go_to_the_release_namespace() -> None:
    rendered = render("r", EVERYTHING, namespace="storage")
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass"}
    assert _kinds_with_release_namespace(rendered) == set(rendered.kinds()) - cluster_scoped
