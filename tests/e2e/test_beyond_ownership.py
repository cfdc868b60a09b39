"""Owner, group and mode of new directories, set by the class and, when it allows, the claim."""

from __future__ import annotations

import os
import stat
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


def _directory(cluster: Cluster, namespace: str, claim: str, export: Path) -> os.stat_result:
    pv_name = cluster.wait_bound(namespace, claim)["spec"]["volumeName"]
    return (export / f"{namespace}-{claim}-{pv_name}").stat()


def test_class_and_allowed_claims_set_owner_group_and_mode(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    require_root("give directories to other uids")
    provisioner = make_provisioner()
    strict = cluster.create_storage_class(
        provisioner.name, parameters={"uid": "1234", "gid": "2345", "mode": "0750"}
    )
    lenient = cluster.create_storage_class(
        provisioner.name,
        parameters={"uid": "1234", "gid": "2345", "mode": "2770", "allowClaimOwnership": "true"},
    )
    wishes = {"nfs.io/uid": "4321", "nfs.io/mode": "0700"}
    cluster.create_claim(namespace, "plain", storage_class=strict)
    cluster.create_claim(namespace, "ignored", storage_class=strict, annotations=wishes)
    cluster.create_claim(namespace, "honoured", storage_class=lenient, annotations=wishes)
    cluster.create_claim(namespace, "class-wide", storage_class=lenient)

    def owner(claim: str) -> tuple[int, int, int]:
        info = _directory(cluster, namespace, claim, export)
        return info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)

    assert owner("plain") == (1234, 2345, 0o750)
    assert owner("ignored") == (1234, 2345, 0o750)
    assert owner("honoured") == (4321, 2345, 0o700)
    assert owner("class-wide") == (1234, 2345, 0o2770)


def test_bad_values_fail_by_name_and_leave_nothing_behind(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner()
    bad_mode = cluster.create_storage_class(provisioner.name, parameters={"mode": "0999"})
    lenient = cluster.create_storage_class(
        provisioner.name, parameters={"allowClaimOwnership": "true"}
    )
    cluster.create_claim(namespace, "mode", storage_class=bad_mode)
    cluster.create_claim(
        namespace, "owner", storage_class=lenient, annotations={"nfs.io/uid": "alice"}
    )
    event = cluster.wait_event(namespace, "mode", "ProvisioningFailed", source=provisioner.name)
    assert 'StorageClass parameter "mode" has invalid value "0999"' in event["message"]
    assert 'such as "0770"' in event["message"]
    event = cluster.wait_event(namespace, "owner", "ProvisioningFailed", source=provisioner.name)
    assert 'claim annotation "nfs.io/uid" has invalid value "alice"' in event["message"]
    assert list(export.iterdir()) == []


def test_chown_refused_to_a_non_root_provisioner_explains_root_squash(
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
    provisioner = unprivileged(make_provisioner, control_plane, public_dir, export)
    storage_class = cluster.create_storage_class(provisioner.name, parameters={"uid": "1234"})
    cluster.create_claim(namespace, "data", storage_class=storage_class)

    event = cluster.wait_event(namespace, "data", "ProvisioningFailed", source=provisioner.name)
    assert event["type"] == "Warning"
    for needle in ("to uid 1234", f"runs as uid {NOBODY}, not root", "root_squash"):
        assert needle in event["message"], (needle, event["message"])
    wait_for(
        lambda: (
            provisioner.metric("nfs_provisioner_workqueue_retries_total", {"queue": "claims"}) >= 2
        ),
        what="retries",
    )
    # Each attempt removes the directory it made; a retry may be between the two right now.
    wait_for(lambda: list(export.iterdir()) == [], what="no directory left behind")
    assert provisioner.process is not None and provisioner.process.poll() is None


def test_claims_are_held_to_the_class_bounds(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner()
    bounded = cluster.create_storage_class(
        provisioner.name,
        parameters={"allowClaimOwnership": "true", "claimUidRange": "1000-65535"},
    )
    wishes = {
        "root-uid": ({"nfs.io/uid": "0"}, '"claimUidRange": 1000-65535'),
        "far-uid": ({"nfs.io/uid": "70000"}, '"claimUidRange": 1000-65535'),
        "root-gid": (
            {"nfs.io/gid": "0"},
            '0 (root) only if the StorageClass parameter "claimGidRange"',
        ),
        "setuid": ({"nfs.io/mode": "4777"}, '"allowClaimSpecialModes" to "true"'),
    }
    for claim, (asked, _) in wishes.items():
        cluster.create_claim(namespace, claim, storage_class=bounded, annotations=asked)
    for claim, (asked, needle) in wishes.items():
        event = cluster.wait_event(namespace, claim, "ProvisioningFailed", source=provisioner.name)
        (annotation,) = asked
        assert f'claim annotation "{annotation}" has invalid value' in event["message"]
        assert needle in event["message"], event["message"]
    assert list(export.iterdir()) == []
