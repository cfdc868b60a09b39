"""Several exports from one deployment: classes choose one, deletion finds it again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nfs_provisioner.nfs.archives import REGISTRY
from tests.e2e.harness import Cluster, Provisioner, unique, wait_for

MakeProvisioner = Callable[..., Provisioner]
SECOND_SERVER = "nfs2.example.test"
SECOND_SHARE = "/exports/second"


def _two_exports(make_provisioner: MakeProvisioner, tmp_path: Path) -> tuple[Provisioner, Path]:
    second = tmp_path / "second"
    second.mkdir()
    provisioner = make_provisioner(
        extra_env={
            "NFS_PROVISIONER_EXTRA_EXPORTS": f" {SECOND_SERVER}:{SECOND_SHARE}/={second} ",
        }
    )
    return provisioner, second


def test_two_exports_are_served_and_deletion_finds_the_right_one(
    cluster: Cluster,
    namespace: str,
    export: Path,
    tmp_path: Path,
    make_provisioner: MakeProvisioner,
) -> None:
    provisioner, second = _two_exports(make_provisioner, tmp_path)
    first_class = cluster.create_storage_class(provisioner.name)
    second_class = cluster.create_storage_class(
        provisioner.name, parameters={"server": SECOND_SERVER, "share": SECOND_SHARE}
    )
    cluster.create_claim(namespace, "one", storage_class=first_class)
    cluster.create_claim(namespace, "two", storage_class=second_class)
    pv_one = cluster.wait_bound(namespace, "one")["spec"]["volumeName"]
    pv_two = cluster.wait_bound(namespace, "two")["spec"]["volumeName"]

    volume_two = cluster.volume(pv_two)
    assert volume_two is not None
    assert volume_two["spec"]["nfs"] == {
        "server": SECOND_SERVER,
        "path": f"{SECOND_SHARE}/{namespace}-two-{pv_two}",
    }
    assert [p.name for p in export.iterdir()] == [f"{namespace}-one-{pv_one}"]
    assert [p.name for p in second.iterdir()] == [f"{namespace}-two-{pv_two}"]
    (second / f"{namespace}-two-{pv_two}" / "payload").write_text("two")

    cluster.delete_claim(namespace, "one")
    cluster.delete_claim(namespace, "two")
    for pv_name in (pv_one, pv_two):
        wait_for(lambda name=pv_name: cluster.volume(name) is None, what=f"{pv_name} to go")
    assert sorted(p.name for p in export.iterdir()) == [
        REGISTRY.name,
        f"archived-{namespace}-one-{pv_one}",
    ]
    archive = second / f"archived-{namespace}-two-{pv_two}"
    assert sorted(p.name for p in second.iterdir()) == [REGISTRY.name, archive.name]
    assert (archive / "payload").read_text() == "two"


def test_a_class_naming_an_unmounted_export_fails_clearly(
    cluster: Cluster,
    namespace: str,
    export: Path,
    tmp_path: Path,
    make_provisioner: MakeProvisioner,
) -> None:
    provisioner, second = _two_exports(make_provisioner, tmp_path)
    storage_class = cluster.create_storage_class(
        provisioner.name, parameters={"server": "nfs9.example.test", "share": SECOND_SHARE}
    )
    cluster.create_claim(namespace, "data", storage_class=storage_class)
    event = cluster.wait_event(namespace, "data", "ProvisioningFailed", source=provisioner.name)
    message = event["message"]
    assert 'server "nfs9.example.test" and share "/exports/second" name no export' in message
    assert f"{provisioner.server}:{provisioner.nfs_path} (mounted at {export})" in message
    assert f"{SECOND_SERVER}:{SECOND_SHARE} (mounted at {second})" in message
    assert list(export.iterdir()) == list(second.iterdir()) == []


def test_a_volume_in_no_mounted_export_is_never_deleted(
    cluster: Cluster,
    namespace: str,
    tmp_path: Path,
    make_provisioner: MakeProvisioner,
) -> None:
    provisioner, second = _two_exports(make_provisioner, tmp_path)
    (second / "data").mkdir()
    storage_class = cluster.create_storage_class(
        provisioner.name, parameters={"onDelete": "delete"}
    )
    pv_name = unique("elsewhere")
    # The right path on the wrong server: with several exports the server must match too.
    cluster.create_nfs_volume(
        pv_name,
        server="nfs9.example.test",
        path=f"{SECOND_SHARE}/data",
        storage_class=storage_class,
        provisioned_by=provisioner.name,
        claim_ref={"namespace": namespace, "name": "data"},
    )
    cluster.create_claim(
        namespace, "data", storage_class=storage_class, extra_spec={"volumeName": pv_name}
    )
    cluster.wait_bound(namespace, "data")
    cluster.delete_claim(namespace, "data")
    event = cluster.wait_event("default", pv_name, "VolumeFailedDelete")
    assert "in none of the mounted exports" in event["message"]
    assert cluster.volume(pv_name) is not None
    assert (second / "data").is_dir()
    cluster.delete_volume(pv_name)


def test_an_extra_export_that_is_not_mounted_stops_the_start(
    tmp_path: Path, make_provisioner: MakeProvisioner
) -> None:
    missing = tmp_path / "not-mounted"
    try:
        make_provisioner(
            extra_env={"NFS_PROVISIONER_EXTRA_EXPORTS": f"{SECOND_SERVER}:/x={missing}"}
        )
    except AssertionError as error:
        assert "exited with 1" in str(error)
        assert f"the extra export {SECOND_SERVER}:/x is not mounted at {missing}" in str(error)
    else:
        raise AssertionError("the provisioner started without its extra export")
