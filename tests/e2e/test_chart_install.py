"""`helm install` of the chart into the real control plane, and migration from upstream.

No kubelet or scheduler runs here, so the chart's pod never starts. Instead the provisioner
runs out of cluster as that pod would: with the installed Deployment's environment, a token of
the installed ServiceAccount, and the export "mounted" at a local directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from devcluster import ControlPlane

from nfs_provisioner.kube import ApiError
from tests.chart.cluster import (
    container_env,
    helm_install,
    helm_uninstall,
    like_the_pod,
    object_path,
    service_account_kubeconfig,
)
from tests.chart.helm import SEED_ARGS, SEED_RELEASE, SEED_SERVER, render, values_file
from tests.chart.values import EVERYTHING, merged
from tests.e2e.harness import Cluster, running, unique, wait_for


def _exists(cluster: Cluster, path: str) -> bool:
    try:
        cluster.api.get(path)
    except ApiError as error:
        if error.is_not_found:
            return False
        raise
    return True


@contextmanager
def _installed(plane: ControlPlane, release: str, namespace: str, *args: str) -> Iterator[str]:
    """The chart installed (helm's output, NOTES included, is yielded); uninstalled after."""
    result = helm_install(plane, release, namespace, *args)
    try:
        yield result.stdout
    finally:
        helm_uninstall(plane, release, namespace)


def test_seed_line_gives_a_working_default_class(
    cluster: Cluster, control_plane: ControlPlane, export: Path, tmp_path: Path
) -> None:
    """The operators' install line, pointed at this chart, serves a default class `nfs`."""
    release_namespace = cluster.create_namespace("storage")
    with _installed(control_plane, SEED_RELEASE, release_namespace, *SEED_ARGS) as output:
        assert "STATUS: deployed" in output
        assert "kubectl get storageclass" in output
        storage_class = cluster.api.get("/apis/storage.k8s.io/v1/storageclasses/nfs")
        annotations = storage_class["metadata"]["annotations"]
        assert annotations["storageclass.kubernetes.io/is-default-class"] == "true"
        assert storage_class["provisioner"] == "cluster.local/nfs-client-provisioner"

        deployment = cluster.api.get(
            f"/apis/apps/v1/namespaces/{release_namespace}/deployments/{SEED_RELEASE}"
        )
        pod = deployment["spec"]["template"]["spec"]
        kubeconfig = service_account_kubeconfig(
            cluster.api,
            control_plane,
            release_namespace,
            pod["serviceAccountName"],
            tmp_path / "sa.kubeconfig",
        )
        env = container_env(deployment, release_namespace)
        provisioner = like_the_pod(control_plane, env, export, kubeconfig=kubeconfig)
        with running(provisioner):
            # A claim that names no class gets the default one, and a volume from it.
            apps = cluster.create_namespace("apps")
            cluster.create_claim(apps, "data", storage_class=None)
            claim = cluster.wait_bound(apps, "data")
            assert claim["spec"]["storageClassName"] == "nfs"
            pv_name = claim["spec"]["volumeName"]
            volume = cluster.volume(pv_name)
            assert volume is not None
            directory = f"{apps}-data-{pv_name}"
            assert volume["spec"]["nfs"]["server"] == SEED_SERVER
            assert volume["spec"]["nfs"]["path"] == f"/exported/path/{directory}"
            assert (export / directory).is_dir()

            cluster.delete_claim(apps, "data")
            wait_for(lambda: cluster.volume(pv_name) is None, what=f"PV {pv_name} deleted")
            assert (export / f"archived-{directory}").is_dir()
            assert not (export / directory).exists()
        assert "forbidden" not in provisioner.logs().lower()
    # Uninstalled: the default class is gone again (other tests create class-less claims).
    assert not _exists(cluster, "/apis/storage.k8s.io/v1/storageclasses/nfs")


def test_every_object_is_accepted_by_the_api_server(
    cluster: Cluster, control_plane: ControlPlane, tmp_path: Path
) -> None:
    """Every kind the chart renders, every key off its default, through a real API server."""
    namespace = cluster.create_namespace("everything")
    release = unique("everything")
    (extra_export,) = EVERYTHING["nfs"]["extraExports"]
    extra_class = {**extra_export["storageClass"], "name": unique("nfs-second")}
    values = merged(
        EVERYTHING,
        {
            "nfs": {"extraExports": [{**extra_export, "storageClass": extra_class}]},
            "storageClass": {"name": unique("nfs"), "provisionerName": f"example.com/{release}"},
            "serviceAccount": {"name": release},
        },
    )
    rendered = render(release, values, namespace=namespace)
    args = ("--values", str(values_file(values, tmp_path)))
    with _installed(control_plane, release, namespace, *args):
        for obj in rendered:
            live = cluster.api.get(object_path(obj))
            assert live["metadata"]["labels"]["team"] == "storage"
        for kind in ("ClusterRole", "Role"):
            source = rendered.one(kind)
            assert cluster.api.get(object_path(source))["rules"] == source["rules"]
        # The static volumes and claims that carry the mount options (the main export's and
        # the extra one's) find each other.
        volumes = {v["metadata"]["name"] for v in rendered.all("PersistentVolume")}
        claims = rendered.all("PersistentVolumeClaim")
        assert len(claims) == len(volumes) == 2
        bound = {
            cluster.wait_bound(namespace, claim["metadata"]["name"])["spec"]["volumeName"]
            for claim in claims
        }
        assert bound == volumes
        # Both classes, their parameters as rendered (the API server keeps them verbatim).
        classes = rendered.all("StorageClass")
        assert [c["metadata"]["name"] for c in classes] == [
            values["storageClass"]["name"],
            extra_class["name"],
        ]
        for storage_class in classes:
            live = cluster.api.get(object_path(storage_class))
            assert live["parameters"] == storage_class["parameters"]
        assert classes[1]["parameters"]["server"] == extra_export["server"]
    for kind in ("ClusterRole", "ClusterRoleBinding", "StorageClass"):
        for obj in rendered.all(kind):
            assert not _exists(cluster, object_path(obj)), kind


@pytest.mark.parametrize("release", ["nfs-client-provisioner", "nfs-subdir-external-provisioner"])
def test_volumes_of_the_upstream_release_are_still_archived_and_deleted(
    cluster: Cluster, control_plane: ControlPlane, namespace: str, export: Path, release: str
) -> None:
    """A volume the Go provisioner made, released after the switch, is archived and deleted."""
    upstream_name = f"cluster.local/{release}"  # what the upstream chart gave this release
    values = {
        "nfs": {"server": "nfs.example.test", "path": "/exports/volumes"},
        "storageClass": {"name": unique("nfs-client")},
    }
    rendered = render(release, values, namespace=namespace)
    assert rendered.provisioner_name == upstream_name
    storage_class = rendered.one("StorageClass")
    cluster.api.create("/apis/storage.k8s.io/v1/storageclasses", storage_class)
    class_name = storage_class["metadata"]["name"]
    claim = cluster.create_claim(namespace, "legacy", storage_class=class_name)
    pv_name = f"pvc-{claim['metadata']['uid']}"
    directory = f"{namespace}-legacy-{pv_name}"
    (export / directory).mkdir()
    (export / directory / "data.txt").write_text("written under the Go provisioner")
    # The PersistentVolume as the Go provisioner saved it (sig-storage-lib-external-provisioner).
    cluster.create_volume(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": pv_name,
                "annotations": {"pv.kubernetes.io/provisioned-by": upstream_name},
            },
            "spec": {
                "capacity": {"storage": "1Mi"},
                "accessModes": ["ReadWriteMany"],
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": class_name,
                "nfs": {
                    "server": "nfs.example.test",
                    "path": f"/exports/volumes/{directory}",
                    "readOnly": False,
                },
                "claimRef": {
                    "kind": "PersistentVolumeClaim",
                    "apiVersion": "v1",
                    "namespace": namespace,
                    "name": "legacy",
                    "uid": claim["metadata"]["uid"],
                    "resourceVersion": claim["metadata"]["resourceVersion"],
                },
            },
        }
    )
    try:
        cluster.wait_bound(namespace, "legacy")
        env = container_env(rendered.deployment, namespace)
        with running(like_the_pod(control_plane, env, export)):
            cluster.delete_claim(namespace, "legacy")
            wait_for(lambda: cluster.volume(pv_name) is None, what=f"PV {pv_name} deleted")
        archive = export / f"archived-{directory}"
        assert (archive / "data.txt").read_text() == "written under the Go provisioner"
        assert not (export / directory).exists()
    finally:
        cluster.delete_storage_class(class_name)
        cluster.delete_volume(pv_name)
