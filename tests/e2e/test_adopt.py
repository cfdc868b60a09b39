"""``nfs-provisioner adopt`` on the real control plane (Kubernetes >= 1.28: the PV binder gives
claims without a class the default class by itself, so only claims with a class are re-created).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml
from devcluster import ControlPlane

from nfs_provisioner.commands.claims import default_class_names
from nfs_provisioner.kube import ApiError
from tests.e2e.harness import Cluster, JsonObject, Provisioner, unique, wait_for

MakeProvisioner = Callable[..., Provisioner]
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
HOLD = "nfs-provisioner.test/hold"


def _adopt(
    plane: ControlPlane, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nfs_provisioner", "adopt", *args],
        env={**os.environ, "KUBECONFIG": str(plane.kubeconfig)},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _require_no_default_class(cluster: Cluster) -> None:
    # Claims created without a class while a default exists get it at once from admission;
    # the scenarios below need them to stay without one.
    classes = {
        c["metadata"]["name"]: c
        for c in cluster.api.get("/apis/storage.k8s.io/v1/storageclasses")["items"]
    }
    defaults = default_class_names(classes)
    assert defaults == [], f"StorageClasses still marked default: {defaults}"


def _uid(claim: JsonObject | None) -> str:
    assert claim is not None
    return str(claim["metadata"]["uid"])


def _create_pod(cluster: Cluster, namespace: str, name: str, claim: str) -> None:
    # No scheduler runs here, so the pod stays Pending: a user that does not block deletion.
    cluster.api.create(
        f"/api/v1/namespaces/{namespace}/pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "containers": [{"name": "main", "image": "mysql:8.0"}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
            },
        },
    )


def _fill_quota(cluster: Cluster, namespace: str) -> None:
    """A namespace whose claim quota is used up, as the quota controller would report it."""
    base = f"/api/v1/namespaces/{namespace}/resourcequotas"
    quota = cluster.api.create(
        base,
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "claims"},
            "spec": {"hard": {"persistentvolumeclaims": "1"}},
        },
    )
    quota["status"] = {
        "hard": {"persistentvolumeclaims": "1"},
        "used": {"persistentvolumeclaims": "1"},
    }
    cluster.api.replace(f"{base}/claims/status", quota)


def _creatable(cluster: Cluster, namespace: str, name: str) -> bool:
    body = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Mi"}}},
    }
    try:
        cluster.api.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/persistentvolumeclaims",
            params={"dryRun": "All"},
            body=body,
        )
    except ApiError:
        return False
    return True


def _rows(output: str, *namespaces: str) -> dict[str, str]:
    """Table rows of the given namespaces, by claim name (the last table wins)."""
    rows = {}
    for line in output.splitlines():
        cells = line.split()
        if len(cells) > 1 and cells[0] in namespaces:
            rows[cells[1]] = line
    return rows


def test_kubeflow_claims_are_adopted_onto_the_new_default_class(
    cluster: Cluster,
    control_plane: ControlPlane,
    export: Path,
    make_provisioner: MakeProvisioner,
    tmp_path: Path,
) -> None:
    """The guide's cluster: Kubeflow's claims were created before any StorageClass existed.

    mysql-pv-claim and minio-pvc leave storageClassName unset, as Kubeflow's manifests do: the
    cluster gives them the new default class by itself and adopt must not re-create them.
    katib-mysql and authservice-pvc say storageClassName: "" (manifests written for pre-made
    volumes): only re-creation moves them.
    """
    _require_no_default_class(cluster)
    kubeflow = cluster.create_namespace("kubeflow")
    istio = cluster.create_namespace("istio-system")
    scenario = unique("scenario")
    wanted: dict[tuple[str, str], str | None] = {
        (kubeflow, "mysql-pv-claim"): None,
        (kubeflow, "minio-pvc"): None,
        (kubeflow, "katib-mysql"): "",
        (istio, "authservice-pvc"): "",
    }
    created = {}
    for (namespace, name), storage_class in wanted.items():
        created[namespace, name] = cluster.create_claim(
            namespace,
            name,
            storage_class=storage_class,
            size="10Gi",
            access_modes=["ReadWriteOnce"],
            labels={"scenario": scenario, "app": name},
            annotations={"team": "ml", LAST_APPLIED: '{"kind":"PersistentVolumeClaim"}'},
        )
    _create_pod(cluster, kubeflow, "katib-mysql-0", "katib-mysql")
    provisioner = make_provisioner()
    nfs = cluster.create_storage_class(provisioner.name, default=True)
    selection = ("--all-namespaces", "--selector", f"scenario={scenario}")
    backups = tmp_path / "backups"
    workdir = tmp_path / "work"
    workdir.mkdir()
    try:
        refused = _adopt(control_plane, *selection, cwd=workdir)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "pass --yes" in refused.stderr

        dry = _adopt(control_plane, *selection, "--dry-run", cwd=workdir)
        assert dry.returncode == 0, dry.stderr
        assert "Dry run: nothing was changed." in dry.stdout
        plan = _rows(dry.stdout, kubeflow, istio)
        assert '"" -> ' + nfs in plan["katib-mysql"]
        assert "katib-mysql-0" in plan["katib-mysql"]
        assert "10Gi" in plan["authservice-pvc"]
        assert "RWO" in plan["authservice-pvc"]
        for (namespace, name), before in created.items():
            after = cluster.claim(namespace, name)
            assert _uid(after) == _uid(before)
        assert not list(workdir.iterdir())

        result = _adopt(
            control_plane,
            *selection,
            "--yes",
            "--backup-dir",
            str(backups),
            "--timeout",
            "60s",
            cwd=workdir,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"Backups: {backups}" in result.stdout
        assert "[2/2]" in result.stdout

        for (namespace, name), storage_class in wanted.items():
            claim = cluster.claim(namespace, name)
            assert claim is not None
            assert claim["status"]["phase"] == "Bound"
            assert claim["spec"]["storageClassName"] == nfs
            volume = claim["spec"]["volumeName"]
            assert (export / f"{namespace}-{name}-{volume}").is_dir()
            assert claim["metadata"]["labels"] == {"scenario": scenario, "app": name}
            assert claim["metadata"]["annotations"]["team"] == "ml"
            assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
            assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
            recreated = _uid(claim) != _uid(created[namespace, name])
            assert recreated is (storage_class == ""), name
            assert (LAST_APPLIED in claim["metadata"]["annotations"]) is not recreated
        # When adopt ran before the PV binder, it listed them as the cluster's to handle.
        for name, line in _rows(result.stdout, kubeflow, istio).items():
            if name in ("mysql-pv-claim", "minio-pvc"):
                assert "re-create" not in line

        files = sorted(p.name for p in backups.iterdir())
        assert files == [f"{istio}_authservice-pvc.yaml", f"{kubeflow}_katib-mysql.yaml"]
        saved = yaml.safe_load((backups / f"{kubeflow}_katib-mysql.yaml").read_text())
        assert saved["metadata"]["uid"] == _uid(created[kubeflow, "katib-mysql"])
        assert saved["spec"]["storageClassName"] == ""
        assert saved["metadata"]["annotations"]["nfs-provisioner/adopt-storage-class"] == nfs

        uids = {key: _uid(cluster.claim(*key)) for key in wanted}
        again = _adopt(control_plane, *selection, "--yes", cwd=workdir)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "No Pending claim needs adoption." in again.stdout
        assert {key: _uid(cluster.claim(*key)) for key in wanted} == uids
    finally:
        cluster.delete_storage_class(nfs)


def test_bound_claim_is_never_touched(
    cluster: Cluster, control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    volume = unique("pv-static")
    cluster.create_nfs_volume(
        volume, server="nfs.example.test", path="/static", reclaim_policy="Retain"
    )
    storage_class = cluster.create_storage_class("test.local/nobody-runs-this")
    try:
        cluster.create_claim(
            namespace, "bound", storage_class="", extra_spec={"volumeName": volume}
        )
        bound = cluster.wait_bound(namespace, "bound")
        pending = cluster.create_claim(namespace, "pending", storage_class="")

        result = _adopt(
            control_plane,
            "--namespace",
            namespace,
            "--storage-class",
            storage_class,
            "--yes",
            "--no-wait",
            "--backup-dir",
            str(tmp_path / "backups"),
        )
        assert result.returncode == 0, result.stdout + result.stderr
        after = cluster.claim(namespace, "bound")
        assert after is not None
        assert _uid(after) == _uid(bound)
        assert after["spec"]["storageClassName"] == ""
        assert after["spec"]["volumeName"] == volume
        assert after["status"]["phase"] == "Bound"
        moved = cluster.claim(namespace, "pending")
        assert _uid(moved) != _uid(pending)
        assert moved is not None
        assert moved["spec"]["storageClassName"] == storage_class
        assert [p.name for p in (tmp_path / "backups").iterdir()] == [f"{namespace}_pending.yaml"]
    finally:
        cluster.delete_storage_class(storage_class)
        cluster.delete_volume(volume)


def test_claim_without_class_gets_one_in_place_when_there_is_no_default(
    cluster: Cluster,
    control_plane: ControlPlane,
    namespace: str,
    make_provisioner: MakeProvisioner,
    tmp_path: Path,
) -> None:
    _require_no_default_class(cluster)
    created = cluster.create_claim(namespace, "mysql-pv-claim", storage_class=None)
    provisioner = make_provisioner()
    storage_class = cluster.create_storage_class(provisioner.name)
    try:
        result = _adopt(
            control_plane,
            "-n",
            namespace,
            "--storage-class",
            storage_class,
            "--yes",
            "--timeout",
            "60s",
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"class set to {storage_class}" in result.stdout
        claim = cluster.claim(namespace, "mysql-pv-claim")
        assert _uid(claim) == _uid(created)
        assert claim is not None
        assert claim["status"]["phase"] == "Bound"
        assert claim["spec"]["storageClassName"] == storage_class
        (backup_dir,) = tmp_path.glob("adopt-backup-*")
        assert [p.name for p in backup_dir.iterdir()] == [f"{namespace}_mysql-pv-claim.yaml"]
    finally:
        cluster.delete_storage_class(storage_class)


def test_claim_is_left_alone_when_its_replacement_would_be_refused(
    cluster: Cluster, control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    created = cluster.create_claim(namespace, "katib-mysql", storage_class="")
    _fill_quota(cluster, namespace)
    storage_class = cluster.create_storage_class("test.local/nobody-runs-this")
    try:
        result = _adopt(
            control_plane,
            "-n",
            namespace,
            "--storage-class",
            storage_class,
            "--yes",
            "--backup-dir",
            str(tmp_path / "backups"),
        )
        assert result.returncode == 1
        assert "left alone: the new claim would be refused" in result.stdout
        assert "exceeded quota" in result.stdout
        claim = cluster.claim(namespace, "katib-mysql")
        assert _uid(claim) == _uid(created)
        assert claim is not None
        assert claim["spec"]["storageClassName"] == ""
        assert list((tmp_path / "backups").iterdir()) == []
    finally:
        cluster.delete_storage_class(storage_class)


def test_interrupted_adoption_is_repaired_by_restore(
    cluster: Cluster,
    control_plane: ControlPlane,
    namespace: str,
    make_provisioner: MakeProvisioner,
    tmp_path: Path,
) -> None:
    """The create after the delete fails for real: the namespace's quota fills up meanwhile.

    A finalizer the test holds keeps the deleted claim around until the quota is full.
    """
    created = cluster.create_claim(
        namespace, "minio-pvc", storage_class="", labels={"app": "minio"}
    )
    cluster.patch_claim(
        namespace, "minio-pvc", {"metadata": {"finalizers": ["kubernetes.io/pvc-protection", HOLD]}}
    )
    provisioner = make_provisioner()
    storage_class = cluster.create_storage_class(provisioner.name)
    backups = tmp_path / "backups"
    try:
        adopting = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nfs_provisioner",
                "adopt",
                "-n",
                namespace,
                "--storage-class",
                storage_class,
                "--yes",
                "--backup-dir",
                str(backups),
            ],
            env={**os.environ, "KUBECONFIG": str(control_plane.kubeconfig)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(
                lambda: (
                    (cluster.claim(namespace, "minio-pvc") or {})
                    .get("metadata", {})
                    .get("deletionTimestamp")
                ),
                what="adopt to delete the claim",
            )
            _fill_quota(cluster, namespace)
            cluster.patch_claim(namespace, "minio-pvc", {"metadata": {"finalizers": []}})
            stdout, stderr = adopting.communicate(timeout=60)
        finally:
            adopting.kill()
            adopting.wait()
        assert adopting.returncode == 1, stdout + stderr
        assert "was deleted and not created again" in stderr
        assert "exceeded quota" in stderr
        assert f"nfs-provisioner adopt --restore {backups}" in stderr
        assert cluster.claim(namespace, "minio-pvc") is None
        assert [p.name for p in backups.iterdir()] == [f"{namespace}_minio-pvc.yaml"]

        cluster.api.delete(f"/api/v1/namespaces/{namespace}/resourcequotas/claims")
        wait_for(lambda: _creatable(cluster, namespace, "probe"), what="the quota to be gone")
        restored = _adopt(control_plane, "--restore", str(backups), "--timeout", "60s")
        assert restored.returncode == 0, restored.stdout + restored.stderr
        claim = cluster.claim(namespace, "minio-pvc")
        assert claim is not None
        assert _uid(claim) != _uid(created)
        assert claim["status"]["phase"] == "Bound"
        assert claim["spec"]["storageClassName"] == storage_class
        assert claim["metadata"]["labels"] == {"app": "minio"}
        assert HOLD not in claim["metadata"]["finalizers"]

        again = _adopt(control_plane, "--restore", str(backups))
        assert again.returncode == 0, again.stdout + again.stderr
        assert "nothing to restore" in again.stdout
        assert _uid(cluster.claim(namespace, "minio-pvc")) == _uid(claim)
    finally:
        cluster.delete_storage_class(storage_class)
