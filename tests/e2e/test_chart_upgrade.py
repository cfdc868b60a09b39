"""In place: an upstream chart's release, served by the Go original, `helm upgrade`d to ours.

Each test installs one upstream chart (tests/fixtures/upstream-charts) with helm into the real
API server, runs the Go original (built from ../shared/go-original by hack/devcluster/goriginal.py)
with that release's Deployment environment and ServiceAccount, provisions claims, then upgrades
the same release to charts/nfs-provisioner and runs ours with the upgraded Deployment's
environment and ServiceAccount, as the pods would. No kubelet runs here: the cut-over the
Deployment's Recreate strategy makes in a cluster (old pod gone, then new pod started) is done
by hand, in the same order, and the upgraded Deployment is checked to carry that strategy.
Last, `helm rollback` returns the release to the upstream chart and the Go original.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from devcluster import ControlPlane
from devcluster.goriginal import ensure_go_original

from nfs_provisioner.kube import ApiError
from tests.chart.cluster import container_env, like_the_pod, service_account_kubeconfig
from tests.chart.helm import CHART, helm
from tests.chart.upstream import STABLE, SUBDIR, UPSTREAM_CHARTS
from tests.e2e.goriginal import persistentvolumes_link
from tests.e2e.harness import Cluster, running, unique, wait_for

SERVER = "nfs.example.test"
NFS_PATH = "/exports/volumes"
OUR_IMAGE = ("ghcr.io/nfs-provisioner/nfs-provisioner", "0.1.0")


@dataclass
class GoOriginal:
    """The Go program as its pod would run it: the release's env, its ServiceAccount's token."""

    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> GoOriginal:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(ensure_go_original().binary)],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextmanager
def go_running(go: GoOriginal) -> Iterator[GoOriginal]:
    go.start()
    try:
        yield go
    finally:
        go.stop()


class Release:
    def __init__(self, plane: ControlPlane, cluster: Cluster, name: str, namespace: str) -> None:
        self.plane, self.cluster, self.name, self.namespace = plane, cluster, name, namespace

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return helm(
            *args,
            "--namespace",
            self.namespace,
            "--kubeconfig",
            str(self.plane.kubeconfig),
            check=check,
            timeout=180,
        )

    def history(self) -> list[dict[str, Any]]:
        result = self.helm("history", self.name, "--output", "json")
        return list(json.loads(result.stdout))

    def deployment(self, fullname: str) -> dict[str, Any]:
        return self.cluster.api.get(
            f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{fullname}"
        )

    def pod_identity(self, fullname: str, directory: Path) -> tuple[dict[str, str], Path]:
        """The Deployment's container env and a kubeconfig of its ServiceAccount."""
        deployment = self.deployment(fullname)
        account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        kubeconfig = service_account_kubeconfig(
            self.cluster.api,
            self.plane,
            self.namespace,
            account,
            directory / f"{account}-{len(self.history())}.kubeconfig",
        )
        return container_env(deployment, self.namespace), kubeconfig


def _go_original(env: dict[str, str], kubeconfig: Path, namespace: str, log: Path) -> GoOriginal:
    # In its pod the program reads its namespace from the ServiceAccount's files; here it is
    # given, so its Endpoints lock goes where the upstream chart's Role allows it.
    return GoOriginal({**env, "KUBECONFIG": str(kubeconfig), "POD_NAMESPACE": namespace}, log)


def _directory(cluster: Cluster, namespace: str, claim: str) -> tuple[str, str]:
    bound = cluster.wait_bound(namespace, claim, timeout=90)
    pv_name = bound["spec"]["volumeName"]
    return pv_name, f"{namespace}-{claim}-{pv_name}"


def _endpoints_lock(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return cluster.api.get(f"/api/v1/namespaces/{namespace}/endpoints/{name}")
    except ApiError as error:
        if error.is_not_found:
            return None
        raise


@pytest.fixture(scope="module")
def go_binary() -> Path:
    return ensure_go_original().binary


@pytest.mark.parametrize("how", ["reuse-values", "reset-then-reuse-values", "values-file"])
@pytest.mark.parametrize("chart", [STABLE, SUBDIR])
def test_upstream_release_upgrades_in_place_and_rolls_back(
    cluster: Cluster,
    control_plane: ControlPlane,
    export: Path,
    tmp_path: Path,
    go_binary: Path,
    chart: str,
    how: str,
) -> None:
    namespace = cluster.create_namespace("upgrade")
    release = Release(control_plane, cluster, unique("nfs"), namespace)
    fullname = f"{release.name}-{chart}"
    provisioner_name = f"cluster.local/{fullname}"
    class_name = unique("nfs-client")
    values = {
        "nfs": {"server": SERVER, "path": NFS_PATH, "mountOptions": ["nfsvers=4.1"]},
        "storageClass": {"name": class_name},
    }
    values_path = tmp_path / "values.yaml"
    values_path.write_text(json.dumps(values))
    apps = cluster.create_namespace("apps")

    release.helm("install", release.name, str(UPSTREAM_CHARTS[chart]), "-f", str(values_path))
    try:
        # The static volume of nfs.mountOptions binds to its claim by the label selector.
        cluster.wait_bound(namespace, f"pvc-{fullname}")
        env, kubeconfig = release.pod_identity(fullname, tmp_path)
        assert env["PROVISIONER_NAME"] == provisioner_name
        go = _go_original(env, kubeconfig, namespace, tmp_path / "go-1.log")

        with persistentvolumes_link(export), go_running(go):
            cluster.create_claim(apps, "old", storage_class=class_name)
            old_pv, old_dir = _directory(cluster, apps, "old")
            cluster.create_claim(apps, "kept", storage_class=class_name)
            _, kept_dir = _directory(cluster, apps, "kept")
            assert (export / old_dir).is_dir() and (export / kept_dir).is_dir()
            volume = cluster.volume(old_pv)
            assert volume is not None
            annotations = volume["metadata"]["annotations"]
            assert annotations["pv.kubernetes.io/provisioned-by"] == provisioner_name
            # The Go program's leader lock: an Endpoints object (ours is a Lease).
            lock = provisioner_name.replace("/", "-")
            wait_for(
                lambda: _endpoints_lock(cluster, namespace, lock) is not None,
                what="the Go original's Endpoints lock",
            )

            # Forgetting compat is refused before anything changes: the class's provisioner.
            base = ("upgrade", release.name, str(CHART))
            refused = release.helm(*base, "-f", str(values_path), check=False)
            assert refused.returncode != 0
            assert f"Set compat={chart}" in refused.stderr
            # So is a rolling update from the Go image: two provisioners would act at once.
            rolling = release.helm(
                *base,
                "-f",
                str(values_path),
                "--set",
                f"compat={chart}",
                "--set",
                "strategyType=RollingUpdate",
                check=False,
            )
            assert rolling.returncode != 0
            assert "strategyType=Recreate" in rolling.stderr
            # Without the class check (no class rendered), the release's Deployment refuses.
            no_class = release.helm(
                *base, "-f", str(values_path), "--set", "storageClass.create=false", check=False
            )
            assert no_class.returncode != 0
            assert f"runs provisioner {provisioner_name}" in no_class.stderr
            assert f"Set compat={chart}" in no_class.stderr
            assert [r["revision"] for r in release.history()] == [1]

            if how == "reuse-values":
                # The old chart's values are reused, its Go image included: replace it.
                upgrade = (
                    "--reuse-values",
                    "--set",
                    f"compat={chart}",
                    "--set",
                    f"image.repository={OUR_IMAGE[0]}",
                    "--set",
                    f"image.tag={OUR_IMAGE[1]}",
                )
            elif how == "reset-then-reuse-values":
                # helm >= 3.14: this chart's defaults, then the values the release was given.
                upgrade = ("--reset-then-reuse-values", "--set", f"compat={chart}")
            else:
                upgrade = ("-f", str(values_path), "--set", f"compat={chart}")
            result = release.helm(*base, *upgrade)
            assert "STATUS: deployed" in result.stdout
            upgraded = release.deployment(fullname)
            # Recreate: the Go pod is gone before ours starts, so the two locks never meet.
            assert upgraded["spec"]["strategy"]["type"] == "Recreate"
            (container,) = upgraded["spec"]["template"]["spec"]["containers"]
            assert container["image"] == ":".join(OUR_IMAGE)
        # The cut-over, as Recreate orders it: the Go pod has stopped (above), ours starts.
        assert go.process is not None and go.process.returncode is not None

        ours_env, ours_kubeconfig = release.pod_identity(fullname, tmp_path)
        assert ours_env["PROVISIONER_NAME"] == provisioner_name
        assert ours_env["NFS_PATH"] == NFS_PATH
        ours = like_the_pod(control_plane, ours_env, export, kubeconfig=ours_kubeconfig)
        with running(ours):
            # A volume the Go original made, released now, is archived by ours.
            cluster.delete_claim(apps, "old")
            wait_for(lambda: cluster.volume(old_pv) is None, what=f"PV {old_pv} deleted")
            assert (export / f"archived-{old_dir}").is_dir()
            assert not (export / old_dir).exists()
            # New claims are served.
            cluster.create_claim(apps, "new", storage_class=class_name)
            new_pv, new_dir = _directory(cluster, apps, "new")
            assert (export / new_dir).is_dir()
            lease = cluster.api.get(
                f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/"
                + provisioner_name.replace("/", "-")
            )
            assert lease["spec"]["holderIdentity"]
        assert "forbidden" not in ours.logs().lower()
        # The static volume's claim is still the one bound before the upgrade.
        assert cluster.wait_bound(namespace, f"pvc-{fullname}")["status"]["phase"] == "Bound"

        # Back to the upstream chart and the Go original (ours stopped first, as Recreate).
        release.helm("rollback", release.name, "1")
        assert [r["revision"] for r in release.history()] == [1, 2, 3]
        rolled_back = release.deployment(fullname)
        (container,) = rolled_back["spec"]["template"]["spec"]["containers"]
        assert container["image"].split("/")[-1].split(":")[0] == chart
        go_env, go_kubeconfig = release.pod_identity(fullname, tmp_path)
        assert go_env == env
        go_again = _go_original(go_env, go_kubeconfig, namespace, tmp_path / "go-2.log")
        with persistentvolumes_link(export), go_running(go_again):
            # The volume ours made is the Go program's to delete again (same provisioner name).
            cluster.delete_claim(apps, "new")
            wait_for(lambda: cluster.volume(new_pv) is None, what=f"PV {new_pv} deleted")
            assert (export / f"archived-{new_dir}").is_dir()
            cluster.create_claim(apps, "after", storage_class=class_name)
            _, after_dir = _directory(cluster, apps, "after")
            assert (export / after_dir).is_dir()
        assert (export / kept_dir).is_dir()
    finally:
        release.helm("uninstall", release.name, check=False)
        for claim in ("old", "kept", "new", "after"):
            with suppress(ApiError):
                cluster.delete_claim(apps, claim)
        for pv in cluster.volumes():
            if pv["spec"].get("storageClassName") == class_name:
                cluster.delete_volume(pv["metadata"]["name"])
