"""Deletion on the real control plane: what happens to a released volume's directory."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.harness import Cluster, Provisioner, require_root, unique, wait_for

MakeProvisioner = Callable[..., Provisioner]


def _provision(
    cluster: Cluster, namespace: str, storage_class: str, name: str, **claim_options: object
) -> tuple[str, Path]:
    """Create a claim, wait until it is Bound, write a file into its directory."""
    cluster.create_claim(namespace, name, storage_class=storage_class, **claim_options)  # type: ignore[arg-type]
    claim = cluster.wait_bound(namespace, name)
    pv_name = claim["spec"]["volumeName"]
    volume = cluster.volume(pv_name)
    assert volume is not None
    return pv_name, Path(volume["spec"]["nfs"]["path"])


def _wait_gone(cluster: Cluster, pv_name: str) -> None:
    wait_for(lambda: cluster.volume(pv_name) is None, what=f"PV {pv_name} to be deleted")


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({"onDelete": "delete"}, "removed"),
        ({"onDelete": "delete", "archiveOnDelete": "true"}, "removed"),
        ({"onDelete": "retain"}, "kept"),
        ({"onDelete": "retain", "archiveOnDelete": "false"}, "kept"),
        ({"archiveOnDelete": "false"}, "removed"),
        ({"archiveOnDelete": "true"}, "archived"),
        ({}, "archived"),
    ],
)
def test_released_volume_directory_follows_the_class(
    cluster: Cluster,
    namespace: str,
    export: Path,
    make_provisioner: MakeProvisioner,
    parameters: dict[str, str],
    expected: str,
) -> None:
    provisioner = make_provisioner()
    storage_class = cluster.create_storage_class(provisioner.name, parameters=parameters)
    pv_name, _ = _provision(cluster, namespace, storage_class, "data")
    directory_name = f"{namespace}-data-{pv_name}"
    (export / directory_name / "payload.txt").write_text("keep me?")

    cluster.delete_claim(namespace, "data")
    _wait_gone(cluster, pv_name)

    archive = export / f"archived-{directory_name}"
    if expected == "removed":
        assert not (export / directory_name).exists()
        assert not archive.exists()
    elif expected == "kept":
        assert (export / directory_name / "payload.txt").read_text() == "keep me?"
        assert not archive.exists()
    else:
        assert not (export / directory_name).exists()
        assert (archive / "payload.txt").read_text() == "keep me?"
    assert (
        provisioner.metric("controller_persistentvolume_delete_total", {"class": storage_class})
        == 1
    )


def test_nested_directory_is_archived_at_the_top_of_the_export(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner()
    storage_class = cluster.create_storage_class(
        provisioner.name, parameters={"pathPattern": "${.PVC.namespace}/${.PVC.name}"}
    )
    pv_name, _ = _provision(cluster, namespace, storage_class, "nested")
    (export / namespace / "nested" / "db").write_text("rows")

    cluster.delete_claim(namespace, "nested")
    _wait_gone(cluster, pv_name)

    assert not (export / namespace / "nested").exists()
    assert (export / "archived-nested" / "db").read_text() == "rows"


def test_invalid_archive_on_delete_keeps_the_directory_and_reports(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner()
    name = unique("sc")
    cluster.create_storage_class(provisioner.name, name=name)
    pv_name, _ = _provision(cluster, namespace, name, "data")
    directory = export / f"{namespace}-data-{pv_name}"
    (directory / "payload.txt").write_text("precious")
    # StorageClass parameters are immutable: replace the class under the same name.
    cluster.delete_storage_class(name)
    wait_for(
        lambda: (
            name
            not in [
                sc["metadata"]["name"]
                for sc in cluster.api.get("/apis/storage.k8s.io/v1/storageclasses")["items"]
            ]
        ),
        what="class deletion",
    )
    cluster.create_storage_class(
        provisioner.name, name=name, parameters={"archiveOnDelete": "maybe"}
    )

    cluster.delete_claim(namespace, "data")
    event = cluster.wait_event("default", pv_name, "VolumeFailedDelete")
    assert event["type"] == "Warning"
    assert "archiveOnDelete" in event["message"] and '"maybe"' in event["message"]
    assert (directory / "payload.txt").read_text() == "precious"
    assert cluster.volume(pv_name) is not None
    assert (
        provisioner.metric("controller_persistentvolume_delete_failed_total", {"class": name}) >= 1
    )
    cluster.delete_storage_class(name)


def test_retain_reclaim_policy_touches_nothing(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner()
    storage_class = cluster.create_storage_class(
        provisioner.name, reclaim_policy="Retain", parameters={"onDelete": "delete"}
    )
    pv_name, _ = _provision(cluster, namespace, storage_class, "kept")
    directory = export / f"{namespace}-kept-{pv_name}"

    cluster.delete_claim(namespace, "kept")
    wait_for(
        lambda: (cluster.volume(pv_name) or {}).get("status", {}).get("phase") == "Released",
        what="Released",
    )
    # Resync and retries have had time to act; nothing may have.
    wait_for(lambda: provisioner.metric("nfs_provisioner_workqueue_depth") == 0, what="idle queues")
    assert directory.is_dir()
    assert cluster.volume(pv_name) is not None
    cluster.delete_volume(pv_name)


def test_volume_of_another_provisioner_is_never_touched(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner()
    storage_class = cluster.create_storage_class(
        provisioner.name, parameters={"onDelete": "delete"}
    )
    directory = export / "foreign-data"
    directory.mkdir()
    (directory / "file").write_text("not yours")
    pv_name = unique("foreign-pv")
    # Bound from both sides before our provisioner could see an unbound claim.
    cluster.create_nfs_volume(
        pv_name,
        server=provisioner.server,
        path="/exports/volumes/foreign-data",
        storage_class=storage_class,
        provisioned_by="example.test/other-provisioner",
        claim_ref={"namespace": namespace, "name": "foreign"},
    )
    cluster.create_claim(
        namespace, "foreign", storage_class=storage_class, extra_spec={"volumeName": pv_name}
    )
    cluster.wait_bound(namespace, "foreign")
    cluster.delete_claim(namespace, "foreign")
    wait_for(
        lambda: (
            (cluster.volume(pv_name) or {}).get("status", {}).get("phase") in ("Released", "Failed")
        ),
        what="volume released",
    )
    wait_for(lambda: provisioner.metric("nfs_provisioner_workqueue_depth") == 0, what="idle queues")
    assert (directory / "file").read_text() == "not yours"
    assert cluster.volume(pv_name) is not None
    assert provisioner.metric("controller_persistentvolume_delete_total") == 0
    cluster.delete_volume(pv_name)


def test_a_hostile_tree_is_removed_without_following_links_or_crossing_a_mount(
    cluster: Cluster,
    namespace: str,
    export: Path,
    tmp_path: Path,
    make_provisioner: MakeProvisioner,
) -> None:
    """What a pod can leave in its volume: a tree deeper than any recursion limit, FIFOs,
    links to outside, and (with a privileged pod) a mount; none of it steers the removal."""
    require_root("mount a filesystem inside a volume")
    provisioner = make_provisioner()
    storage_class = cluster.create_storage_class(
        provisioner.name, parameters={"onDelete": "delete"}
    )
    pv_name, _ = _provision(cluster, namespace, storage_class, "data")
    volume = export / f"{namespace}-data-{pv_name}"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel").write_text("keep me")
    fd = os.open(volume, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(3000):
            os.mkdir("d", dir_fd=fd)
            os.mkfifo("fifo", dir_fd=fd)
            os.symlink(str(outside), "escape", dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
    finally:
        os.close(fd)
    mount_point = volume / "mnt"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(mount_point)], check=True)
    try:
        (mount_point / "mounted-data").write_text("not the volume's")
        cluster.delete_claim(namespace, "data")
        event = cluster.wait_event("default", pv_name, "VolumeFailedDelete")
        assert f'"{volume.name}/mnt"' in event["message"], event["message"]
        assert "mount point" in event["message"] and "unmount it" in event["message"]
        # Everything else went; the mount and what is in it did not.
        wait_for(
            lambda: sorted(p.name for p in volume.iterdir()) == ["mnt"],
            what="the rest of the volume removed",
        )
        assert (mount_point / "mounted-data").read_text() == "not the volume's"
        assert cluster.volume(pv_name) is not None
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)
    # Unmounted, the next retry finishes the job.
    _wait_gone(cluster, pv_name)
    assert not volume.exists()
    assert (outside / "sentinel").read_text() == "keep me"
