"""The local control plane is real: the controller-manager's PV binder does its work."""

from __future__ import annotations

from tests.e2e.harness import Cluster, unique, wait_for


def test_binder_assigns_claims_of_an_external_class_to_its_provisioner(
    cluster: Cluster, namespace: str
) -> None:
    provisioner = f"example.test/{unique('ext')}"
    storage_class = cluster.create_storage_class(provisioner)
    cluster.create_claim(namespace, "data", storage_class=storage_class)

    def annotated() -> str | None:
        claim = cluster.claim(namespace, "data") or {}
        return (claim["metadata"].get("annotations") or {}).get(
            "volume.kubernetes.io/storage-provisioner"
        )

    assert wait_for(annotated, timeout=30, what="provisioner annotation") == provisioner
    assert cluster.claim(namespace, "data")["status"]["phase"] == "Pending"  # type: ignore[index]


def test_prebound_volume_binds_and_is_released_when_the_claim_goes(
    cluster: Cluster, namespace: str
) -> None:
    claim = cluster.create_claim(namespace, "data", storage_class="", size="1Gi")
    volume_name = unique("pv")
    cluster.create_nfs_volume(
        volume_name,
        server="nfs.example.test",
        path="/exports/static",
        reclaim_policy="Retain",
        size="1Gi",
        claim_ref={"namespace": namespace, "name": "data", "uid": claim["metadata"]["uid"]},
    )
    bound = cluster.wait_bound(namespace, "data", timeout=30)
    assert bound["spec"]["volumeName"] == volume_name

    cluster.delete_claim(namespace, "data")

    def released() -> bool:
        volume = cluster.volume(volume_name) or {}
        return (volume.get("status") or {}).get("phase") == "Released"

    wait_for(released, timeout=30, what="volume to be Released")
    cluster.delete_volume(volume_name)


def test_version_is_parseable(cluster: Cluster) -> None:
    version = cluster.api.get("/version")
    assert version["major"] == "1"
    assert version["gitVersion"].startswith("v1.36.")
