"""The NFS backend's clone (a copy in a staging directory) and restore (an archive moved back)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from nfs_provisioner.nfs import (
    NFSBackend,
    ProvisionRequest,
    StorageError,
    UnsupportedClaimError,
    copying,
)
from nfs_provisioner.nfs import archives as registry
from nfs_provisioner.nfs.exports import Export
from nfs_provisioner.nfs.filesystem import STAGING_PREFIX, ExportRoot
from nfs_provisioner.nfs.restores import ANN_RESTORE_FROM, restore_command
from nfs_provisioner.storage import CloneCancelledError, CloneProgress

SOURCE_PV = "pvc-source"
PV = "pvc-new"


@pytest.fixture
def export(tmp_path: Path) -> Path:
    path = tmp_path / "export"
    path.mkdir()
    return path


@pytest.fixture
def backend(export: Path) -> NFSBackend:
    return NFSBackend(server="nfs.example", export_path="/srv", mount_path=export)


def claim(
    name: str, *, uid: str, namespace: str = "ns", annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "annotations": annotations or {},
        },
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}},
    }


def storage_class(**parameters: str) -> dict[str, Any]:
    return {"metadata": {"name": "nfs"}, "provisioner": "p", "parameters": parameters}


def request(name: str, pv: str, **options: Any) -> ProvisionRequest:
    parameters = options.pop("parameters", {})
    reports: list[tuple[str, str]] = options.pop("reports", [])
    return ProvisionRequest(
        pv_name=pv,
        claim=claim(name, uid=pv.removeprefix("pvc-"), **options),
        storage_class=storage_class(**parameters),
        report=lambda reason, message: reports.append((reason, message)),
    )


def source_volume(backend: NFSBackend, export: Path) -> dict[str, Any]:
    volume = backend.provision(request("src", SOURCE_PV))
    volume["spec"]["claimRef"] = {"namespace": "ns", "name": "src"}
    backend.track_volume(volume)
    data = export / "ns-src-pvc-source"
    (data / "dir").mkdir()
    (data / "dir" / "file").write_text("payload")
    os.symlink("../../../etc/shadow", data / "escape")
    return volume


def test_a_clone_holds_a_copy_and_reports_what_it_copied(backend: NFSBackend, export: Path) -> None:
    source = source_volume(backend, export)
    reports: list[tuple[str, str]] = []
    progress: list[CloneProgress] = []
    volume = backend.clone(request("copy", PV, reports=reports), source, progress.append)
    copy = export / "ns-copy-pvc-new"
    assert volume["spec"]["nfs"]["path"] == f"/srv/{copy.name}"
    assert (copy / "dir" / "file").read_text() == "payload"
    assert os.readlink(copy / "escape") == "../../../etc/shadow"
    assert (export / "ns-src-pvc-source" / "dir" / "file").read_text() == "payload"
    [(reason, message)] = reports
    assert reason == "CloneCopied"
    assert "copied 1 files, 1 directories and 1 symbolic links (7 bytes)" in message
    assert progress[-1] == CloneProgress(entries=3, bytes=7)
    assert not [p for p in export.iterdir() if p.name.startswith(STAGING_PREFIX)]


def test_a_copy_that_fails_leaves_no_directory_and_the_next_attempt_starts_over(
    backend: NFSBackend, export: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = source_volume(backend, export)
    real_copy = copying.copy_tree

    def crash(source_fd: int, target_fd: int, **options: Any) -> copying.CopyReport:
        os.mkdir("half", dir_fd=target_fd)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("nfs_provisioner.nfs.clones.copy_tree", crash)
    with pytest.raises(StorageError, match="no space left on the export"):
        backend.clone(request("copy", PV), source, lambda _progress: None)
    assert sorted(p.name for p in export.iterdir()) == ["ns-src-pvc-source"]
    assert backend.owners.location_of(PV) is None

    # A process that died mid-copy leaves its staging directory; the next attempt removes it.
    staging = [None]

    def die(source_fd: int, target_fd: int, **options: Any) -> copying.CopyReport:
        os.mkdir("half", dir_fd=target_fd)
        staging[0] = next(p for p in export.iterdir() if p.name.startswith(STAGING_PREFIX))
        raise SystemExit("killed")

    monkeypatch.setattr("nfs_provisioner.nfs.clones.copy_tree", die)
    monkeypatch.setattr(
        "nfs_provisioner.nfs.filesystem.ExportRoot._drop_staging", lambda *args: None
    )
    with pytest.raises(SystemExit):
        backend.clone(request("copy", PV), source, lambda _progress: None)
    assert staging[0] is not None and (staging[0] / "half").is_dir()
    monkeypatch.undo()
    monkeypatch.setattr("nfs_provisioner.nfs.clones.copy_tree", real_copy)
    backend.clone(request("copy", PV), source, lambda _progress: None)
    assert not (export / "ns-copy-pvc-new" / "half").exists()
    assert (export / "ns-copy-pvc-new" / "dir" / "file").read_text() == "payload"
    assert not [p for p in export.iterdir() if p.name.startswith(STAGING_PREFIX)]


def test_a_clone_may_go_to_another_export(tmp_path: Path, export: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    backend = NFSBackend(
        server="nfs.example",
        export_path="/srv",
        mount_path=export,
        extra_exports=[Export.of("nfs2.example", "/data", other)],
    )
    source = source_volume(backend, export)
    backend.clone(
        request("copy", PV, parameters={"server": "nfs2.example", "share": "/data"}),
        source,
        lambda _progress: None,
    )
    assert (other / "ns-copy-pvc-new" / "dir" / "file").read_text() == "payload"


def _archived(backend: NFSBackend, export: Path, name: str, pv: str, namespace: str) -> str:
    volume = backend.provision(request(name, pv, namespace=namespace))
    volume["spec"]["claimRef"] = {"namespace": namespace, "name": name}
    (export / f"{namespace}-{name}-{pv}" / "rows").write_text(f"{namespace}/{name}")
    backend.delete(volume, storage_class())
    return f"archived-{namespace}-{name}-{pv}"


RESTORE = {"allowRestore": "true"}


@pytest.mark.parametrize("wanted", ["by archive name", "by claim"])
def test_an_archive_of_the_same_namespace_is_moved_into_the_new_claim(
    backend: NFSBackend, export: Path, wanted: str
) -> None:
    archive = _archived(backend, export, "db", "pvc-old", "ns")
    value = archive if wanted == "by archive name" else "ns/db"
    reports: list[tuple[str, str]] = []
    backend.provision(
        request(
            "db", PV, annotations={ANN_RESTORE_FROM: value}, parameters=RESTORE, reports=reports
        )
    )
    assert (export / "ns-db-pvc-new" / "rows").read_text() == "ns/db"
    assert not (export / archive).exists()
    assert list(registry.registered(ExportRoot(export))) == []
    assert reports[0][0] == "Restored"


def test_the_newest_archive_of_a_claim_is_restored(backend: NFSBackend, export: Path) -> None:
    first = _archived(backend, export, "db", "pvc-old1", "ns")
    _archived(backend, export, "db", "pvc-old2", "ns")
    backend.provision(
        request("db", PV, annotations={ANN_RESTORE_FROM: "ns/db"}, parameters=RESTORE)
    )
    assert (export / "ns-db-pvc-new").is_dir()
    assert (export / first).is_dir()  # the older one stays an archive


@pytest.mark.parametrize(
    ("annotation", "parameters", "reason"),
    [
        pytest.param(
            "ns/db", {}, r"does not allow restores \(parameter allowRestore\)", id="class"
        ),
        pytest.param("other/db", RESTORE, 'no archive of namespace "ns"', id="other claim"),
        pytest.param(
            "archived-other-db-pvc-old", RESTORE, 'no archive of namespace "ns"', id="other name"
        ),
        pytest.param("ns/ghost", RESTORE, 'no archive of namespace "ns"', id="missing"),
    ],
)
def test_refused_restores_move_nothing(
    backend: NFSBackend, export: Path, annotation: str, parameters: dict[str, str], reason: str
) -> None:
    archive = _archived(backend, export, "db", "pvc-old", "other")
    with pytest.raises(UnsupportedClaimError, match=reason):
        backend.provision(
            request("db", PV, annotations={ANN_RESTORE_FROM: annotation}, parameters=parameters)
        )
    assert (export / archive / "rows").read_text() == "other/db"
    assert not (export / "ns-db-pvc-new").exists()
    assert backend.owners.location_of(PV) is None


def test_an_archive_whose_marker_names_no_claim_cannot_be_restored(
    backend: NFSBackend, export: Path
) -> None:
    """Archives made before markers recorded the claim."""
    archive = _archived(backend, export, "db", "pvc-old", "ns")
    root = ExportRoot(export)
    [found] = registry.registered(root)
    assert found.marker is not None
    assert restore_command(found.marker) is not None
    old = found.marker.__class__(**{**found.marker.__dict__, "claim_namespace": None})
    registry.record(root, old)
    assert restore_command(old) is None
    with pytest.raises(UnsupportedClaimError, match='no archive of namespace "ns"'):
        backend.provision(
            request("db", PV, annotations={ANN_RESTORE_FROM: archive}, parameters=RESTORE)
        )
    assert (export / archive).is_dir()


def test_a_cancelled_copy_leaves_nothing(backend: NFSBackend, export: Path) -> None:
    source = source_volume(backend, export)

    def shutting_down(_progress: CloneProgress) -> None:
        raise CloneCancelledError("the provisioner is shutting down")

    with pytest.raises(CloneCancelledError):
        backend.clone(request("copy", PV), source, shutting_down)
    assert sorted(p.name for p in export.iterdir()) == ["ns-src-pvc-source"]
    assert backend.owners.location_of(PV) is None
