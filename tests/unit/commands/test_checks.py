"""The doctor's verdicts on what it measured, and its exit code."""

from __future__ import annotations

import datetime
import errno
from typing import Any

import pytest

from nfs_provisioner.commands.checks import (
    CheckResult,
    Probe,
    Space,
    Status,
    check_default_classes,
    check_export_path,
    check_failing_claims,
    check_free_inodes,
    check_free_space,
    check_mount,
    check_nfs_version,
    check_pending_claims,
    check_provisioned_by,
    check_root_squash,
    check_storage_class,
    check_writable,
    exit_code,
    find_pending,
    is_from,
)
from nfs_provisioner.commands.mounts import Mount, parse_mountinfo

NAME = "cluster.local/nfs"
NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)


def _mount(line: str) -> Mount:
    (mount,) = parse_mountinfo(line + "\n")
    return mount


NFS4 = _mount("31 27 0:50 / /persistentvolumes rw - nfs4 srv:/exports rw,vers=4.1")


def _result(status: Status) -> CheckResult:
    return CheckResult("x", status, "m")


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        ([], 0),
        ([Status.PASS, Status.PASS], 0),
        ([Status.PASS, Status.WARN], 1),
        ([Status.WARN, Status.FAIL, Status.PASS], 2),
        ([Status.FAIL], 2),
    ],
)
def test_exit_code(statuses: list[Status], code: int) -> None:
    assert exit_code(_result(s) for s in statuses) == code


def test_mount_passes_for_nfs_and_fails_otherwise() -> None:
    assert check_mount("/persistentvolumes", None, NFS4).status is Status.PASS
    inside = check_mount("/persistentvolumes/sub", None, NFS4)
    assert inside.status is Status.PASS
    assert "inside /persistentvolumes" in inside.message
    local = check_mount("/data", None, _mount("1 0 254:0 / / rw - ext4 /dev/vda rw"))
    assert local.status is Status.FAIL
    assert "/dev/vda (ext4), not an NFS export" in local.message
    assert local.fix
    missing = check_mount("/nowhere", "does not exist", None)
    assert (missing.status, missing.message) == (Status.FAIL, "/nowhere does not exist")


def test_nfs_version_3_warns_with_the_reason() -> None:
    result = check_nfs_version(_mount("1 0 0:1 / /p rw - nfs s:/e rw,vers=3"))
    assert result.status is Status.WARN
    assert "partial writes" in result.message
    assert "authentication" in result.message
    assert result.fix is not None
    assert "nfsvers=4.1" in result.fix
    assert check_nfs_version(NFS4).status is Status.PASS
    assert check_nfs_version(_mount("1 0 0:1 / /p rw - nfs s:/e rw")).status is Status.WARN


def test_export_path_must_match_nfs_path() -> None:
    assert check_export_path(NFS4, "/persistentvolumes", "/exports/").status is Status.PASS
    wrong = check_export_path(NFS4, "/persistentvolumes", "/srv/volumes")
    assert wrong.status is Status.FAIL
    assert wrong.fix == "set NFS_PATH to /exports, or mount /srv/volumes at /persistentvolumes"


def test_read_only_mount_fails_even_if_the_probe_got_through() -> None:
    read_only = _mount("1 0 0:1 / /persistentvolumes ro - nfs4 s:/e rw,vers=4.1")
    result = check_writable(read_only, Probe(euid=0, owner_uid=0))
    assert result.status is Status.FAIL
    assert "read-only (ro)" in result.message


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (errno.EROFS, "read-only (EROFS)"),
        (errno.EACCES, "permission denied for uid 1000 (EACCES)"),
        (errno.ENOSPC, "no space left"),
        (errno.EIO, "Input/output error"),
    ],
)
def test_probe_errors_are_named(code: int, text: str) -> None:
    error = OSError(code, errno.errorcode[code] if code != errno.EIO else "Input/output error")
    result = check_writable(NFS4, Probe(euid=1000, error=error, failed_step="create a directory"))
    assert result.status is Status.FAIL
    assert result.message.startswith("cannot create a directory: ")
    assert text in result.message
    assert result.fix


def test_leftover_probe_warns() -> None:
    result = check_writable(NFS4, Probe(euid=0, owner_uid=0, cleanup_error=OSError(16, "busy")))
    assert result.status is Status.WARN
    assert check_writable(NFS4, Probe(euid=0, owner_uid=0)).status is Status.PASS


def test_root_squash() -> None:
    assert check_root_squash(Probe(euid=0, owner_uid=0)).status is Status.PASS
    squashed = check_root_squash(Probe(euid=0, owner_uid=65534))
    assert squashed.status is Status.WARN
    assert "uid 65534" in squashed.message
    assert squashed.fix is not None
    assert "no_root_squash" in squashed.fix
    refused = check_root_squash(
        Probe(euid=0, owner_uid=0, chown_error=OSError(errno.EPERM, "Operation not permitted"))
    )
    assert refused.status is Status.WARN
    assert check_root_squash(Probe(euid=1000, owner_uid=1000)).status is Status.WARN


@pytest.mark.parametrize(
    ("free", "status"),
    [(50, Status.PASS), (10, Status.PASS), (9, Status.WARN), (1, Status.WARN), (0, Status.FAIL)],
)
def test_free_space_thresholds(free: int, status: Status) -> None:
    gib = 2**30
    assert check_free_space(Space(100 * gib, free * gib, 0, 0)).status is status


def test_small_free_space_fails_whatever_the_fraction() -> None:
    assert check_free_space(Space(100 * 2**20, 50 * 2**20, 0, 0)).status is Status.FAIL


def test_free_inodes() -> None:
    assert check_free_inodes(Space(1, 1, 0, 0)).status is Status.PASS
    assert check_free_inodes(Space(1, 1, 1000, 500)).status is Status.PASS
    assert check_free_inodes(Space(1, 1, 1000, 50)).status is Status.WARN
    assert check_free_inodes(Space(1, 1, 1000, 0)).status is Status.FAIL


def _class(
    name: str, provisioner: str = NAME, *, default: bool = False, beta: bool = False
) -> dict[str, Any]:
    key = (
        "storageclass.beta.kubernetes.io/is-default-class"
        if beta
        else "storageclass.kubernetes.io/is-default-class"
    )
    return {
        "metadata": {
            "name": name,
            "annotations": {key: "true"} if default else {},
            "creationTimestamp": f"2025-01-0{len(name) % 9 + 1}T00:00:00Z",
        },
        "provisioner": provisioner,
    }


def _classes(*classes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["metadata"]["name"]: c for c in classes}


def test_storage_class_must_exist_and_name_the_provisioner() -> None:
    classes = _classes(_class("nfs"), _class("other", "x.io/y"))
    assert check_storage_class(classes, NAME, "nfs").status is Status.PASS
    assert check_storage_class(classes, NAME, "missing").status is Status.FAIL
    wrong = check_storage_class(classes, NAME, "other")
    assert wrong.status is Status.FAIL
    assert "names provisioner x.io/y" in wrong.message
    assert check_storage_class(classes, NAME, None).status is Status.PASS
    none = check_storage_class(_classes(_class("other", "x.io/y")), NAME, None)
    assert none.status is Status.FAIL


def test_several_default_classes_warn_and_say_which_to_unmark() -> None:
    assert check_default_classes({}, NAME).status is Status.PASS
    assert check_default_classes(_classes(_class("nfs", default=True)), NAME).status is Status.PASS
    classes = _classes(
        _class("nfs", default=True), _class("standard", "x.io/y", default=True, beta=True)
    )
    result = check_default_classes(classes, NAME)
    assert result.status is Status.WARN
    assert "2 default StorageClasses" in result.message
    assert result.fix == (
        "keep one default (nfs): kubectl annotate storageclass standard "
        "storageclass.beta.kubernetes.io/is-default-class=false --overwrite"
    )


def _claim(
    name: str, storage_class: str | None, *, age_minutes: float = 10, **spec: Any
) -> dict[str, Any]:
    created = NOW - datetime.timedelta(minutes=age_minutes)
    claim: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": name,
            "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "spec": dict(spec),
        "status": {"phase": "Pending"},
    }
    if storage_class is not None:
        claim["spec"]["storageClassName"] = storage_class
    return claim


def test_pending_claims_nothing_serves_and_ours_nobody_answered() -> None:
    classes = _classes(
        _class("nfs"),
        _class("late", NAME) | {"volumeBindingMode": "WaitForFirstConsumer"},
        _class("local", "kubernetes.io/no-provisioner"),
        _class("ceph", "rbd.csi.ceph.com"),
    )
    claims = [
        _claim("empty", ""),
        _claim("missing", "gone"),
        _claim("static", "local"),
        _claim("unset", None),
        _claim("ceph", "ceph"),
        _claim("fresh", "nfs", age_minutes=1),
        _claim("stale", "nfs"),
        _claim("waits-for-pod", "late"),
        _claim("bound", "", volumeName="pv"),
    ]
    found = find_pending(claims, classes, provisioner_name=NAME, retroactive_default=True, now=NOW)
    assert found.unservable == [
        ("ns/empty", 'class ""'),
        ("ns/missing", "class gone does not exist"),
        ("ns/static", "class local has no provisioner"),
        ("ns/unset", "no class and no default to get"),
    ]
    assert [c["metadata"]["name"] for c in found.unanswered] == ["stale"]


def test_unset_class_is_served_once_a_default_exists_on_new_clusters_only() -> None:
    classes = _classes(_class("nfs", default=True))
    claims = [_claim("unset", None)]
    new = find_pending(claims, classes, provisioner_name=NAME, retroactive_default=True, now=NOW)
    assert new.unservable == []
    old = find_pending(claims, classes, provisioner_name=NAME, retroactive_default=False, now=NOW)
    assert [key for key, _ in old.unservable] == ["ns/unset"]


def test_events_of_the_go_library_and_ours_both_count() -> None:
    assert is_from({"source": {"component": NAME}}, NAME)
    assert is_from({"source": {"component": f"{NAME}_host-1_abc"}}, NAME)
    assert is_from({"reportingComponent": NAME}, NAME)
    assert not is_from({"source": {"component": "persistentvolume-controller"}}, NAME)
    assert not is_from({"source": {"component": f"{NAME}-two"}}, NAME)


def test_pending_verdicts() -> None:
    hint = "nfs-provisioner adopt --all-namespaces --storage-class nfs"
    assert check_pending_claims([], [], NAME, hint).status is Status.PASS
    warn = check_pending_claims([("ns/a", 'class ""')], [], NAME, hint)
    assert warn.status is Status.WARN
    assert 'ns/a (class "")' in warn.message
    assert warn.fix is not None
    assert hint in warn.fix
    fail = check_pending_claims([("ns/a", "x")], [f"ns/{i}" for i in range(7)], NAME, hint)
    assert fail.status is Status.FAIL
    assert "ns/0, ns/1, ns/2, ns/3, ns/4 and 2 more" in fail.message


def _volume(name: str, owner: str | None, path: str, storage_class: str = "nfs") -> dict[str, Any]:
    annotations = {"pv.kubernetes.io/provisioned-by": owner} if owner else {}
    return {
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"nfs": {"server": "s", "path": path}, "storageClassName": storage_class},
    }


def test_volumes_of_the_export_provisioned_under_another_name_warn() -> None:
    classes = _classes(_class("nfs"))
    volumes = [
        _volume("pv-ours", NAME, "/exports/a"),
        _volume("pv-old", "old/name", "/exports/b", storage_class="gone"),
        _volume("pv-static", None, "/exports/c"),
        _volume("pv-elsewhere", "old/name", "/other/d", storage_class="gone"),
    ]
    result = check_provisioned_by(volumes, classes, NAME, "/exports/")
    assert result.status is Status.WARN
    assert result.message.startswith("1 of 2 volume(s) of this export were provisioned by old/name")
    assert "pv-old" in result.message
    assert "pv-elsewhere" not in result.message
    assert result.fix is not None
    assert "PROVISIONER_NAME=old/name" in result.fix
    assert check_provisioned_by(volumes[:1], classes, NAME, None).status is Status.PASS
    assert check_provisioned_by([], classes, NAME, "/exports").status is Status.PASS


def test_volumes_of_the_same_path_on_another_server_are_another_exports() -> None:
    classes = _classes(_class("nfs"))
    volumes = [
        _volume("pv-ours", NAME, "/exports/a"),
        {
            "metadata": {
                "name": "pv-other-server",
                "annotations": {"pv.kubernetes.io/provisioned-by": "other/name"},
            },
            "spec": {"nfs": {"server": "elsewhere", "path": "/exports/b"}},
        },
    ]
    assert check_provisioned_by(volumes, classes, NAME, "/exports", "s").status is Status.PASS
    assert check_provisioned_by(volumes, classes, NAME, "/exports").status is Status.WARN


def _pending(uid: str, storage_class: str) -> dict[str, Any]:
    return {
        "metadata": {"name": uid, "namespace": "ns", "uid": uid},
        "spec": {"storageClassName": storage_class},
        "status": {"phase": "Pending"},
    }


def _failure(uid: str, message: str, when: str, component: str = NAME) -> dict[str, Any]:
    return {
        "reason": "ProvisioningFailed",
        "involvedObject": {"uid": uid},
        "source": {"component": component},
        "message": message,
        "lastTimestamp": when,
    }


def test_claims_failing_to_provision_fail_the_check_with_the_latest_message() -> None:
    classes = _classes(_class("nfs"))
    claims = [_pending("a", "nfs"), _pending("b", "nfs")]
    events = [
        _failure("a", "old message", "2026-01-01T10:00:00Z"),
        _failure("a", "onDelete: shred is not one of delete, retain", "2026-01-01T11:00:00Z"),
        _failure("b", "not ours", "2026-01-01T11:00:00Z", component="someone/else"),
    ]
    result = check_failing_claims(claims, classes, events, NAME)
    assert result.status is Status.FAIL
    assert "1 Pending claim(s)" in result.message
    assert "ns/a (class nfs): onDelete: shred" in result.message
    assert "old message" not in result.message
    assert check_failing_claims(claims, classes, [], NAME).status is Status.PASS
