"""Root squash for real: what a root provisioner can and cannot do on squashing exports."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable

import pytest
from devcluster import ControlPlane
from nfsworld import Squash

from tests.e2e.harness import Cluster, Provisioner, wait_for
from tests.nfs.conftest import MakeNfsExport, NfsExport

MakeProvisioner = Callable[..., Provisioner]
ANONYMOUS = 65534


@pytest.mark.parametrize("squash", [Squash.ROOT, Squash.ALL], ids=lambda s: s.value)
def test_an_owner_asked_for_behind_squash_is_explained_and_mode_only_classes_work(
    cluster: Cluster,
    namespace: str,
    make_nfs_export: MakeNfsExport,
    make_provisioner: MakeProvisioner,
    squash: Squash,
) -> None:
    target = make_nfs_export(squash)
    provisioner = make_provisioner(on=target)
    owned = cluster.create_storage_class(
        provisioner.name, parameters={"uid": "1234", "gid": "2345"}
    )
    lenient = cluster.create_storage_class(
        provisioner.name, parameters={"allowClaimOwnership": "true"}
    )
    mode_only = cluster.create_storage_class(provisioner.name, parameters={"mode": "0750"})
    cluster.create_claim(namespace, "by-class", storage_class=owned)
    cluster.create_claim(
        namespace, "by-claim", storage_class=lenient, annotations={"nfs.io/uid": "1234"}
    )
    cluster.create_claim(namespace, "mode", storage_class=mode_only)

    for claim in ("by-class", "by-claim"):
        event = cluster.wait_event(namespace, claim, "ProvisioningFailed", source=provisioner.name)
        for needle in ("to uid 1234", "squashes root", "no_root_squash"):
            assert needle in event["message"], (needle, event["message"])
    volume = cluster.volume(cluster.wait_bound(namespace, "mode")["spec"]["volumeName"])
    assert volume is not None
    name = volume["spec"]["nfs"]["path"].rsplit("/", 1)[-1]
    made = (target.backing / name).stat()
    assert (made.st_uid, made.st_gid, stat.S_IMODE(made.st_mode)) == (ANONYMOUS, ANONYMOUS, 0o750)

    wait_for(
        lambda: (
            provisioner.metric("nfs_provisioner_workqueue_retries_total", {"queue": "claims"}) >= 4
        ),
        what="the refused claims to be retried",
    )
    # Each attempt removes the directory it made; a retry may be between the two right now.
    wait_for(
        lambda: sorted(p.name for p in target.backing.iterdir()) == [name],
        what="nothing left behind by the refused claims",
    )
    for claim in ("by-class", "by-claim"):
        found = cluster.claim(namespace, claim)
        assert found is not None and found["status"]["phase"] == "Pending"


def test_no_root_squash_gives_directories_their_owner(
    cluster: Cluster,
    namespace: str,
    make_nfs_export: MakeNfsExport,
    make_provisioner: MakeProvisioner,
) -> None:
    target = make_nfs_export(Squash.NONE)
    provisioner = make_provisioner(on=target)
    owned = cluster.create_storage_class(
        provisioner.name, parameters={"uid": "1234", "gid": "2345", "mode": "2770"}
    )
    cluster.create_claim(namespace, "data", storage_class=owned)
    volume = cluster.volume(cluster.wait_bound(namespace, "data")["spec"]["volumeName"])
    assert volume is not None
    made = (target.backing / volume["spec"]["nfs"]["path"].rsplit("/", 1)[-1]).stat()
    assert (made.st_uid, made.st_gid, stat.S_IMODE(made.st_mode)) == (1234, 2345, 0o2770)


def _doctor(target: NfsExport, plane: ControlPlane) -> dict[str, dict[str, str]]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "nfs_provisioner",
            "doctor",
            "--output",
            "json",
            "--mount-path",
            str(target.path),
            "--nfs-path",
            target.nfs_path,
            "--provisioner-name",
            "test.local/doctor",
        ],
        env={**os.environ, "KUBECONFIG": str(plane.kubeconfig)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 1, 2), done.stderr
    return {check["name"]: check for check in json.loads(done.stdout)["checks"]}


@pytest.mark.parametrize(
    ("squash", "squashed"),
    [(Squash.ROOT, True), (Squash.NONE, False), (Squash.ALL, True)],
    ids=lambda v: v.value if isinstance(v, Squash) else None,
)
def test_doctor_knows_the_fuse_nfs_mount_and_probes_root_squash(
    control_plane: ControlPlane, make_nfs_export: MakeNfsExport, squash: Squash, squashed: bool
) -> None:
    target = make_nfs_export(squash)
    checks = _doctor(target, control_plane)

    assert checks["mount"]["status"] == "pass", checks["mount"]
    assert "fuse.fuse-nfs" in checks["mount"]["message"]
    # libnfs speaks NFSv3 unless the URL asks otherwise, and doctor says what that means.
    assert checks["nfs-version"]["status"] == "warn"
    assert checks["nfs-version"]["message"].startswith("NFS version 3:")
    assert checks["export-path"]["status"] == "pass", checks["export-path"]
    assert checks["writable"]["status"] == "pass", checks["writable"]
    root_squash = checks["root-squash"]
    if squashed:
        assert root_squash["status"] == "warn"
        assert f"owned by uid {ANONYMOUS}" in root_squash["message"]
    else:
        assert root_squash["status"] == "pass", root_squash
    assert list(target.backing.iterdir()) == []
