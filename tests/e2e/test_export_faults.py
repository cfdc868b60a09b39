"""Export faults: not writable, root-squashed, full, or changed behind the provisioner's back.

Each fault gives a Warning event that says what to fix, retries with backoff, no crash, and
recovery once fixed. Faults that need root to stage (another uid, a small tmpfs) skip with
the reason when not run as root; CI runs as root, so there they run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from devcluster import ControlPlane

from tests.e2e.harness import (
    NOBODY,
    Cluster,
    Provisioner,
    require_root,
    unprivileged,
    wait_for,
)

MakeProvisioner = Callable[..., Provisioner]


def _assert_fails_then_recovers(
    cluster: Cluster,
    namespace: str,
    provisioner: Provisioner,
    needles: list[str],
    fix: Callable[[], None],
) -> None:
    storage_class = cluster.create_storage_class(provisioner.name)
    cluster.create_claim(namespace, "data", storage_class=storage_class)
    event = cluster.wait_event(namespace, "data", "ProvisioningFailed", source=provisioner.name)
    assert event["type"] == "Warning"
    for needle in needles:
        assert needle in event["message"], (needle, event["message"])
    wait_for(
        lambda: (
            provisioner.metric("nfs_provisioner_workqueue_retries_total", {"queue": "claims"}) >= 2
        ),
        what="retries",
    )
    assert provisioner.process is not None and provisioner.process.poll() is None
    assert cluster.claim(namespace, "data")["status"]["phase"] == "Pending"  # type: ignore[index]
    fix()
    cluster.wait_bound(namespace, "data")


def test_root_owned_export_and_unprivileged_provisioner_explain_root_squash(
    cluster: Cluster,
    control_plane: ControlPlane,
    namespace: str,
    public_dir: Path,
    make_provisioner: MakeProvisioner,
) -> None:
    require_root("run the provisioner as another uid against a root-owned export")
    export = public_dir / "export"
    export.mkdir(mode=0o755)
    provisioner = unprivileged(make_provisioner, control_plane, public_dir, export)
    _assert_fails_then_recovers(
        cluster,
        namespace,
        provisioner,
        ["permission denied", f"writable by uid {NOBODY}", "root_squash"],
        fix=lambda: export.chmod(0o777),
    )
    (directory,) = export.iterdir()
    assert directory.stat().st_uid == NOBODY


def test_read_only_mode_export_fails_clearly_and_recovers(
    cluster: Cluster,
    control_plane: ControlPlane,
    namespace: str,
    public_dir: Path,
    make_provisioner: MakeProvisioner,
) -> None:
    require_root("run the provisioner as another uid")
    export = public_dir / "export"
    export.mkdir()
    os.chown(export, NOBODY, NOBODY)
    export.chmod(0o555)
    provisioner = unprivileged(make_provisioner, control_plane, public_dir, export)
    _assert_fails_then_recovers(
        cluster,
        namespace,
        provisioner,
        ["permission denied", "check the export's mode"],
        fix=lambda: export.chmod(0o755),
    )


def test_full_export_fails_clearly_and_recovers(
    cluster: Cluster, namespace: str, public_dir: Path, make_provisioner: MakeProvisioner
) -> None:
    require_root("mount a small tmpfs")
    export = public_dir / "export"
    export.mkdir()
    subprocess.run(
        [
            "mount",
            "-t",
            "tmpfs",
            "-o",
            "size=256k,nr_inodes=16,mode=0777",
            "nfs-provisioner-test",
            str(export),
        ],
        check=True,
    )
    try:
        fillers = []
        for index in range(64):
            try:
                filler = export / f"filler-{index}"
                filler.write_bytes(b"")
                fillers.append(filler)
            except OSError:
                break
        provisioner = make_provisioner(export=export)

        def free_space() -> None:
            for filler in fillers:
                filler.unlink()

        _assert_fails_then_recovers(
            cluster, namespace, provisioner, ["no space left on the export"], fix=free_space
        )
        provisioner.stop()
    finally:
        subprocess.run(["umount", str(export)], check=True)


def test_directory_removed_behind_the_provisioners_back(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner()
    storage_class = cluster.create_storage_class(provisioner.name)
    cluster.create_claim(namespace, "vanishing", storage_class=storage_class)
    pv_name = cluster.wait_bound(namespace, "vanishing")["spec"]["volumeName"]
    shutil.rmtree(export / f"{namespace}-vanishing-{pv_name}")

    cluster.delete_claim(namespace, "vanishing")
    wait_for(lambda: cluster.volume(pv_name) is None, what="the PV to be deleted")
    event = cluster.wait_event("default", pv_name, "VolumeStorageMissing")
    assert event["type"] == "Warning"
    assert "already gone" in event["message"]
    assert list(export.iterdir()) == []
    assert provisioner.process is not None and provisioner.process.poll() is None
