"""Owner, group and mode of new directories: class parameters, claim annotations, failures."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from nfs_provisioner.nfs import (
    ClassOptions,
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
from nfs_provisioner.nfs.ownership import ClaimBounds, IdRanges, parse_id_ranges

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


def test_a_reused_directory_keeps_its_owner_and_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "kept").mkdir(mode=0o700)
    (tmp_path / "kept" / "data").write_text("x")
    before = (tmp_path / "kept").stat()

    def refuse(*_: object) -> None:
        raise AssertionError("a reused directory must not be chown-ed or chmod-ed")

    monkeypatch.setattr(os, "fchown", refuse)
    monkeypatch.setattr(os, "fchmod", refuse)
    assert ExportRoot(tmp_path).create_directory(PurePosixPath("kept"), 0o777, gid=5) is False
    after = (tmp_path / "kept").stat()
    assert (after.st_uid, after.st_gid, after.st_mode) == (
        before.st_uid,
        before.st_gid,
        before.st_mode,
    )
    assert (tmp_path / "kept" / "data").read_text() == "x"


def test_chown_leaves_the_unnamed_id_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "fchown", lambda fd, uid, gid: calls.append((uid, gid)))
    monkeypatch.setattr(ExportRoot, "_check_owner_kept", lambda *args: None)
    ExportRoot(tmp_path).create_directory(PurePosixPath("a"), gid=5)
    ExportRoot(tmp_path).create_directory(PurePosixPath("b"), uid=6)
    ExportRoot(tmp_path).create_directory(PurePosixPath("c"))
    assert calls == [(-1, 5), (6, -1)]


@pytest.mark.parametrize(
    ("value", "ranges"),
    [
        ("1000-65535", ((1000, 65535),)),
        ("0", ((0, 0),)),
        ("0,1000-1999, 5000", ((0, 0), (1000, 1999), (5000, 5000))),
        ("7-7", ((7, 7),)),
        ("0-4294967294", ((0, 4294967294),)),
    ],
)
def test_id_ranges_are_parsed(value: str, ranges: tuple[tuple[int, int], ...]) -> None:
    assert parse_id_ranges(value) == IdRanges(ranges)


@pytest.mark.parametrize("parameter", ["claimUidRange", "claimGidRange"])
@pytest.mark.parametrize(
    "value", ["", "1000-", "-5", "2000-1000", "1000..2000", "a-b", "1,,2", "0-4294967295", "1e3"]
)
def test_bad_id_ranges_name_the_parameter_and_the_accepted_values(
    parameter: str, value: str
) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        parse_class_parameters({parameter: value})
    assert str(caught.value) == (
        f'StorageClass parameter "{parameter}" has invalid value "{value}": accepted values are '
        "comma-separated ids or ranges of ids from 0 to 4294967294, such as "
        '"1000-65535" or "0,1000-1999"'
    )


def test_claim_bounds_come_from_the_class() -> None:
    options = parse_class_parameters(
        {
            "claimUidRange": "1000-1999",
            "claimGidRange": "0,500",
            "allowClaimSpecialModes": "true",
        }
    )
    assert options.claim_bounds == ClaimBounds(
        uids=IdRanges(((1000, 1999),)), gids=IdRanges(((0, 0), (500, 500))), special_modes=True
    )
    assert ClassOptions().claim_bounds == ClaimBounds(uids=None, gids=None, special_modes=False)


@pytest.mark.parametrize(
    ("annotation", "kind", "parameter"),
    [("nfs.io/uid", "uid", "claimUidRange"), ("nfs.io/gid", "gid", "claimGidRange")],
)
def test_a_claim_may_not_ask_for_root_unless_the_range_names_0(
    annotation: str, kind: str, parameter: str
) -> None:
    with pytest.raises(InvalidAnnotationError) as caught:
        resolve_ownership(Ownership(), allow_claim=True, annotations={annotation: "0"})
    assert str(caught.value) == (
        f'claim annotation "{annotation}" has invalid value "0": accepted values are {kind}s '
        f'from 1 to 4294967294: 0 (root) only if the StorageClass parameter "{parameter}" '
        "includes it"
    )
    # Leading zeros are still 0.
    with pytest.raises(InvalidAnnotationError):
        resolve_ownership(Ownership(), allow_claim=True, annotations={annotation: "000"})
    allowed = ClaimBounds(uids=parse_id_ranges("0,1000"), gids=parse_id_ranges("0-10"))
    resolved = resolve_ownership(
        Ownership(), allow_claim=True, annotations={annotation: "0"}, bounds=allowed
    )
    assert (resolved.uid if kind == "uid" else resolved.gid) == 0


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        (
            {"nfs.io/uid": "999"},
            'claim annotation "nfs.io/uid" has invalid value "999": accepted values are uids '
            'in the StorageClass parameter "claimUidRange": 1000-1999,3000',
        ),
        (
            {"nfs.io/uid": "2000"},
            'claim annotation "nfs.io/uid" has invalid value "2000": accepted values are uids '
            'in the StorageClass parameter "claimUidRange": 1000-1999,3000',
        ),
        (
            {"nfs.io/gid": "0"},
            'claim annotation "nfs.io/gid" has invalid value "0": accepted values are gids '
            'in the StorageClass parameter "claimGidRange": 100',
        ),
    ],
)
def test_ids_outside_the_class_ranges_are_refused(
    annotations: dict[str, str], message: str
) -> None:
    bounds = ClaimBounds(uids=parse_id_ranges("1000-1999,3000"), gids=parse_id_ranges("100"))
    with pytest.raises(InvalidAnnotationError) as caught:
        resolve_ownership(Ownership(), allow_claim=True, annotations=annotations, bounds=bounds)
    assert str(caught.value) == message


def test_ids_inside_the_class_ranges_are_granted() -> None:
    bounds = ClaimBounds(uids=parse_id_ranges("1000-1999,3000"), gids=parse_id_ranges("100"))
    for uid in ("1000", "1999", "3000"):
        resolved = resolve_ownership(
            Ownership(),
            allow_claim=True,
            annotations={"nfs.io/uid": uid, "nfs.io/gid": "100"},
            bounds=bounds,
        )
        assert resolved == Ownership(uid=int(uid), gid=100, mode=0o777)


@pytest.mark.parametrize("mode", ["4777", "2770", "1777", "6750", "7000"])
def test_special_mode_bits_from_a_claim_are_refused_unless_allowed(mode: str) -> None:
    with pytest.raises(InvalidAnnotationError) as caught:
        resolve_ownership(Ownership(), allow_claim=True, annotations={"nfs.io/mode": mode})
    assert str(caught.value) == (
        f'claim annotation "nfs.io/mode" has invalid value "{mode}": accepted values are modes '
        'without the setuid, setgid and sticky bits, such as "0770": the StorageClass does not '
        'set its parameter "allowClaimSpecialModes" to "true"'
    )
    resolved = resolve_ownership(
        Ownership(),
        allow_claim=True,
        annotations={"nfs.io/mode": mode},
        bounds=ClaimBounds(special_modes=True),
    )
    assert resolved.mode == int(mode, 8)


def test_the_class_own_values_are_not_bounded() -> None:
    # Root and setgid chosen by whoever wrote the class are the administrator's decision.
    from_class = Ownership(uid=0, gid=0, mode=0o2775)
    assert resolve_ownership(from_class, allow_claim=True, annotations={}) == from_class


def test_an_out_of_bounds_claim_fails_before_anything_is_created(
    backend: NFSBackend, tmp_path: Path
) -> None:
    parameters = {"allowClaimOwnership": "true", "claimUidRange": "1000-65535"}
    for wishes in ({"nfs.io/uid": "0"}, {"nfs.io/uid": "70000"}, {"nfs.io/mode": "4777"}):
        with pytest.raises(InvalidAnnotationError):
            backend.provision(_request(parameters, wishes))
    assert list((tmp_path / "export").iterdir()) == []


def test_an_owner_the_server_silently_maps_is_a_refused_chown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NFS-Ganesha with all_squash: chown "succeeds" and the owner stays the anonymous user.
    monkeypatch.setattr(os, "fchown", lambda fd, uid, gid: None)
    wanted = os.geteuid() + 1
    with pytest.raises(StorageError, match=f"to uid {wanted}: the server kept uid"):
        ExportRoot(tmp_path).create_directory(PurePosixPath("a"), uid=wanted)
    assert list(tmp_path.iterdir()) == []
