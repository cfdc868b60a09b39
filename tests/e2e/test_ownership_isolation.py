"""Takeover attempts with real claims: no claim gets, re-permissions or deletes another's data."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from tests.e2e.harness import Cluster, Provisioner, wait_for

MakeProvisioner = Callable[..., Provisioner]
README_PATTERN = "${.PVC.namespace}/${.PVC.annotations.nfs.io/storage-path}"
STORAGE_PATH = "nfs.io/storage-path"


def _failure(cluster: Cluster, namespace: str, claim: str, provisioner: Provisioner) -> str:
    event = cluster.wait_event(namespace, claim, "ProvisioningFailed", source=provisioner.name)
    return str(event["message"])


def test_the_readme_pattern_cannot_hand_out_or_delete_a_namespace_directory(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner()
    storage_class = cluster.create_storage_class(
        provisioner.name, parameters={"pathPattern": README_PATTERN, "onDelete": "delete"}
    )
    for claim in ("db", "web"):
        cluster.create_claim(
            namespace, claim, storage_class=storage_class, annotations={STORAGE_PATH: claim}
        )
        cluster.wait_bound(namespace, claim)
        (export / namespace / claim / "data").write_text(claim)

    cluster.create_claim(namespace, "greedy", storage_class=storage_class)
    cluster.create_claim(
        namespace, "copycat", storage_class=storage_class, annotations={STORAGE_PATH: "db"}
    )
    cluster.create_claim(
        namespace, "nested", storage_class=storage_class, annotations={STORAGE_PATH: "db/x"}
    )

    assert "expanded to nothing" in _failure(cluster, namespace, "greedy", provisioner)
    db_volume = cluster.claim(namespace, "db")["spec"]["volumeName"]  # type: ignore[index]
    copycat = _failure(cluster, namespace, "copycat", provisioner)
    assert f"is the directory of PersistentVolume {db_volume}" in copycat
    nested = _failure(cluster, namespace, "nested", provisioner)
    assert f"is inside the directory of PersistentVolume {db_volume}" in nested
    for claim in ("greedy", "copycat", "nested"):
        assert cluster.claim(namespace, claim)["status"]["phase"] == "Pending"  # type: ignore[index]

    # Deleting the claims that failed removes nothing; the live volumes keep their data.
    for claim in ("greedy", "copycat", "nested"):
        cluster.delete_claim(namespace, claim)
    cluster.delete_claim(namespace, "web")
    wait_for(lambda: not (export / namespace / "web").exists(), what="web's directory to go")
    assert (export / namespace / "db" / "data").read_text() == "db"
    assert sorted(p.name for p in (export / namespace).iterdir()) == ["db"]


def test_a_directory_nobody_owns_is_reused_without_changing_its_owner_or_mode(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    """A claim re-created over a retained directory gets its data back, untouched."""
    provisioner = make_provisioner()
    storage_class = cluster.create_storage_class(
        provisioner.name, parameters={"pathPattern": README_PATTERN, "onDelete": "retain"}
    )
    kept = export / namespace / "mysql"
    kept.mkdir(parents=True)
    os.chmod(kept, 0o750)
    (kept / "ibdata1").write_text("rows")
    cluster.create_claim(
        namespace, "mysql", storage_class=storage_class, annotations={STORAGE_PATH: "mysql"}
    )
    cluster.wait_bound(namespace, "mysql")
    event = cluster.wait_event(namespace, "mysql", "ReusingDirectory", source=provisioner.name)
    assert event["type"] == "Normal"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o750
    assert (kept / "ibdata1").read_text() == "rows"


def test_a_reserved_directory_is_never_handed_out(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner()
    storage_class = cluster.create_storage_class(
        provisioner.name, parameters={"pathPattern": "${.PVC.annotations.p}"}
    )
    lost = export / "lost+found"
    lost.mkdir()
    os.chmod(lost, 0o700)
    cluster.create_claim(
        namespace, "sneaky", storage_class=storage_class, annotations={"p": "lost+found"}
    )
    assert "is reserved" in _failure(cluster, namespace, "sneaky", provisioner)
    assert stat.S_IMODE(lost.stat().st_mode) == 0o700


def test_a_volume_holding_other_volumes_is_never_removed(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    """A released PV around a live one (made by hand, or by the Go provisioner's reuse)."""
    provisioner = make_provisioner()
    storage_class = cluster.create_storage_class(
        provisioner.name, parameters={"pathPattern": "${.PVC.namespace}/db", "onDelete": "delete"}
    )
    cluster.create_claim(namespace, "db", storage_class=storage_class)
    cluster.wait_bound(namespace, "db")
    (export / namespace / "db" / "data").write_text("db")
    outer = f"outer-{namespace}"
    cluster.create_nfs_volume(
        outer,
        server=provisioner.server,
        path=f"{provisioner.nfs_path.rstrip('/')}/{namespace}",
        storage_class=storage_class,
        provisioned_by=provisioner.name,
        claim_ref={
            "namespace": namespace,
            "name": "gone",
            "uid": "00000000-0000-0000-0000-000000000000",
        },
    )
    try:
        event = wait_for(
            lambda: next(
                (
                    e
                    for e in cluster.events("default", name=outer, reason="VolumeFailedDelete")
                    if "holds the directories of other PersistentVolumes" in e["message"]
                ),
                None,
            ),
            what="the refusal to delete the outer volume",
        )
        assert cluster.claim(namespace, "db")["spec"]["volumeName"] in event["message"]  # type: ignore[index]
        assert (export / namespace / "db" / "data").read_text() == "db"
        assert cluster.volume(outer) is not None
    finally:
        cluster.delete_volume(outer)
