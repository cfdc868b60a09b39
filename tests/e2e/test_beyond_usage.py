"""Per-volume usage metrics, and one warning on the claim when a volume outgrows its size."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.e2e.harness import Cluster, Provisioner, wait_for

MakeProvisioner = Callable[..., Provisioner]
FAST_SCANS = {"NFS_PROVISIONER_USAGE_SCAN_INTERVAL": "0.2s"}


def _scans(provisioner: Provisioner) -> float:
    return provisioner.metric("nfs_provisioner_usage_scans_total")


def _wait_scans(provisioner: Provisioner, count: int) -> None:
    target = _scans(provisioner) + count
    wait_for(lambda: _scans(provisioner) >= target, what=f"{count} more usage scans")


def test_usage_is_exported_and_an_overgrown_volume_warns_once(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner(extra_env=FAST_SCANS)
    storage_class = cluster.create_storage_class(provisioner.name)
    cluster.create_claim(namespace, "data", storage_class=storage_class, size="1Mi")
    pv_name = cluster.wait_bound(namespace, "data")["spec"]["volumeName"]
    directory = export / f"{namespace}-data-{pv_name}"
    (directory / "logs").mkdir()
    (directory / "logs" / "a.log").write_bytes(b"a" * 300 * 1024)
    labels = {"namespace": namespace, "persistentvolumeclaim": "data", "persistentvolume": pv_name}

    def gauges() -> tuple[float, float, float]:
        return (
            provisioner.metric("nfs_provisioner_volume_used_bytes", labels),
            provisioner.metric("nfs_provisioner_volume_used_inodes", labels),
            provisioner.metric("nfs_provisioner_volume_capacity_bytes", labels),
        )

    # Whole scans only: a scan sets a volume's three gauges one after the other.
    _wait_scans(provisioner, 2)
    used_bytes, used_inodes, capacity_bytes = gauges()
    assert used_bytes >= 300 * 1024
    # The directory, "logs" and the file.
    assert used_inodes == 3
    assert capacity_bytes == 1024 * 1024
    assert cluster.events(namespace, name="data", reason="VolumeOverCapacity") == []

    (directory / "logs" / "b.log").write_bytes(b"b" * 2 * 1024 * 1024)
    event = cluster.wait_event(namespace, "data", "VolumeOverCapacity")
    assert event["type"] == "Warning"
    assert f"volume {pv_name} uses 2.3Mi" in event["message"]
    assert "more than its capacity of 1Mi" in event["message"]
    _wait_scans(provisioner, 3)
    (only,) = cluster.events(namespace, name="data", reason="VolumeOverCapacity")
    assert only.get("count", 1) == 1

    cluster.delete_claim(namespace, "data")
    wait_for(lambda: cluster.volume(pv_name) is None, what="the volume to go")
    wait_for(
        lambda: f'persistentvolume="{pv_name}"' not in provisioner.metrics(),
        what="the gauges of the deleted volume to go",
    )


def test_usage_scans_can_be_turned_off(
    cluster: Cluster, namespace: str, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner(extra_env={"NFS_PROVISIONER_USAGE_SCAN_INTERVAL": "0"})
    storage_class = cluster.create_storage_class(provisioner.name)
    cluster.create_claim(namespace, "data", storage_class=storage_class)
    cluster.wait_bound(namespace, "data")
    # Another provisioner's scans make sure enough time passed for a first scan of this one.
    other = make_provisioner(name=f"{provisioner.name}-other", extra_env=FAST_SCANS)
    _wait_scans(other, 2)
    assert _scans(provisioner) == 0
    assert "nfs_provisioner_volume_used_bytes{" not in provisioner.metrics()
