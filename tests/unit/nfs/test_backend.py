import stat
from pathlib import Path
from typing import Any

import pytest

from nfs_provisioner.nfs import (
    DeleteOutcome,
    InvalidParameterError,
    NFSBackend,
    ProvisionRequest,
    UnsafePathError,
    UnsupportedClaimError,
    archives,
)
from nfs_provisioner.nfs.archives import REGISTRY
from nfs_provisioner.nfs.errors import StorageError
from nfs_provisioner.nfs.filesystem import staging_name
from nfs_provisioner.storage import BackendError

PV = "pvc-0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9"
DEFAULT_DIRECTORY = f"ns-claim-{PV}"


@pytest.fixture
def export(tmp_path: Path) -> Path:
    path = tmp_path / "export"
    path.mkdir()
    return path


@pytest.fixture
def backend(export: Path) -> NFSBackend:
    return NFSBackend(server="nfs.example", export_path="/srv/nfs/", mount_path=export)


def claim(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": "claim",
            "namespace": "ns",
            "uid": PV.removeprefix("pvc-"),
            "labels": {"team": "blue"},
            "annotations": {"nfs.io/storage-path": "data/x"},
        },
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "resources": {"requests": {"storage": "1Gi"}},
            **spec,
        },
    }


def storage_class(**parameters: str) -> dict[str, Any]:
    return {"metadata": {"name": "nfs"}, "provisioner": "p", "parameters": parameters}


def provision(backend: NFSBackend, **parameters: str) -> dict[str, Any]:
    return backend.provision(
        ProvisionRequest(pv_name=PV, claim=claim(), storage_class=storage_class(**parameters))
    )


def test_provision_default_directory(backend: NFSBackend, export: Path) -> None:
    volume = provision(backend)
    assert volume["spec"]["nfs"] == {
        "server": "nfs.example",
        "path": f"/srv/nfs/{DEFAULT_DIRECTORY}",
        "readOnly": False,
    }
    assert volume["spec"]["capacity"] == {"storage": "1Gi"}
    assert stat.S_IMODE((export / DEFAULT_DIRECTORY).stat().st_mode) == 0o777


def test_provision_with_path_pattern(backend: NFSBackend, export: Path) -> None:
    volume = provision(
        backend, pathPattern="${.PVC.labels.team}/${.PVC.annotations.nfs.io/storage-path}"
    )
    assert volume["spec"]["nfs"]["path"] == "/srv/nfs/blue/data/x"
    assert (export / "blue" / "data" / "x").is_dir()


def test_provision_is_idempotent(backend: NFSBackend, export: Path) -> None:
    first = provision(backend)
    (export / DEFAULT_DIRECTORY / "file").write_text("data")
    assert provision(backend) == first
    assert (export / DEFAULT_DIRECTORY / "file").read_text() == "data"


def test_provision_refuses_selector(backend: NFSBackend, export: Path) -> None:
    request = ProvisionRequest(pv_name=PV, claim=claim(selector={}), storage_class=storage_class())
    with pytest.raises(UnsupportedClaimError) as caught:
        backend.provision(request)
    assert str(caught.value) == "claim Selector is not supported"
    assert list(export.iterdir()) == []


def test_provision_refuses_bad_parameters_before_touching_disk(
    backend: NFSBackend, export: Path
) -> None:
    with pytest.raises(InvalidParameterError):
        provision(backend, archiveOnDelete="maybe")
    assert list(export.iterdir()) == []


def test_provision_refuses_unsafe_pattern_before_touching_disk(
    backend: NFSBackend, export: Path
) -> None:
    with pytest.raises(UnsafePathError, match="leaves the export"):
        provision(backend, pathPattern="../${.PVC.name}")
    assert list(export.iterdir()) == []


def test_provision_refuses_claim_without_request_before_touching_disk(
    backend: NFSBackend, export: Path
) -> None:
    request = ProvisionRequest(pv_name=PV, claim=claim(resources={}), storage_class=storage_class())
    with pytest.raises(UnsupportedClaimError):
        backend.provision(request)
    assert list(export.iterdir()) == []


def test_backend_does_not_support_block() -> None:
    assert NFSBackend.supports_block is False


@pytest.mark.parametrize(
    ("parameters", "outcome", "remains"),
    [
        ({}, DeleteOutcome.ARCHIVED, {"blue", "archived-x", REGISTRY.name}),
        (
            {"archiveOnDelete": "true"},
            DeleteOutcome.ARCHIVED,
            {"blue", "archived-x", REGISTRY.name},
        ),
        ({"archiveOnDelete": "false"}, DeleteOutcome.REMOVED, {"blue"}),
        ({"onDelete": "delete"}, DeleteOutcome.REMOVED, {"blue"}),
        ({"onDelete": "retain", "archiveOnDelete": "false"}, DeleteOutcome.RETAINED, {"blue"}),
    ],
)
def test_delete_per_policy(
    backend: NFSBackend,
    export: Path,
    parameters: dict[str, str],
    outcome: DeleteOutcome,
    remains: set[str],
) -> None:
    pattern = {"pathPattern": "${.PVC.labels.team}/${.PVC.annotations.nfs.io/storage-path}"}
    volume = provision(backend, **pattern)
    (export / "blue" / "data" / "x" / "file").write_text("data")
    the_class = storage_class(**pattern, **parameters)
    assert backend.delete(volume, the_class) is outcome
    assert {p.name for p in export.iterdir()} == remains
    if outcome is DeleteOutcome.ARCHIVED:
        assert (export / "archived-x" / "file").read_text() == "data"
    if outcome is DeleteOutcome.RETAINED:
        assert (export / "blue" / "data" / "x" / "file").read_text() == "data"
    if outcome is DeleteOutcome.REMOVED:
        assert not (export / "blue" / "data" / "x").exists()
    assert backend.delete(volume, the_class) is (
        DeleteOutcome.RETAINED if outcome is DeleteOutcome.RETAINED else DeleteOutcome.ALREADY_GONE
    )


def test_delete_without_storage_class_archives(backend: NFSBackend, export: Path) -> None:
    volume = provision(backend)
    assert backend.delete(volume, None) is DeleteOutcome.ARCHIVED
    assert {p.name for p in export.iterdir()} == {f"archived-{DEFAULT_DIRECTORY}", REGISTRY.name}


def test_delete_twice_archived_keeps_both(backend: NFSBackend, export: Path) -> None:
    for version in ("v1", "v2"):
        volume = provision(backend)
        (export / DEFAULT_DIRECTORY / "file").write_text(version)
        assert backend.delete(volume, storage_class()) is DeleteOutcome.ARCHIVED
    contents = sorted((p / "file").read_text() for p in export.glob("archived-*"))
    assert contents == ["v1", "v2"]


def test_delete_missing_directory_is_already_gone(backend: NFSBackend) -> None:
    volume = provision(backend)
    backend.delete(volume, storage_class(onDelete="delete"))
    for the_class in (storage_class(), storage_class(onDelete="retain"), None):
        assert backend.delete(volume, the_class) is DeleteOutcome.ALREADY_GONE


def test_delete_missing_directory_with_bad_parameters_is_already_gone(
    backend: NFSBackend,
) -> None:
    volume = provision(backend)
    backend.delete(volume, storage_class(onDelete="delete"))
    assert backend.delete(volume, storage_class(onDelete="Delete")) is DeleteOutcome.ALREADY_GONE


def test_delete_with_bad_parameters_leaves_the_directory(backend: NFSBackend, export: Path) -> None:
    volume = provision(backend)
    with pytest.raises(InvalidParameterError, match="archiveOnDelete"):
        backend.delete(volume, storage_class(archiveOnDelete="nope"))
    assert (export / DEFAULT_DIRECTORY).is_dir()


@pytest.mark.parametrize(
    "path", ["/srv/nfsX/d", "/srv/nfs", "/srv/nfs/", "/srv/nfs/../nfs/d", "/other/d"]
)
def test_delete_refuses_volumes_outside_the_export(
    backend: NFSBackend, export: Path, path: str
) -> None:
    (export / "d").mkdir()
    volume = {"metadata": {"name": PV}, "spec": {"nfs": {"server": "s", "path": path}}}
    with pytest.raises(UnsafePathError, match="refusing to touch it"):
        backend.delete(volume, storage_class(onDelete="delete"))
    assert (export / "d").is_dir()


def test_discard_removes_the_fresh_empty_directory_whatever_the_class(
    backend: NFSBackend, export: Path
) -> None:
    volume = provision(backend)
    assert backend.discard(volume) is DeleteOutcome.REMOVED
    assert list(export.iterdir()) == []
    assert backend.discard(volume) is DeleteOutcome.ALREADY_GONE


def test_discard_keeps_a_directory_that_holds_data(backend: NFSBackend, export: Path) -> None:
    # pathPattern can point a new claim at a directory that already holds data.
    volume = provision(backend)
    (directory,) = export.iterdir()
    (directory / "data").write_text("existing")
    assert backend.discard(volume) is DeleteOutcome.RETAINED
    assert (directory / "data").read_text() == "existing"
    assert not any(p.name.startswith("archived-") for p in export.iterdir())


def test_nested_default_export_root_round_trip(tmp_path: Path) -> None:
    backend = NFSBackend(server="s", export_path="/", mount_path=tmp_path)
    volume = provision(backend, pathPattern="${.PVC.namespace}/${.PVC.name}")
    assert volume["spec"]["nfs"]["path"] == "/ns/claim"
    assert backend.delete(volume, storage_class(onDelete="delete")) is DeleteOutcome.REMOVED
    assert [p.name for p in tmp_path.iterdir()] == ["ns"]
    assert list((tmp_path / "ns").iterdir()) == []


@pytest.mark.parametrize(
    ("parameters", "outcome"),
    [
        ({"onDelete": "delete"}, DeleteOutcome.REMOVED),
        ({"archiveOnDelete": "true"}, DeleteOutcome.ARCHIVED),
        ({"onDelete": "retain"}, DeleteOutcome.RETAINED),
    ],
)
def test_a_staging_directory_left_behind_goes_with_the_volume(
    backend: NFSBackend, export: Path, parameters: dict[str, str], outcome: DeleteOutcome
) -> None:
    """Found by the soak (hack/soak): a leader stopped past its lease mid-provisioning ended
    between making the staging directory and renaming it, while the new leader provisioned the
    claim; no later attempt came to clear it."""
    volume = provision(backend, **parameters)
    left = export / staging_name(DEFAULT_DIRECTORY)
    left.mkdir()
    (left / "partial").write_text("half a copy")
    assert backend.delete(volume, storage_class(**parameters)) is outcome
    assert not left.exists()


def test_a_staging_directory_of_a_gone_volume_is_cleared_too(
    backend: NFSBackend, export: Path
) -> None:
    volume = provision(backend)
    (export / DEFAULT_DIRECTORY).rmdir()
    left = export / staging_name(DEFAULT_DIRECTORY)
    left.mkdir()
    assert backend.delete(volume, storage_class()) is DeleteOutcome.ALREADY_GONE
    assert list(export.iterdir()) == []


def test_a_marker_the_export_refuses_fails_the_deletion_and_the_retry_records_it(
    backend: NFSBackend, export: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the soak (hack/soak, export-full, nfs-restart): the PV was deleted anyway and
    the archive stayed out of the registry for good (never expiring, not restorable by claim)."""
    volume = provision(backend)
    (export / DEFAULT_DIRECTORY / "file").write_text("data")
    real_record = archives.record

    def refuse(*_: Any) -> None:
        raise StorageError("cannot write the marker: No space left on device")

    monkeypatch.setattr(archives, "record", refuse)
    with pytest.raises(BackendError, match="the PersistentVolume is kept"):
        backend.delete(volume, storage_class())
    archived = export / f"archived-{DEFAULT_DIRECTORY}"
    assert (archived / "file").read_text() == "data"
    assert not (export / REGISTRY).exists()

    monkeypatch.setattr(archives, "record", real_record)
    assert backend.delete(volume, storage_class()) is DeleteOutcome.ARCHIVED
    (entry,) = archives.registered(backend.root_of(backend.exports.default))
    assert entry.marker is not None
    assert entry.marker.archive == archived.name
    assert entry.marker.volume == PV
    assert entry.marker.inode == archived.stat().st_ino
