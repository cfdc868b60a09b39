"""The checks of ``nfs-provisioner doctor``, as pure functions of what was measured.

Each returns a :class:`CheckResult`: pass, warn (works, but something will bite) or fail
(the provisioner cannot work as configured), and for every problem the fix.
"""

from __future__ import annotations

import datetime
import errno
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from nfs_provisioner.commands.claims import (
    NO_PROVISIONER,
    default_class_names,
    has_class,
    is_waiting,
)
from nfs_provisioner.commands.mounts import Mount, server_path
from nfs_provisioner.objects import (
    ANN_BETA_DEFAULT_CLASS,
    ANN_DEFAULT_CLASS,
    ANN_PROVISIONED_BY,
    JsonObject,
    annotations_of,
    claim_class,
    waits_for_consumer,
)

# A running provisioner acts on a new claim within seconds; two minutes leave room for a
# restart or a leader hand-over before doctor blames it.
PROVISIONER_GRACE = datetime.timedelta(minutes=2)
_LISTED = 5
_FAIL_FREE_FRACTION = 0.01
_WARN_FREE_FRACTION = 0.10
_FAIL_FREE_BYTES = 64 * 1024 * 1024


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    message: str
    fix: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status.value}


def exit_code(results: Iterable[CheckResult]) -> int:
    """0 when every check passed, 1 with warnings only, 2 with a failure."""
    statuses = {result.status for result in results}
    if Status.FAIL in statuses:
        return 2
    return 1 if Status.WARN in statuses else 0


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")


# Local checks: the export as the provisioner sees it.


@dataclass(frozen=True)
class Probe:
    """What happened when doctor created, chowned and removed a probe in the export."""

    euid: int
    error: OSError | None = None
    failed_step: str = ""
    owner_uid: int | None = None
    chown_error: OSError | None = None
    cleanup_error: OSError | None = None


@dataclass(frozen=True)
class Space:
    total_bytes: int
    free_bytes: int
    total_inodes: int
    free_inodes: int


def check_mount(
    mount_path: str, unusable: str | None, mount: Mount | None, *, local_export: bool = False
) -> CheckResult:
    """``unusable`` says why ``mount_path`` is no directory doctor can enter, if it is not.
    ``local_export``: the operator says the export is a local directory on purpose (the demo,
    a test), so a mount that is not NFS is a warning that explains, not a failure."""
    fix = (
        f"mount the NFS export at {mount_path} (the Deployment's nfs volume), or point "
        "--mount-path / NFS_MOUNT_PATH at where it is mounted"
    )
    if unusable is not None:
        return CheckResult("mount", Status.FAIL, f"{mount_path} {unusable}", fix)
    if mount is None:
        return CheckResult("mount", Status.FAIL, f"no mount holds {mount_path}", fix)
    where = (
        f"{mount_path} is"
        if mount.mount_point == mount_path
        else f"{mount_path} is inside {mount.mount_point},"
    )
    if not mount.is_nfs and local_export:
        return CheckResult(
            "mount",
            Status.WARN,
            f"{where} {mount.source} ({mount.fs_type}), not an NFS export, as --local-export "
            "says: right for the demo or a test, but volumes there exist on this machine only "
            "and no other node can mount them",
            "in a real cluster, mount an NFS export there and drop --local-export",
        )
    if not mount.is_nfs:
        return CheckResult(
            "mount",
            Status.FAIL,
            f"{where} {mount.source} ({mount.fs_type}), not an NFS export: volumes created "
            "there exist on this machine only",
            fix,
        )
    return CheckResult("mount", Status.PASS, f"{where} {mount.source} ({mount.fs_type})")


def check_nfs_version(mount: Mount) -> CheckResult:
    version = mount.nfs_version
    if version is None:
        return CheckResult(
            "nfs-version",
            Status.WARN,
            f"the mount options of {mount.mount_point} do not say which NFS version is used",
            "mount with an explicit version: nfsvers=4.1",
        )
    major = version.partition(".")[0]
    if major.isdigit() and int(major) < 4:
        return CheckResult(
            "nfs-version",
            Status.WARN,
            f"NFS version {version}: before version 4, NFS keeps no open or lock state "
            "on the server "
            "(locks need the separate NLM service), so a writer on another node or a "
            "client crash can leave partial writes that others read; and it trusts the "
            "client's user ids (AUTH_SYS) with no authentication of its own",
            "serve the export over NFS 4.1 or later and mount it with nfsvers=4.1 "
            "(the provisioner's volume and the StorageClass mountOptions)",
        )
    return CheckResult("nfs-version", Status.PASS, f"NFS version {version}")


def check_export_path(mount: Mount, mount_path: str, nfs_path: str) -> CheckResult:
    actual = server_path(mount, mount_path)
    expected = posixpath.normpath(nfs_path)
    if actual is None or actual == expected:
        return CheckResult(
            "export-path",
            Status.PASS,
            f"{mount_path} is {expected} on the server, as NFS_PATH says",
        )
    return CheckResult(
        "export-path",
        Status.FAIL,
        f"{mount_path} is {actual} on the server but NFS_PATH is {expected}: pods would "
        "mount other directories than the ones the provisioner creates",
        f"set NFS_PATH to {actual}, or mount {expected} at {mount_path}",
    )


def check_writable(mount: Mount | None, probe: Probe) -> CheckResult:
    if mount is not None and mount.read_only:
        return CheckResult(
            "writable",
            Status.FAIL,
            f"{mount.mount_point} is mounted read-only (ro)",
            "mount the export read-write: readOnly: false on the provisioner's volume, and "
            "rw for this client in the server's exports",
        )
    error = probe.error
    if error is not None:
        if error.errno == errno.EROFS:
            cause = "the filesystem is read-only (EROFS)"
            fix = "export and mount it read-write (rw in the server's exports, no ro option)"
        elif error.errno in (errno.EACCES, errno.EPERM):
            cause = f"permission denied for uid {probe.euid} ({errno.errorcode[error.errno]})"
            fix = (
                "make the export's top directory writable for the provisioner; as root "
                "behind root squash it writes as the anonymous user (usually 65534): export "
                "with no_root_squash or chown the directory to that user"
            )
        elif error.errno in (errno.ENOSPC, errno.EDQUOT):
            cause = "no space left (or over quota)"
            fix = "free space on the export or raise its quota"
        else:
            cause = error.strerror or str(error)
            fix = "check the NFS server and the mount"
        return CheckResult("writable", Status.FAIL, f"cannot {probe.failed_step}: {cause}", fix)
    if probe.cleanup_error is not None:
        return CheckResult(
            "writable",
            Status.WARN,
            f"created a probe but could not remove it: {probe.cleanup_error}",
            "remove the .nfs-provisioner-doctor-* entry at the top of the export; removing "
            "directories is what deletion and archiving need",
        )
    return CheckResult(
        "writable", Status.PASS, "created, wrote, synced and removed a probe directory and file"
    )


def check_root_squash(probe: Probe) -> CheckResult:
    if probe.euid != 0:
        return CheckResult(
            "root-squash",
            Status.WARN,
            f"not checked: doctor runs as uid {probe.euid}, and only root can tell",
            "run doctor as the provisioner's user (root), e.g. with kubectl exec",
        )
    fix = (
        "export with no_root_squash (e.g. /exports *(rw,sync,no_root_squash)) if StorageClasses "
        "set an owner or group for volume directories; without them, squashed root still works"
    )
    if probe.owner_uid not in (None, 0):
        return CheckResult(
            "root-squash",
            Status.WARN,
            f"root is squashed: a file root creates is owned by uid {probe.owner_uid}, so "
            "volume directories cannot be given an owner",
            fix,
        )
    if probe.chown_error is not None:
        return CheckResult(
            "root-squash",
            Status.WARN,
            f"root cannot change a file's owner ({probe.chown_error.strerror}): root squash "
            "or a server that refuses chown",
            fix,
        )
    return CheckResult("root-squash", Status.PASS, "root creates files as root and can chown them")


def _level(free: int, total: int) -> tuple[Status, float]:
    fraction = free / total if total else 1.0
    if fraction < _FAIL_FREE_FRACTION:
        return Status.FAIL, fraction
    if fraction < _WARN_FREE_FRACTION:
        return Status.WARN, fraction
    return Status.PASS, fraction


def check_free_space(space: Space) -> CheckResult:
    status, fraction = _level(space.free_bytes, space.total_bytes)
    if space.free_bytes < _FAIL_FREE_BYTES:
        status = Status.FAIL
    message = (
        f"{_gib(space.free_bytes)} free of {_gib(space.total_bytes)} ({fraction:.0%}); "
        "every volume shares this space, whatever its requested size"
    )
    fix = None if status is Status.PASS else "free or add space on the NFS server"
    return CheckResult("free-space", status, message, fix)


def check_free_inodes(space: Space) -> CheckResult:
    if space.total_inodes == 0:
        return CheckResult("free-inodes", Status.PASS, "the filesystem sets no inode limit")
    status, fraction = _level(space.free_inodes, space.total_inodes)
    message = f"{space.free_inodes} of {space.total_inodes} inodes free ({fraction:.0%})"
    fix = None if status is Status.PASS else "remove files or archived volumes on the export"
    return CheckResult("free-inodes", status, message, fix)


def _gib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB"


# Cluster checks: what the API server says about classes, claims and volumes.


def check_storage_class(
    classes: Mapping[str, JsonObject], provisioner_name: str, class_name: str | None
) -> CheckResult:
    create = (
        f"create a StorageClass with provisioner: {provisioner_name} (the chart's "
        "storageClass values do)"
    )
    if class_name is not None:
        storage_class = classes.get(class_name)
        if storage_class is None:
            return CheckResult(
                "storage-class", Status.FAIL, f"StorageClass {class_name} does not exist", create
            )
        named = storage_class.get("provisioner")
        if named != provisioner_name:
            return CheckResult(
                "storage-class",
                Status.FAIL,
                f"StorageClass {class_name} names provisioner {named}, not {provisioner_name}: "
                "this provisioner ignores its claims",
                f"a class's provisioner cannot be changed: delete {class_name} and create it "
                f"again with provisioner: {provisioner_name} (existing volumes stay), or run the "
                f"provisioner with PROVISIONER_NAME={named}",
            )
        return CheckResult(
            "storage-class",
            Status.PASS,
            f"StorageClass {class_name} names provisioner {provisioner_name}",
        )
    ours = sorted(name for name, c in classes.items() if c.get("provisioner") == provisioner_name)
    if not ours:
        return CheckResult(
            "storage-class",
            Status.FAIL,
            f"no StorageClass names provisioner {provisioner_name}: no claim reaches it",
            create,
        )
    return CheckResult(
        "storage-class",
        Status.PASS,
        f"StorageClass(es) with provisioner {provisioner_name}: {', '.join(ours)}",
    )


def check_default_classes(
    classes: Mapping[str, JsonObject], provisioner_name: str | None
) -> CheckResult:
    defaults = default_class_names(classes)
    if not defaults:
        return CheckResult(
            "default-class",
            Status.PASS,
            "no default StorageClass: claims without a class wait for one",
        )
    if len(defaults) == 1:
        provisioner = classes[defaults[0]].get("provisioner")
        return CheckResult(
            "default-class",
            Status.PASS,
            f"default StorageClass: {defaults[0]} (provisioner {provisioner})",
        )
    keep = next(
        (name for name in defaults if classes[name].get("provisioner") == provisioner_name),
        defaults[0],
    )
    commands = []
    for name in defaults:
        if name == keep:
            continue
        annotations = annotations_of(classes[name])
        for key in (ANN_DEFAULT_CLASS, ANN_BETA_DEFAULT_CLASS):
            if annotations.get(key) == "true":
                commands.append(f"kubectl annotate storageclass {name} {key}=false --overwrite")
    return CheckResult(
        "default-class",
        Status.WARN,
        f"{len(defaults)} default StorageClasses ({', '.join(defaults)}): new claims without a "
        f"class get the newest, {defaults[0]}, and Kubernetes before 1.26 refuses them",
        f"keep one default ({keep}): " + "; ".join(commands),
    )


@dataclass(frozen=True)
class PendingClaims:
    """Pending claims nothing serves, and claims of ours nothing has acted on yet."""

    unservable: list[tuple[str, str]]
    unanswered: list[JsonObject]


def find_pending(
    claims: Sequence[JsonObject],
    classes: Mapping[str, JsonObject],
    *,
    provisioner_name: str | None,
    retroactive_default: bool,
    now: datetime.datetime,
) -> PendingClaims:
    unservable = []
    unanswered = []
    has_default = bool(default_class_names(classes))
    for claim in claims:
        if not is_waiting(claim):
            continue
        key = f"{claim['metadata']['namespace']}/{claim['metadata']['name']}"
        name = claim_class(claim)
        storage_class = classes.get(name)
        if not has_class(claim):
            if not (has_default and retroactive_default):
                unservable.append((key, "no class and no default to get"))
        elif name == "":
            unservable.append((key, 'class ""'))
        elif storage_class is None:
            unservable.append((key, f"class {name} does not exist"))
        elif storage_class.get("provisioner") == NO_PROVISIONER:
            unservable.append((key, f"class {name} has no provisioner"))
        elif (
            storage_class.get("provisioner") == provisioner_name
            and not waits_for_consumer(claim, storage_class)
            and now - _created(claim) > PROVISIONER_GRACE
        ):
            unanswered.append(claim)
    return PendingClaims(unservable, unanswered)


def _created(claim: JsonObject) -> datetime.datetime:
    stamp = str(claim["metadata"].get("creationTimestamp", ""))
    try:
        return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return datetime.datetime.now(datetime.UTC)


def is_from(event: JsonObject, provisioner_name: str) -> bool:
    """Whether the event comes from ``provisioner_name`` (ours, or the Go library's
    ``<name>_<identity>`` component)."""
    for component in (
        (event.get("source") or {}).get("component"),
        event.get("reportingComponent"),
    ):
        if component and (
            component == provisioner_name or str(component).startswith(provisioner_name + "_")
        ):
            return True
    return False


def check_pending_claims(
    unservable: Sequence[tuple[str, str]],
    unserved: Sequence[str],
    provisioner_name: str | None,
    adopt_hint: str,
) -> CheckResult:
    if unserved:
        return CheckResult(
            "pending-claims",
            Status.FAIL,
            f"{len(unserved)} claim(s) of {provisioner_name}'s classes Pending for more than "
            f"{PROVISIONER_GRACE.seconds // 60} minutes with no event from it: "
            f"{_listing(unserved)}",
            f"make sure a provisioner named {provisioner_name} runs (kubectl get pods; its "
            "logs) and can reach the API server",
        )
    if unservable:
        described = [f"{key} ({why})" for key, why in unservable]
        return CheckResult(
            "pending-claims",
            Status.WARN,
            f"{len(unservable)} Pending claim(s) that no provisioner will ever serve: "
            f"{_listing(described)}",
            f"move them onto a provisioned class: {adopt_hint}",
        )
    return CheckResult(
        "pending-claims", Status.PASS, "no Pending claim is left without a provisioner"
    )


def _under(path: str, base: str) -> bool:
    base = posixpath.normpath(base)
    path = posixpath.normpath(path)
    return path == base or path.startswith(base.rstrip("/") + "/")


def check_provisioned_by(
    volumes: Sequence[JsonObject],
    classes: Mapping[str, JsonObject],
    provisioner_name: str,
    nfs_path: str | None,
    nfs_server: str | None = None,
) -> CheckResult:
    ours = {name for name, c in classes.items() if c.get("provisioner") == provisioner_name}
    relevant = []
    for volume in volumes:
        spec = volume.get("spec") or {}
        owner = annotations_of(volume).get(ANN_PROVISIONED_BY)
        if not owner or "nfs" not in spec:
            continue
        if nfs_path is None:
            # Without the export's path, the classes are the only clue.
            of_export = spec.get("storageClassName") in ours
        else:
            # Same path on another server is another export (an extra export, say).
            of_export = _under(str(spec["nfs"].get("path", "")), nfs_path) and (
                nfs_server is None or spec["nfs"].get("server") == nfs_server
            )
        if of_export:
            relevant.append((str(volume["metadata"]["name"]), str(owner)))
    others = sorted({owner for _, owner in relevant if owner != provisioner_name})
    if not relevant:
        return CheckResult(
            "provisioned-by", Status.PASS, "no provisioned volumes of this export yet"
        )
    if not others:
        return CheckResult(
            "provisioned-by",
            Status.PASS,
            f"all {len(relevant)} volume(s) of this export name provisioner {provisioner_name}",
        )
    strangers = [name for name, owner in relevant if owner != provisioner_name]
    return CheckResult(
        "provisioned-by",
        Status.WARN,
        f"{len(strangers)} of {len(relevant)} volume(s) of this export were provisioned by "
        f"{', '.join(others)}, not {provisioner_name}: {_listing(strangers)}; this provisioner "
        "never archives or deletes them when they are released",
        f"if {others[0]} was this installation's earlier name, run with "
        f"PROVISIONER_NAME={others[0]} (and keep its StorageClasses); otherwise clean their "
        "directories by hand once released",
    )


PROVISIONING_FAILED = "ProvisioningFailed"


def check_failing_claims(
    claims: Sequence[JsonObject],
    classes: Mapping[str, JsonObject],
    failures: Sequence[JsonObject],
    provisioner_name: str,
) -> CheckResult:
    """Pending claims of this provisioner's classes whose latest word from it is a
    ProvisioningFailed event: a class or export that does not work, whatever the class says."""
    latest: dict[str, JsonObject] = {}
    for event in failures:
        uid = str((event.get("involvedObject") or {}).get("uid", ""))
        if event.get("reason") != PROVISIONING_FAILED or not is_from(event, provisioner_name):
            continue
        if uid not in latest or _event_time(event) >= _event_time(latest[uid]):
            latest[uid] = event
    failing = []
    for claim in claims:
        metadata = claim["metadata"]
        storage_class = classes.get(claim_class(claim))
        if not is_waiting(claim) or storage_class is None:
            continue
        if storage_class.get("provisioner") != provisioner_name:
            continue
        found = latest.get(str(metadata.get("uid", "")))
        if found is not None:
            failing.append(
                f"{metadata['namespace']}/{metadata['name']} (class {claim_class(claim)}): "
                f"{found.get('message', '')}"
            )
    if not failing:
        return CheckResult(
            "failing-claims", Status.PASS, f"no Pending claim of {provisioner_name} is failing"
        )
    return CheckResult(
        "failing-claims",
        Status.FAIL,
        f"{len(failing)} Pending claim(s) fail to provision: {_listing(failing)}",
        "do what the message says (a StorageClass parameter, the export); "
        "kubectl describe pvc shows every attempt",
    )


def _event_time(event: JsonObject) -> str:
    return str(
        event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp") or ""
    )
