"""Claims served on a real NFS export, and what a kubelet mounting their volumes sees."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
from collections.abc import Callable

import pytest
from nfsworld import Squash, nfs_url

from tests.e2e.harness import Cluster, Provisioner, wait_for
from tests.nfs.conftest import MakeNfsExport, NfsExport

MakeProvisioner = Callable[..., Provisioner]
# The uid a pod runs as.
POD_UID = 1000


def _volumes_of(cluster: Cluster, namespace: str) -> list[str]:
    return [
        v["metadata"]["name"]
        for v in cluster.volumes()
        if (v["spec"].get("claimRef") or {}).get("namespace") == namespace
        and v["spec"].get("persistentVolumeReclaimPolicy") == "Delete"
    ]


def _directory_name(volume: dict[str, object]) -> str:
    path = volume["spec"]["nfs"]["path"]  # type: ignore[index]
    return str(path).rsplit("/", 1)[-1]


@pytest.mark.parametrize(
    ("squash", "owner"), [(Squash.ROOT, 65534), (Squash.NONE, 0)], ids=["root_squash", "no_root"]
)
def test_claims_get_directories_on_the_server_and_release_follows_the_class(
    cluster: Cluster,
    namespace: str,
    make_nfs_export: MakeNfsExport,
    make_provisioner: MakeProvisioner,
    squash: Squash,
    owner: int,
) -> None:
    target = make_nfs_export(squash)
    provisioner = make_provisioner(on=target)
    fates = {"archived": {"archiveOnDelete": "true"}, "removed": {"archiveOnDelete": "false"}}
    fates["kept"] = {"onDelete": "retain"}
    directories = {}
    for fate, parameters in fates.items():
        storage_class = cluster.create_storage_class(provisioner.name, parameters=parameters)
        cluster.create_claim(namespace, fate, storage_class=storage_class)
    for fate in fates:
        claim = cluster.wait_bound(namespace, fate)
        volume = cluster.volume(claim["spec"]["volumeName"])
        assert volume is not None
        name = _directory_name(volume)
        # The PV names the directory as the server exports it: a kubelet mounts exactly this.
        assert volume["spec"]["nfs"] == {"server": "127.0.0.1", "path": f"{target.nfs_path}/{name}"}
        on_server = (target.backing / name).stat()
        # Root squash makes root's mkdir the anonymous user's; the mode is set all the same.
        assert (on_server.st_uid, stat.S_IMODE(on_server.st_mode)) == (owner, 0o777)
        (target.path / name / "data").write_text(fate)
        directories[fate] = name

    for fate in fates:
        cluster.delete_claim(namespace, fate)
    archived = target.backing / f"archived-{directories['archived']}"
    wait_for(archived.is_dir, what="the archive on the server")
    wait_for(lambda: not (target.backing / directories["removed"]).exists(), what="removal")
    wait_for(lambda: not _volumes_of(cluster, namespace), what="the released volumes to go")
    assert (archived / "data").read_text() == "archived"
    assert not (target.backing / directories["archived"]).exists()
    assert (target.backing / directories["kept"] / "data").read_text() == "kept"
    assert provisioner.process is not None and provisioner.process.poll() is None


def _as_pod(*argv: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["setpriv", f"--reuid={POD_UID}", f"--regid={POD_UID}", "--clear-groups", *argv],
        capture_output=True,
        check=True,
        timeout=60,
    )


def test_what_a_pod_writes_through_its_own_mount_is_what_the_archive_keeps(
    cluster: Cluster, namespace: str, nfs_export: NfsExport, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner()
    storage_class = cluster.create_storage_class(
        provisioner.name, parameters={"archiveOnDelete": "true"}
    )
    cluster.create_claim(namespace, "data", storage_class=storage_class)
    volume = cluster.volume(cluster.wait_bound(namespace, "data")["spec"]["volumeName"])
    assert volume is not None
    spec = volume["spec"]["nfs"]
    # What a kubelet mounts for this PV: its own server:path, not the provisioner's export.
    kubelet = nfs_export.world.mount(nfs_url(spec["server"], spec["path"]))
    payload = secrets.token_bytes(300_000)
    source = nfs_export.world.workdir / f"payload-{os.getpid()}"
    source.write_bytes(payload)
    source.chmod(0o644)
    try:
        _as_pod("cp", str(source), str(kubelet.path / "blob"))
        _as_pod("mkdir", str(kubelet.path / "sub"))
        _as_pod("sh", "-c", f"echo written-by-pod > {kubelet.path / 'sub' / 'note'}")
    finally:
        nfs_export.world.unmount(kubelet)
        source.unlink()

    name = _directory_name(volume)
    through_provisioner = nfs_export.path / name / "blob"
    wait_for(through_provisioner.exists, what="the pod's file through the export")
    assert through_provisioner.read_bytes() == payload
    # AUTH_SYS carries the pod's uid to the server: the file is the pod's there too.
    assert (nfs_export.backing / name / "blob").stat().st_uid == POD_UID

    cluster.delete_claim(namespace, "data")
    archive = nfs_export.backing / f"archived-{name}"
    wait_for(archive.is_dir, what="the archive")
    assert (archive / "blob").read_bytes() == payload
    assert (archive / "sub" / "note").read_text() == "written-by-pod\n"
    assert (nfs_export.path / f"archived-{name}" / "blob").read_bytes() == payload


def test_a_file_a_pod_holds_open_after_unlinking_it_does_not_stop_deletion(
    cluster: Cluster, namespace: str, nfs_export: NfsExport, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner()
    storage_class = cluster.create_storage_class(
        provisioner.name, parameters={"archiveOnDelete": "false"}
    )
    cluster.create_claim(namespace, "data", storage_class=storage_class)
    volume = cluster.volume(cluster.wait_bound(namespace, "data")["spec"]["volumeName"])
    assert volume is not None
    spec = volume["spec"]["nfs"]
    name = _directory_name(volume)
    kubelet = nfs_export.world.mount(nfs_url(spec["server"], spec["path"]))
    try:
        held = kubelet.path / "scratch"
        held.write_bytes(b"open and unlinked")
        with held.open("rb") as pod_file:
            held.unlink()
            # The client keeps the unlinked file on the server under a hidden name while it is
            # open: FUSE's .fuse_hidden*, a kernel NFS client's .nfs* (silly rename).
            hidden = [p.name for p in (nfs_export.backing / name).iterdir()]
            assert len(hidden) == 1 and hidden[0].startswith(".fuse_hidden"), hidden
            cluster.delete_claim(namespace, "data")
            wait_for(
                lambda: not (nfs_export.backing / name).exists(),
                what="the released volume's directory, hidden file and all, to be removed",
            )
            # The pod's open file is gone from under it, as on any NFS client (a kernel client
            # says ESTALE; fuse-nfs says EFAULT).
            pod_file.seek(0)
            with pytest.raises(OSError):
                pod_file.read()
    finally:
        nfs_export.world.unmount(kubelet)
    assert list(nfs_export.backing.iterdir()) == []
    assert provisioner.process is not None and provisioner.process.poll() is None
