"""Provisioning on the real control plane: claims of our class get a directory and a PV."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

from tests.e2e.harness import Cluster, Provisioner, wait_for

MakeProvisioner = Callable[..., Provisioner]


def test_claim_of_default_class_is_bound_with_every_pv_field(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner(nfs_path="/exports/volumes/")  # trailing slash on purpose
    storage_class = cluster.create_storage_class(
        provisioner.name, mount_options=["nfsvers=4.1", "hard"], default=True
    )
    try:
        created = cluster.create_claim(
            namespace,
            "mysql-pv-claim",
            storage_class=None,
            size="20Gi",
            access_modes=["ReadWriteOnce"],
        )
        claim = cluster.wait_bound(namespace, "mysql-pv-claim")
    finally:
        cluster.delete_storage_class(storage_class)
    assert claim["spec"]["storageClassName"] == storage_class
    uid = created["metadata"]["uid"]
    pv_name = f"pvc-{uid}"
    assert claim["spec"]["volumeName"] == pv_name

    directory = export / f"{namespace}-mysql-pv-claim-{pv_name}"
    assert directory.is_dir()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o777

    volume = cluster.volume(pv_name)
    assert volume is not None
    spec = volume["spec"]
    # readOnly: false is what the provisioner sends; the API server omits false booleans.
    assert spec["nfs"] == {
        "server": provisioner.server,
        "path": f"/exports/volumes/{namespace}-mysql-pv-claim-{pv_name}",
    }
    assert spec["capacity"] == {"storage": "20Gi"}
    assert spec["accessModes"] == ["ReadWriteOnce"]
    assert spec["mountOptions"] == ["nfsvers=4.1", "hard"]
    assert spec["persistentVolumeReclaimPolicy"] == "Delete"
    assert spec["storageClassName"] == storage_class
    claim_ref = spec["claimRef"]
    assert claim_ref["kind"] == "PersistentVolumeClaim"
    assert claim_ref["apiVersion"] == "v1"
    assert (claim_ref["namespace"], claim_ref["name"], claim_ref["uid"]) == (
        namespace,
        "mysql-pv-claim",
        uid,
    )
    assert claim_ref["resourceVersion"]
    assert volume["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == provisioner.name

    provisioning = cluster.wait_event(namespace, "mysql-pv-claim", "Provisioning")
    assert provisioning["type"] == "Normal"
    assert provisioning["message"] == (
        f'External provisioner is provisioning volume for claim "{namespace}/mysql-pv-claim"'
    )
    succeeded = cluster.wait_event(namespace, "mysql-pv-claim", "ProvisioningSucceeded")
    assert succeeded["message"] == f"Successfully provisioned volume {pv_name}"
    assert (
        provisioner.metric(
            "controller_persistentvolumeclaim_provision_total", {"class": storage_class}
        )
        == 1
    )


def test_path_pattern_uses_labels_and_annotations(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner()
    storage_class = cluster.create_storage_class(
        provisioner.name,
        parameters={
            "pathPattern": "${.PVC.namespace}/${.PVC.labels.app}/"
            "${.PVC.annotations.nfs.io/storage-path}"
        },
    )
    cluster.create_claim(
        namespace,
        "minio-pvc",
        storage_class=storage_class,
        labels={"app": "minio"},
        annotations={"nfs.io/storage-path": "data"},
    )
    claim = cluster.wait_bound(namespace, "minio-pvc")
    assert (export / namespace / "minio" / "data").is_dir()
    assert stat.S_IMODE((export / namespace / "minio" / "data").stat().st_mode) == 0o777
    volume = cluster.volume(claim["spec"]["volumeName"])
    assert volume is not None
    assert volume["spec"]["nfs"]["path"] == f"/exports/volumes/{namespace}/minio/data"

    # A missing label would drop a level and hand out its parent (issue 11): refused by name.
    cluster.create_claim(
        namespace,
        "katib-mysql",
        storage_class=storage_class,
        annotations={"nfs.io/storage-path": "katib"},
    )
    event = cluster.wait_event(
        namespace, "katib-mysql", "ProvisioningFailed", source=provisioner.name
    )
    assert '"${.PVC.labels.app}" expanded to nothing' in event["message"]
    assert sorted(p.name for p in (export / namespace).iterdir()) == ["minio"]


def test_wait_for_first_consumer_waits_for_the_selected_node(
    cluster: Cluster, namespace: str, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner()
    storage_class = cluster.create_storage_class(
        provisioner.name, binding_mode="WaitForFirstConsumer"
    )
    created = cluster.create_claim(namespace, "late", storage_class=storage_class)
    cluster.wait_event(namespace, "late", "WaitForFirstConsumer", timeout=30)
    assert cluster.volume(f"pvc-{created['metadata']['uid']}") is None

    cluster.patch_claim(
        namespace,
        "late",
        {"metadata": {"annotations": {"volume.kubernetes.io/selected-node": "node-1"}}},
    )
    claim = cluster.wait_bound(namespace, "late")
    assert claim["spec"]["volumeName"] == f"pvc-{created['metadata']['uid']}"


def test_selector_and_block_claims_get_warning_events(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner()
    storage_class = cluster.create_storage_class(provisioner.name)
    cluster.create_claim(
        namespace,
        "selective",
        storage_class=storage_class,
        extra_spec={"selector": {"matchLabels": {"tier": "gold"}}},
    )
    cluster.create_claim(
        namespace, "raw", storage_class=storage_class, extra_spec={"volumeMode": "Block"}
    )

    selector_event = cluster.wait_event(
        namespace, "selective", "ProvisioningFailed", source=provisioner.name
    )
    assert selector_event["type"] == "Warning"
    assert selector_event["message"] == (
        f'failed to provision volume with StorageClass "{storage_class}": '
        "claim Selector is not supported"
    )
    block_event = cluster.wait_event(
        namespace, "raw", "ProvisioningFailed", source=provisioner.name
    )
    assert block_event["type"] == "Warning"
    assert block_event["message"] == (
        f"{provisioner.name} does not support block volume provisioning"
    )
    assert list(export.iterdir()) == []
    assert cluster.claim(namespace, "selective")["status"]["phase"] == "Pending"  # type: ignore[index]
    assert cluster.claim(namespace, "raw")["status"]["phase"] == "Pending"  # type: ignore[index]


def test_claims_of_other_provisioners_are_left_alone(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    make_provisioner()
    other = cluster.create_storage_class("example.test/someone-else")
    created = cluster.create_claim(namespace, "foreign", storage_class=other)
    wait_for(
        lambda: (
            (cluster.claim(namespace, "foreign") or {})
            .get("metadata", {})
            .get("annotations", {})
            .get("volume.kubernetes.io/storage-provisioner")
        ),
        what="binder annotation",
    )
    # Give the provisioner every chance to (wrongly) act before looking.
    wait_for(
        lambda: cluster.events(namespace, name="foreign", reason="ExternalProvisioning"),
        what="binder event",
    )
    assert cluster.volume(f"pvc-{created['metadata']['uid']}") is None
    assert list(export.iterdir()) == []


def test_invalid_class_parameter_fails_with_a_clear_event(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner()
    bad = cluster.create_storage_class(provisioner.name, parameters={"archiveOnDelete": "maybe"})
    good = cluster.create_storage_class(provisioner.name)
    cluster.create_claim(namespace, "bad", storage_class=bad)
    cluster.create_claim(namespace, "good", storage_class=good)
    event = cluster.wait_event(namespace, "bad", "ProvisioningFailed", source=provisioner.name)
    assert "archiveOnDelete" in event["message"]
    assert '"maybe"' in event["message"]
    assert "true" in event["message"] and "false" in event["message"]
    cluster.wait_bound(namespace, "good")
    assert [p.name for p in export.iterdir()] == [
        f"{namespace}-good-{cluster.claim(namespace, 'good')['spec']['volumeName']}"
    ]  # type: ignore[index]


def test_claim_whose_class_is_missing_waits_for_it(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    # The binder assigns the claim while the class exists; then the class goes away.
    name = f"test.local/{namespace}"
    storage_class = cluster.create_storage_class(name)
    cluster.create_claim(namespace, "orphan", storage_class=storage_class)
    wait_for(
        lambda: (
            (cluster.claim(namespace, "orphan") or {})["metadata"]
            .get("annotations", {})
            .get("volume.kubernetes.io/storage-provisioner")
        ),
        what="binder annotation",
    )
    cluster.delete_storage_class(storage_class)
    provisioner = make_provisioner(name=name)
    wait_for(
        lambda: (
            provisioner.metric("nfs_provisioner_workqueue_retries_total", {"queue": "claims"}) >= 2
        ),
        what="retries while the class is missing",
    )
    assert list(export.iterdir()) == []
    # The binder reports the missing class itself; the provisioner only waits for it.
    assert cluster.events(namespace, name="orphan", source=provisioner.name) == []

    cluster.create_storage_class(name, name=storage_class)
    cluster.wait_bound(namespace, "orphan")
    assert len(list(export.iterdir())) == 1
