"""The chart rendered with `helm template` (no cluster): defaults, the install line, checks."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from nfs_provisioner.nfs.params import parse_class_parameters
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
        "verbs": ["get", "list", "watch", "create", "delete", "patch"],
    },
    {"apiGroups": [""], "resources": ["persistentvolumeclaims/status"], "verbs": ["patch"]},
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
        "NFS_PROVISIONER_WORKERS": "64",
        "NFS_PROVISIONER_KUBE_API_QPS": "0",
        "NFS_PROVISIONER_KUBE_API_BURST": "400",
        "NFS_PROVISIONER_USAGE_SCAN_INTERVAL": "10m",
        "NFS_PROVISIONER_USAGE_SCAN_RATE": "2000",
        "NFS_PROVISIONER_ARCHIVE_SWEEP_INTERVAL": "1h",
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
        ({"replicaCount": "two"}, "at '/replicaCount': 'two' does not match pattern"),
        # Unknown keys are refused at every level (typos of upstream keys included).
        ({"storageClass": {"defualtClass": True}}, "additional properties 'defualtClass'"),
        ({"nfs": {"sever": "10.0.0.6"}}, "additional properties 'sever' not allowed"),
        ({"replicas": 2}, "additional properties 'replicas' not allowed"),
        ({"metrics": {"service": {"prot": 1}}}, "additional properties 'prot' not allowed"),
        ({"strategyType": "Rolling"}, "at '/strategyType': value must be one of"),
        ({"nfs": {"path": "exports"}}, "at '/nfs/path': 'exports' does not match pattern '^/'"),
        ({"nfs": {"mountOptions": "nfsvers=4.1"}}, "at '/nfs/mountOptions': got string, want"),
        ({"storageClass": {"defaultClass": "yes"}}, "at '/storageClass/defaultClass'"),
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
        # YAML reads an unquoted 0770 as the number 504: a mode must be a quoted string.
        ({"storageClass": {"mode": 504}}, "at '/storageClass/mode': got number, want"),
        ({"storageClass": {"mode": "0778"}}, "at '/storageClass/mode': '0778' does not match"),
        ({"storageClass": {"uid": "nobody"}}, "at '/storageClass/uid': 'nobody' does not match"),
        ({"storageClass": {"gid": -1}}, "at '/storageClass/gid': minimum"),
        (
            {"storageClass": {"allowClaimOwnership": "yes"}},
            "at '/storageClass/allowClaimOwnership'",
        ),
        ({"storageClass": {"archiveRetention": "30"}}, "at '/storageClass/archiveRetention'"),
        ({"usage": {"scanInterval": "ten"}}, "at '/usage/scanInterval': 'ten' does not match"),
        ({"usage": {"scanRate": 0}}, "at '/usage/scanRate'"),
        ({"archiveSweepInterval": "1d"}, "at '/archiveSweepInterval': '1d' does not match"),
        ({"nfs": {"extraExports": [{"path": "/x"}]}}, "missing property 'server'"),
        (
            {"nfs": {"extraExports": [{"server": "a,b", "path": "/x"}]}},
            "at '/nfs/extraExports/0/server'",
        ),
        ({"nfs": {"extraExports": [{"server": "b", "path": "x"}]}}, "/nfs/extraExports/0/path"),
        (
            {"nfs": {"extraExports": [{"server": "b", "path": "/x", "mountPath": "/a=b"}]}},
            "at '/nfs/extraExports/0/mountPath'",
        ),
        (
            {"nfs": {"extraExports": [{"server": "b", "path": "/x", "storageClass": {}}]}},
            "at '/nfs/extraExports/0/storageClass': missing property 'name'",
        ),
        (
            {
                "nfs": {
                    "extraExports": [
                        {"server": "b", "path": "/x", "storageClass": {"name": "c", "create": 1}}
                    ]
                }
            },
            "additional properties 'create' not allowed",
        ),
        (
            {
                "nfs": {
                    "extraExports": [
                        {"server": "b", "path": "/x", "storageClass": {"name": "c", "mode": "9"}}
                    ]
                }
            },
            "at '/nfs/extraExports/0/storageClass/mode'",
        ),
    ],
)
def test_schema_refuses_wrong_types(values: dict[str, Any], message: str) -> None:
    error = render_error(merged(MINIMAL, values))
    assert "values don't meet the specifications of the schema" in error
    assert message in error


def test_ids_and_numbers_render_as_the_provisioner_parses_them() -> None:
    # YAML numbers reach templates as float64, which would print 4.294967294e+09 and 1e+06.
    values = {
        "storageClass": {"uid": 4294967294, "gid": 0},
        "usage": {"scanInterval": 3600, "scanRate": 1000000},
        "archiveSweepInterval": 0,
    }
    rendered = render(values=merged(MINIMAL, values))
    parameters = rendered.one("StorageClass")["parameters"]
    assert parameters == {"archiveOnDelete": "true", "uid": "4294967294", "gid": "0"}
    options = parse_class_parameters(parameters)
    assert (options.uid, options.gid) == (4294967294, 0)
    env = rendered.env
    assert env["NFS_PROVISIONER_USAGE_SCAN_INTERVAL"] == "3600"
    assert env["NFS_PROVISIONER_USAGE_SCAN_RATE"] == "1000000"
    assert env["NFS_PROVISIONER_ARCHIVE_SWEEP_INTERVAL"] == "0"
    # Ids given as strings stay as written; empty ones render nothing.
    values = {"storageClass": {"uid": "0100", "gid": "", "mode": None, "archiveRetention": ""}}
    parameters = render(values=merged(MINIMAL, values)).one("StorageClass")["parameters"]
    assert parameters == {"archiveOnDelete": "true", "uid": "0100"}


def _extra(storage_class: dict[str, Any] | None = None, **entry: Any) -> dict[str, Any]:
    export: dict[str, Any] = {"server": "nfs2.example.test", "path": "/srv/fast", **entry}
    if storage_class is not None:
        export["storageClass"] = storage_class
    return export


def test_extra_export_class_takes_the_main_class_settings_and_its_overrides() -> None:
    main_class = {
        "name": "nfs",
        "defaultClass": True,
        "annotations": {"example.com/owner": "storage-team"},
        "allowVolumeExpansion": False,
        "reclaimPolicy": "Retain",
        "volumeBindingMode": "WaitForFirstConsumer",
        "archiveOnDelete": True,
        "onDelete": "retain",
        "pathPattern": "${.PVC.namespace}/${.PVC.name}",
        "uid": 1000,
        "gid": 1000,
        "mode": "0770",
        "allowClaimOwnership": True,
        "archiveRetention": "30d",
    }
    overrides = {"name": "nfs-fast", "archiveOnDelete": False, "uid": None, "mode": "0750"}
    values = {
        "storageClass": main_class,
        "nfs": {"mountOptions": ["nfsvers=4.1"], "extraExports": [_extra(overrides)]},
    }
    main, extra = render(values=merged(MINIMAL, values)).all("StorageClass")
    assert main["metadata"]["annotations"] == {
        "example.com/owner": "storage-team",
        "storageclass.kubernetes.io/is-default-class": "true",
    }
    # Never a second default class unless the entry asks; the other annotations are kept.
    assert extra["metadata"]["annotations"] == {"example.com/owner": "storage-team"}
    for key in ("provisioner", "allowVolumeExpansion", "reclaimPolicy", "volumeBindingMode"):
        assert extra[key] == main[key], key
    assert extra["mountOptions"] == main["mountOptions"] == ["nfsvers=4.1"]
    assert extra["parameters"] == {
        "server": "nfs2.example.test",
        "share": "/srv/fast",
        "archiveOnDelete": "false",
        "onDelete": "retain",
        "pathPattern": "${.PVC.namespace}/${.PVC.name}",
        "gid": "1000",
        "mode": "0750",
        "allowClaimOwnership": "true",
        "archiveRetention": "30d",
    }
    options = parse_class_parameters(extra["parameters"])
    assert (options.uid, options.gid, options.mode) == (None, 1000, 0o750)
    assert options.archive_retention == 30 * 86400


def test_extra_export_may_be_the_default_class_instead() -> None:
    values = {
        "storageClass": {"create": False},
        "nfs": {"extraExports": [_extra({"name": "nfs-fast", "defaultClass": True})]},
    }
    # The entry's class is rendered even without the main one: it was asked for by name.
    storage_class = render(values=merged(MINIMAL, values)).one("StorageClass")
    assert storage_class["metadata"]["name"] == "nfs-fast"
    assert storage_class["metadata"]["annotations"] == {
        "storageclass.kubernetes.io/is-default-class": "true"
    }


def test_extra_exports_with_mount_options_get_static_volumes() -> None:
    values = {
        "nfs": {
            "mountOptions": ["nfsvers=4.1", "hard"],
            "extraExports": [_extra(), _extra(server="192.0.2.20", path="/data")],
        }
    }
    rendered = render("nfs-provisioner", merged(MINIMAL, values))
    volumes = {v["metadata"]["name"]: v for v in rendered.all("PersistentVolume")}
    claims = {c["metadata"]["name"]: c for c in rendered.all("PersistentVolumeClaim")}
    assert sorted(volumes) == [
        "pv-nfs-provisioner",
        "pv-nfs-provisioner-extra-0",
        "pv-nfs-provisioner-extra-1",
    ]
    expected = {
        0: ("nfs2.example.test", "/srv/fast"),
        1: ("192.0.2.20", "/data"),
    }
    for index, (server, path) in expected.items():
        volume = volumes[f"pv-nfs-provisioner-extra-{index}"]
        claim = claims[f"pvc-nfs-provisioner-extra-{index}"]
        assert volume["spec"]["nfs"] == {"server": server, "path": path}
        assert volume["spec"]["mountOptions"] == ["nfsvers=4.1", "hard"]
        assert volume["spec"]["storageClassName"] == claim["spec"]["storageClassName"] == ""
        assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
        assert volume["spec"]["claimRef"] == {
            "namespace": "default",
            "name": claim["metadata"]["name"],
        }
        assert claim["spec"]["volumeName"] == volume["metadata"]["name"]
    assert rendered.pod["volumes"] == [
        {
            "name": "nfs-subdir-external-provisioner-root",
            "persistentVolumeClaim": {"claimName": "pvc-nfs-provisioner"},
        },
        {
            "name": "extra-export-0",
            "persistentVolumeClaim": {"claimName": "pvc-nfs-provisioner-extra-0"},
        },
        {
            "name": "extra-export-1",
            "persistentVolumeClaim": {"claimName": "pvc-nfs-provisioner-extra-1"},
        },
    ]


def test_extra_export_names_stay_valid_for_long_release_names() -> None:
    release = "a-release-name-of-fifty-three-characters-exactly-abcd"
    values = {"nfs": {"mountOptions": ["hard"], "extraExports": [_extra()]}}
    rendered = render(release, merged(MINIMAL, values))
    names = [o["metadata"]["name"] for o in rendered.all("PersistentVolume")]
    names += [o["metadata"]["name"] for o in rendered.all("PersistentVolumeClaim")]
    assert len(set(names)) == 4
    assert all(len(name) <= 63 for name in names), names


@pytest.mark.parametrize(
    ("exports", "message"),
    [
        (
            [_extra(mountPath="/persistentvolumes/")],
            "nfs.extraExports[0].mountPath /persistentvolumes/ is already where the export "
            "nfs.server:nfs.path is mounted",
        ),
        (
            [_extra(mountPath="/persistentvolumes-1"), _extra(path="/srv/other")],
            "nfs.extraExports[1].mountPath /persistentvolumes-1 is already where the export "
            "nfs.extraExports[0] is mounted",
        ),
        (
            [_extra(server="10.0.0.5", path="/nfs-storage/")],
            "nfs.extraExports[0] is 10.0.0.5:/nfs-storage/, the same export as nfs.server:nfs.path",
        ),
        (
            [_extra(), _extra(server="NFS2.example.test")],
            "nfs.extraExports[1] is NFS2.example.test:/srv/fast, the same export as "
            "nfs.extraExports[0]",
        ),
        (
            [_extra({"name": "nfs-client"})],
            'nfs.extraExports[0].storageClass.name "nfs-client" is also the name of '
            "storageClass.name",
        ),
    ],
)
def test_extra_exports_the_provisioner_would_refuse_are_refused(
    exports: list[dict[str, Any]], message: str
) -> None:
    assert message in render_error(merged(MINIMAL, {"nfs": {"extraExports": exports}}))


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
        ({"replicaCount": 2, "leaderElection": {"enabled": False}}, "every replica"),
        ({"rbac": {"create": False, "externalRulesGranted": True}}, "bind the ServiceAccount"),
        ({"storageClass": {"create": False}}, "No StorageClass was created"),
        ({"storageClass": {"onDelete": "retain"}}, "deletes the volume and keeps its directory"),
        ({"storageClass": {"archiveOnDelete": False}}, "removes its directory"),
        ({"storageClass": {"reclaimPolicy": "Retain"}}, "keeps the volume and its directory"),
        (
            {"nfs": {"extraExports": [_extra({"name": "nfs-fast"})]}},
            "It also serves nfs2.example.test:/srv/fast (mounted at /persistentvolumes-0) through "
            'StorageClass "nfs-fast".',
        ),
        (
            {"nfs": {"extraExports": [_extra(mountPath="/mnt/x")]}},
            "It also serves nfs2.example.test:/srv/fast (mounted at /mnt/x): a class selects it "
            "with parameters server and share.",
        ),
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
