"""An export the squashed provisioner cannot write, on the real server: a Warning event,
nothing created, and the claim served once the export's mode is fixed on the server."""

from __future__ import annotations

from collections.abc import Callable

from tests.e2e.harness import Cluster, Provisioner
from tests.nfs.conftest import NfsExport

MakeProvisioner = Callable[..., Provisioner]


def test_an_export_squashed_root_cannot_write_fails_clearly_and_recovers(
    cluster: Cluster, namespace: str, nfs_export: NfsExport, make_provisioner: MakeProvisioner
) -> None:
    # Root-owned and 0755 on the server: root on the client is the anonymous user there.
    nfs_export.backing.chmod(0o755)
    provisioner = make_provisioner()
    storage_class = cluster.create_storage_class(provisioner.name)
    cluster.create_claim(namespace, "data", storage_class=storage_class)
    event = cluster.wait_event(namespace, "data", "ProvisioningFailed", source=provisioner.name)
    assert event["type"] == "Warning"
    # A kernel NFS client reports EACCES here, and the event then explains root squash;
    # fuse-nfs loses mkdir's error and reports the ENOENT of the chmod it sends after it.
    assert "cannot create directory" in event["message"]
    assert list(nfs_export.backing.iterdir()) == []
    nfs_export.backing.chmod(0o777)
    cluster.wait_bound(namespace, "data", timeout=120)
    assert provisioner.process is not None and provisioner.process.poll() is None
