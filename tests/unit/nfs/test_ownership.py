"""Owner, group and mode of new directories: class parameters, claim annotations, failures."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from nfs_provisioner.nfs import (
    ExportRoot,
    InvalidAnnotationError,
    InvalidParameterError,
    NFSBackend,
    Ownership,
    ProvisionRequest,
    StorageError,
    parse_class_parameters,
    resolve_ownership,
)

PV = "pvc-0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9"
DIRECTORY = f"ns-claim-{PV}"


def _request(parameters: dict[str, str], annotations: dict[str, str] | None = None) -> Any:
    claim = {
        "metadata": {
            "name": "claim",
            "namespace": "ns",
            "uid": PV.removeprefix("pvc-"),
            "annotations": annotations or {},
        },
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    storage_class = {"metadata": {"name": "nfs"}, "parameters": parameters}
    return ProvisionRequest(pv_name=PV, claim=claim, storage_class=storage_class)


@pytest.fixture
def backend(tmp_path: Path) -> NFSBackend:
    (tmp_path / "export").mkdir()
    return NFSBackend(server="nfs", export_path="/srv", mount_path=tmp_path / "export")


def test_class_parameters_are_parsed() -> None:
    options = parse_class_parameters(
        {"uid": "1000", "gid": "2000", "mode": "0770", "allowClaimOwnership": "true"}
    )
    assert options.ownership == Ownership(uid=1000, gid=2000, mode=0o770)
    assert options.allow_claim_ownership is True


def test_without_parameters_directories_are_0777_and_keep_their_owner() -> None:
    assert parse_class_parameters({}).ownership == Ownership(uid=None, gid=None, mode=0o777)


@pytest.mark.parametrize(
    ("value", "mode"), [("0770", 0o770), ("770", 0o770), ("2775", 0o2775), ("000", 0)]
)
def test_modes_are_octal(value: str, mode: int) -> None:
    assert parse_class_parameters({"mode": value}).mode == mode


@pytest.mark.parametrize(
    ("parameter", "value", "accepted"),
    [
        ("uid", "root", "a number from 0 to 4294967294"),
        ("uid", "-1", "a number from 0 to 4294967294"),
        ("uid", "4294967295", "a number from 0 to 4294967294"),
        ("gid", "1e3", "a number from 0 to 4294967294"),
        ("gid", "\uff11", "a number from 0 to 4294967294"),
        ("mode", "0o770", "an octal mode"),
        ("mode", "rwxrwx---", "an octal mode"),
        ("mode", "0778", "an octal mode"),
        ("mode", "77", "an octal mode"),
        ("mode", "07777777", "an octal mode"),
        ("allowClaimOwnership", "yes", "true, false"),
    ],
)
def test_bad_values_name_the_parameter(parameter: str, value: str, accepted: str) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        parse_class_parameters({parameter: value})
    assert caught.value.parameter == parameter
    assert f'StorageClass parameter "{parameter}" has invalid value' in str(caught.value)
    assert accepted in str(caught.value)


def test_claim_annotations_are_ignored_unless_the_class_allows_them() -> None:
    from_class = Ownership(uid=1, gid=2, mode=0o750)
    annotations = {"nfs.io/uid": "7", "nfs.io/gid": "nonsense", "nfs.io/mode": "0700"}
    assert resolve_ownership(from_class, allow_claim=False, annotations=annotations) == from_class


def test_claim_annotations_override_the_class_field_by_field() -> None:
    resolved = resolve_ownership(
        Ownership(uid=1, gid=2, mode=0o750),
        allow_claim=True,
        annotations={"nfs.io/uid": "7", "nfs.io/mode": "0700"},
    )
    assert resolved == Ownership(uid=7, gid=2, mode=0o700)


@pytest.mark.parametrize(
    ("annotation", "value"),
    [("nfs.io/uid", "alice"), ("nfs.io/gid", ""), ("nfs.io/mode", "u=rwx")],
)
def test_bad_claim_annotation_is_named(annotation: str, value: str) -> None:
    with pytest.raises(InvalidAnnotationError) as caught:
        resolve_ownership(Ownership(), allow_claim=True, annotations={annotation: value})
    assert str(caught.value).startswith(f'claim annotation "{annotation}" has invalid value')


def test_provisioned_directory_gets_the_class_mode_whatever_the_umask(
    backend: NFSBackend, tmp_path: Path
) -> None:
    previous = os.umask(0o077)
    try:
        backend.provision(_request({"mode": "2770"}))
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "export" / DIRECTORY).stat().st_mode) == 0o2770


@pytest.mark.skipif(os.geteuid() != 0, reason="only root may give a directory to another uid")
def test_provisioned_directory_gets_the_claims_owner_when_allowed(
    backend: NFSBackend, tmp_path: Path
) -> None:
    backend.provision(
        _request(
            {"uid": "1000", "gid": "1000", "mode": "0750", "allowClaimOwnership": "true"},
            {"nfs.io/uid": "4321", "nfs.io/mode": "0700"},
        )
    )
    info = (tmp_path / "export" / DIRECTORY).stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (4321, 1000, 0o700)


def test_bad_annotation_fails_before_anything_is_created(
    backend: NFSBackend, tmp_path: Path
) -> None:
    with pytest.raises(InvalidAnnotationError):
        backend.provision(_request({"allowClaimOwnership": "true"}, {"nfs.io/gid": "staff"}))
    assert list((tmp_path / "export").iterdir()) == []


def test_failed_chown_explains_root_squash_and_leaves_no_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(fd: int, uid: int, gid: int) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "fchown", refuse)
    root = ExportRoot(tmp_path)
    with pytest.raises(StorageError) as caught:
        root.create_directory(PurePosixPath("ns/claim"), 0o770, uid=1000)
    message = str(caught.value)
    assert 'cannot give directory "ns/claim"' in message
    assert "to uid 1000" in message
    assert "root_squash" in message
    assert "no_root_squash" in message
    assert not (tmp_path / "ns" / "claim").exists()


def test_failed_chown_of_a_reused_directory_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "data").write_text("x")

    def refuse(fd: int, uid: int, gid: int) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "fchown", refuse)
    with pytest.raises(StorageError):
        ExportRoot(tmp_path).create_directory(PurePosixPath("kept"), gid=5)
    assert (tmp_path / "kept" / "data").read_text() == "x"


def test_chown_leaves_the_unnamed_id_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "fchown", lambda fd, uid, gid: calls.append((uid, gid)))
    monkeypatch.setattr(ExportRoot, "_check_owner_kept", lambda *args: None)
    ExportRoot(tmp_path).create_directory(PurePosixPath("a"), gid=5)
    ExportRoot(tmp_path).create_directory(PurePosixPath("b"), uid=6)
    ExportRoot(tmp_path).create_directory(PurePosixPath("c"))
    assert calls == [(-1, 5), (6, -1)]


def test_an_owner_the_server_silently_maps_is_a_refused_chown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NFS-Ganesha with all_squash: chown "succeeds" and the owner stays the anonymous user.
    monkeypatch.setattr(os, "fchown", lambda fd, uid, gid: None)
    wanted = os.geteuid() + 1
    with pytest.raises(StorageError, match=f"to uid {wanted}: the server kept uid"):
        ExportRoot(tmp_path).create_directory(PurePosixPath("a"), uid=wanted)
    assert list(tmp_path.iterdir()) == []
