"""Archive retention (a sweep on the leader only) and ``nfs-provisioner audit``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from nfs_provisioner.nfs import ArchiveMarker, ExportRoot
from nfs_provisioner.nfs import archives as registry
from nfs_provisioner.nfs.retention import decode_marker, encode_marker
from tests.e2e.harness import Cluster, Provisioner, wait_for

MakeProvisioner = Callable[..., Provisioner]
DAY = 86400.0


def _marker(name: str, inode: int, days_old: float, retention_days: float | None) -> ArchiveMarker:
    return ArchiveMarker(
        archived_at=datetime.now(UTC) - timedelta(days=days_old),
        retention=None if retention_days is None else retention_days * DAY,
        storage_class="nfs",
        volume=None,
        archive=name,
        inode=inode,
    )


def _archive(export: Path, name: str, *, days_old: float, retention_days: float | None) -> Path:
    """An archive as the provisioner registers one when it archives a volume."""
    archive = export / name
    archive.mkdir()
    (archive / "data.txt").write_text(name)
    marker = _marker(name, archive.stat().st_ino, days_old, retention_days)
    registry.record(ExportRoot(export), marker)
    return archive


def _removed(provisioner: Provisioner) -> float:
    return provisioner.metric("nfs_provisioner_archives_removed_total")


def test_sweep_removes_only_expired_archives_and_only_on_the_leader(
    export: Path, make_provisioner: MakeProvisioner
) -> None:
    _archive(export, "archived-expired", days_old=2, retention_days=1)
    young = _archive(export, "archived-young", days_old=2, retention_days=30)
    forever = _archive(export, "archived-forever", days_old=400, retention_days=None)
    go_made = export / "archived-from-go"
    go_made.mkdir()
    live = export / "ns-claim-pvc-1"
    live.mkdir()
    fast = {"NFS_PROVISIONER_ARCHIVE_SWEEP_INTERVAL": "0.2s"}
    leader = make_provisioner(leader_election=True, extra_env=fast)
    wait_for(lambda: leader.metric("nfs_provisioner_leader") == 1, what="a leader")
    standby = make_provisioner(leader_election=True, extra_env=fast)

    wait_for(lambda: not (export / "archived-expired").exists(), what="the expired archive to go")
    _archive(export, "archived-expired-later", days_old=1.5, retention_days=1)
    wait_for(lambda: not (export / "archived-expired-later").exists(), what="the later one to go")

    # A sweep counts and logs its removals once it has looked at every archive.
    wait_for(lambda: _removed(leader) == 2, what="both removals to be counted")
    assert _removed(standby) == 0
    assert standby.metric("nfs_provisioner_leader") == 0
    assert sorted(p.name for p in export.iterdir()) == sorted(
        [young.name, forever.name, go_made.name, live.name, registry.REGISTRY.name]
    )
    removals = [r for r in leader.log_records() if r.get("event") == "expired archive removed"]
    assert sorted(r["archive"] for r in removals) == [
        f"{leader.server}:{leader.nfs_path}/archived-expired",
        f"{leader.server}:{leader.nfs_path}/archived-expired-later",
    ]
    assert not [r for r in standby.log_records() if r.get("event") == "expired archive removed"]


def test_archives_record_the_retention_of_their_class(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner()
    storage_class = cluster.create_storage_class(
        provisioner.name, parameters={"archiveRetention": "30d"}
    )
    cluster.create_claim(namespace, "data", storage_class=storage_class)
    pv_name = cluster.wait_bound(namespace, "data")["spec"]["volumeName"]
    cluster.delete_claim(namespace, "data")
    wait_for(lambda: cluster.volume(pv_name) is None, what="the volume to be archived")

    name = f"archived-{namespace}-data-{pv_name}"
    marker = decode_marker((export / registry.entry_for(name)).read_bytes())
    assert marker.inode == (export / name).stat().st_ino
    assert (marker.storage_class, marker.retention, marker.volume) == (
        storage_class,
        30 * DAY,
        pv_name,
    )
    assert timedelta(0) <= datetime.now(UTC) - marker.archived_at < timedelta(minutes=5)


def _audit(provisioner: Provisioner, *arguments: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "NFS_SERVER": provisioner.server,
        "NFS_PATH": provisioner.nfs_path,
        "NFS_MOUNT_PATH": str(provisioner.export),
        "PROVISIONER_NAME": provisioner.name,
        "KUBECONFIG": str(provisioner.plane.kubeconfig),
    }
    return subprocess.run(
        [sys.executable, "-m", "nfs_provisioner", "audit", *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _by(items: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {item[key]: item for item in items}


def test_audit_lists_orphans_and_archives_and_prunes_only_expired_archives(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner(extra_env={"NFS_PROVISIONER_ARCHIVE_SWEEP_INTERVAL": "0"})
    storage_class = cluster.create_storage_class(
        provisioner.name, parameters={"archiveRetention": "7d"}
    )
    for claim in ("live", "lost", "released"):
        cluster.create_claim(namespace, claim, storage_class=storage_class)
    volumes = {
        claim: cluster.wait_bound(namespace, claim)["spec"]["volumeName"]
        for claim in ("live", "lost", "released")
    }
    shutil.rmtree(export / f"{namespace}-lost-{volumes['lost']}")
    cluster.delete_claim(namespace, "released")
    wait_for(lambda: cluster.volume(volumes["released"]) is None, what="the archive")
    (export / "ns-old-pvc-1" / "data").mkdir(parents=True)
    _archive(export, "archived-expired", days_old=10, retention_days=7)
    (export / "archived-from-go").mkdir()
    before = sorted(str(p.relative_to(export)) for p in export.rglob("*"))

    listed = _audit(provisioner, "--output", "json")
    assert listed.returncode == 2, listed.stderr  # findings: an orphan, a lost directory
    report = json.loads(listed.stdout)
    assert report["directoriesWithoutVolume"] == [
        {"export": f"{provisioner.server}:{provisioner.nfs_path}", "directory": "ns-old-pvc-1"}
    ]
    (missing,) = report["volumesWithoutDirectory"]
    assert missing["name"] == volumes["lost"]
    assert missing["claim"] == f"{namespace}/lost"
    assert "does not exist" in missing["problem"]
    archives = _by(report["archives"], "name")
    released = f"archived-{namespace}-released-{volumes['released']}"
    assert set(archives) == {released, "archived-expired", "archived-from-go"}
    assert archives[released]["storageClass"] == storage_class
    assert archives[released]["retentionSeconds"] == 7 * DAY
    assert archives[released]["expiresInSeconds"] > 6 * DAY
    assert archives["archived-expired"]["expiresInSeconds"] < 0
    assert archives["archived-from-go"]["ageSeconds"] is None
    assert "pruned" not in report
    assert sorted(str(p.relative_to(export)) for p in export.rglob("*")) == before

    text = _audit(provisioner)
    assert text.returncode == 2, text.stderr
    for heading in (
        "Directories without a PersistentVolume (1)",
        f"PersistentVolumes of {provisioner.name} without a directory (1)",
        "Archives (3)",
    ):
        assert heading in text.stdout
    assert "never (no marker)" in text.stdout

    pruned = _audit(provisioner, "--prune")
    assert pruned.returncode == 2, pruned.stderr
    assert "Pruned (1)" in pruned.stdout
    assert f"removed {provisioner.server}:{provisioner.nfs_path}/archived-expired" in pruned.stdout
    after = sorted(str(p.relative_to(export)) for p in export.rglob("*"))
    entry = str(registry.entry_for("archived-expired"))
    assert after == [p for p in before if not p.startswith("archived-expired") and p != entry]
    assert cluster.volume(volumes["lost"]) is not None


def test_live_volumes_are_never_swept_whatever_their_name_or_content(
    cluster: Cluster, export: Path, make_provisioner: MakeProvisioner
) -> None:
    """A namespace named like an archive, a pod forging markers, hostile registry files."""
    provisioner = make_provisioner(extra_env={"NFS_PROVISIONER_ARCHIVE_SWEEP_INTERVAL": "0.2s"})
    storage_class = cluster.create_storage_class(provisioner.name)
    namespace = cluster.create_namespace("archived")
    cluster.create_claim(namespace, "data", storage_class=storage_class)
    pv_name = cluster.wait_bound(namespace, "data")["spec"]["volumeName"]
    volume = export / f"{namespace}-data-{pv_name}"
    assert volume.name.startswith("archived-")
    # What a pod can write into its own volume: markers of every kind, long expired.
    forged = encode_marker(_marker(volume.name, volume.stat().st_ino, 400, 1))
    (volume / ".nfs-provisioner-archive.json").write_bytes(forged)
    (volume / registry.REGISTRY).mkdir()
    (volume / registry.entry_for(volume.name)).write_bytes(forged)
    # Files nobody should be able to plant in the registry; the sweep must survive them.
    _archive(export, "archived-expired", days_old=2, retention_days=1)
    for name, data in {
        "archived-deep": b"[" * 16000,
        "archived-huge": forged.replace(
            b'"retentionSeconds": 86400.0', b'"retentionSeconds": 1' + b"0" * 400
        ),
    }.items():
        (export / registry.entry_for(name)).write_bytes(data)

    wait_for(lambda: not (export / "archived-expired").exists(), what="the expired archive to go")
    wait_for(
        lambda: [
            r
            for r in provisioner.log_records()
            if r.get("event") == "cannot remove expired archive"
        ],
        what="the hostile registry files to be reported",
    )
    assert (volume / ".nfs-provisioner-archive.json").read_bytes() == forged
    assert cluster.claim(namespace, "data")["status"]["phase"] == "Bound"
    assert provisioner.metric("nfs_provisioner_archives_removed_total") == 1
    assert provisioner.metric("nfs_provisioner_archive_sweep_errors_total") >= 2


def test_audit_prune_keeps_an_expired_archive_that_a_volume_uses(
    cluster: Cluster, export: Path, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner(extra_env={"NFS_PROVISIONER_ARCHIVE_SWEEP_INTERVAL": "0"})
    archive = _archive(export, "archived-reused", days_old=10, retention_days=7)
    name = f"pv-{archive.stat().st_ino}"
    cluster.create_nfs_volume(
        name, server=provisioner.server, path=f"{provisioner.nfs_path}/archived-reused"
    )
    try:
        pruned = _audit(provisioner, "--prune")
        assert pruned.returncode == 1
        assert f"PersistentVolume {name} uses it; it is kept" in pruned.stdout
        assert (archive / "data.txt").read_text() == "archived-reused"
    finally:
        cluster.delete_volume(name)
