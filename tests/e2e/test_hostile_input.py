"""Hostile claims, classes and volumes: nothing outside the export is ever touched."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.harness import Cluster, Provisioner, unique, wait_for

MakeProvisioner = Callable[..., Provisioner]
PATTERN = "${.PVC.annotations.nfs.io/storage-path}"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the export with a file the provisioner must never touch."""
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "precious").write_text("do not touch")
    return directory


def _snapshot(directory: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(directory)), p.stat().st_mode) for p in directory.rglob("*"))


@pytest.mark.parametrize(
    "hostile",
    [
        "../../etc",
        "../outside",
        "a/../../outside",
        "..",
        "/../outside",
        "archived-data",
        "ok\x01/bad",
        "x" * 300,
    ],
)
def test_hostile_annotation_fails_and_creates_nothing(
    cluster: Cluster,
    namespace: str,
    export: Path,
    outside: Path,
    make_provisioner: MakeProvisioner,
    hostile: str,
) -> None:
    provisioner = make_provisioner()
    storage_class = cluster.create_storage_class(
        provisioner.name, parameters={"pathPattern": PATTERN}
    )
    before = _snapshot(outside)
    cluster.create_claim(
        namespace, "evil", storage_class=storage_class, annotations={"nfs.io/storage-path": hostile}
    )
    event = cluster.wait_event(namespace, "evil", "ProvisioningFailed", source=provisioner.name)
    assert event["type"] == "Warning"
    assert "pathPattern" in event["message"]
    assert list(export.iterdir()) == []
    assert _snapshot(outside) == before
    assert cluster.claim(namespace, "evil")["status"]["phase"] == "Pending"  # type: ignore[index]


def test_symlink_planted_in_the_export_is_not_followed(
    cluster: Cluster,
    namespace: str,
    export: Path,
    outside: Path,
    make_provisioner: MakeProvisioner,
) -> None:
    provisioner = make_provisioner()
    storage_class = cluster.create_storage_class(
        provisioner.name, parameters={"pathPattern": PATTERN}
    )
    (export / "shared").symlink_to(outside)
    before = _snapshot(outside)
    cluster.create_claim(
        namespace,
        "follow",
        storage_class=storage_class,
        annotations={"nfs.io/storage-path": "shared/sub"},
    )
    event = cluster.wait_event(namespace, "follow", "ProvisioningFailed", source=provisioner.name)
    assert "symbolic link" in event["message"] or "symlink" in event["message"]
    assert _snapshot(outside) == before
    assert not (outside / "sub").exists()


def test_volume_pointing_outside_the_export_is_never_removed_or_renamed(
    cluster: Cluster,
    namespace: str,
    export: Path,
    outside: Path,
    make_provisioner: MakeProvisioner,
) -> None:
    provisioner = make_provisioner(nfs_path="/exports/volumes")
    storage_class = cluster.create_storage_class(
        provisioner.name, parameters={"onDelete": "delete"}
    )
    # PV sources are immutable, so the "edited" PV is one of ours created with a bad path.
    victims = {
        "sibling": "/exports/volumesX/data",
        "escape": "/exports/volumes/../outside",
        "root": "/exports/volumes",
        "elsewhere": str(outside),
    }
    before = _snapshot(outside)
    names = []
    for label, path in victims.items():
        pv_name = unique(f"hostile-{label}")
        names.append(pv_name)
        cluster.create_nfs_volume(
            pv_name,
            server=provisioner.server,
            path=path,
            storage_class=storage_class,
            provisioned_by=provisioner.name,
            claim_ref={"namespace": namespace, "name": label},
        )
        # Bound from the claim side too, so the provisioner never sees it unbound.
        cluster.create_claim(
            namespace, label, storage_class=storage_class, extra_spec={"volumeName": pv_name}
        )
        cluster.wait_bound(namespace, label)
        cluster.delete_claim(namespace, label)
    for pv_name in names:
        event = cluster.wait_event("default", pv_name, "VolumeFailedDelete")
        assert "refusing to touch it" in event["message"]
        assert cluster.volume(pv_name) is not None
    assert _snapshot(outside) == before
    assert export.exists() and list(export.iterdir()) == []
    for pv_name in names:
        cluster.delete_volume(pv_name)


def test_two_archives_with_the_same_name_both_survive(
    cluster: Cluster,
    export: Path,
    make_provisioner: MakeProvisioner,
) -> None:
    provisioner = make_provisioner()
    storage_class = cluster.create_storage_class(
        provisioner.name, parameters={"pathPattern": "${.PVC.namespace}/data"}
    )
    namespaces = [cluster.create_namespace("twin"), cluster.create_namespace("twin")]
    for namespace in namespaces:
        cluster.create_claim(namespace, "db", storage_class=storage_class)
        cluster.wait_bound(namespace, "db")
        (export / namespace / "data" / "owner").write_text(namespace)
    for namespace in namespaces:
        cluster.delete_claim(namespace, "db")
        wait_for(
            lambda ns=namespace: not (export / ns / "data").exists(),  # type: ignore[misc]
            what="archive",
        )
    archives = sorted(p for p in export.iterdir() if p.name.startswith("archived-data"))
    assert len(archives) == 2
    assert sorted((a / "owner").read_text() for a in archives) == sorted(namespaces)


@pytest.mark.parametrize(
    ("parameters", "named", "accepted"),
    [
        ({"archiveOnDelete": "maybe"}, "archiveOnDelete", "true, false"),
        ({"onDelete": "shred"}, "onDelete", "delete, retain"),
        ({"onDelete": ""}, "onDelete", "delete, retain"),
        ({"archiveOndelete": "true"}, "archiveOndelete", "archiveOnDelete, onDelete, pathPattern"),
    ],
)
def test_every_invalid_class_parameter_fails_by_name_and_others_keep_working(
    cluster: Cluster,
    namespace: str,
    make_provisioner: MakeProvisioner,
    parameters: dict[str, str],
    named: str,
    accepted: str,
) -> None:
    provisioner = make_provisioner()
    bad = cluster.create_storage_class(provisioner.name, parameters=parameters)
    good = cluster.create_storage_class(provisioner.name)
    cluster.create_claim(namespace, "bad", storage_class=bad)
    event = cluster.wait_event(namespace, "bad", "ProvisioningFailed", source=provisioner.name)
    assert f'"{named}"' in event["message"]
    assert accepted in event["message"]
    cluster.create_claim(namespace, "good", storage_class=good)
    cluster.wait_bound(namespace, "good")
    assert os.path.exists(provisioner.export)
