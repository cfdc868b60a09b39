"""The soak's invariants, checked over snapshots of the API and the export; pure functions.

A snapshot reads the API twice with the export's directories in between: a volume counts only
as it was in both reads, so a PV created or deleted while the directories were listed is never
taken for a broken one. Most findings are violations at once; a few states are legitimately
passing (a directory made just before its PV is saved, a fault in the way) and become
violations only when they last longer than their grace.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from nfs_provisioner.nfs.filesystem import staging_name

ARCHIVE_PREFIX: Final = "archived-"
# A directory with no PV may exist between mkdir and the PV's save, which a fault may hold up.
UNEXPLAINED_GRACE: Final = 60.0
# After the last fault heals, every claim is Bound, every released volume gone and every resize
# done within this many seconds (the soak's stated convergence bound).
CONVERGENCE_BOUND: Final = 120.0
# A content digest the writer could not pin down (a write a fault cut short): never compared.
UNKNOWN: Final = "?"
# The provisioner's log events that change something: these only the leader may log.
ACTIONS: Final = frozenset({"volume provisioned", "volume deleted", "volume resized"})
BECAME_LEADER: Final = "became leader"


@dataclass(frozen=True)
class ClaimView:
    namespace: str
    name: str
    uid: str
    phase: str
    volume_name: str
    requested_mi: int
    capacity_mi: int | None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class VolumeView:
    name: str
    phase: str
    claim_uid: str
    # The directory relative to the export; None when the PV points outside it.
    directory: str | None
    capacity_mi: int
    ours: bool


@dataclass(frozen=True)
class ApiView:
    claims: Mapping[str, ClaimView]  # by namespace/name
    volumes: Mapping[str, VolumeView]  # by name


@dataclass(frozen=True)
class ExportView:
    """The export as the server holds it: volume directories and archives with the digest of
    their ``data`` file ("" when there is none)."""

    directories: Mapping[str, str]
    archives: Mapping[str, str]
    # archive name -> the PV its registry marker names
    markers: Mapping[str, str]
    sentinel: str


@dataclass
class ClaimRecord:
    """What the soak did to one claim, and so what must be true of it."""

    namespace: str
    name: str
    storage_class: str
    fate: str  # delete, archive or retain
    created_at: float
    uid: str = ""
    volume: str = ""
    directory: str = ""
    # sha256 of what the writer put in the volume's ``data`` file; "" until written.
    content: str = ""
    deleted_at: float | None = None
    # Its PV was seen at least once: what release must then have done can be checked.
    provisioned: bool = False
    # Its claim was seen Bound: only then may it grow.
    bound: bool = False
    requested_mi: int = 1
    resize_at: float | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Finding:
    key: str
    kind: str
    message: str
    grace: float = 0.0


def stable(before: ApiView, after: ApiView) -> ApiView:
    """What was the same in both reads."""
    return ApiView(
        claims={k: c for k, c in before.claims.items() if after.claims.get(k) == c},
        volumes={k: v for k, v in before.volumes.items() if after.volumes.get(k) == v},
    )


def check(
    before: ApiView,
    after: ApiView,
    export: ExportView,
    records: Iterable[ClaimRecord],
    sentinel: str,
) -> list[Finding]:
    """Every finding in one snapshot; see the module's docstring for the reads."""
    api = stable(before, after)
    seen_volumes = set(before.volumes) | set(after.volumes)
    records = list(records)
    found: list[Finding] = []
    found += _claims_and_volumes(api)
    found += _directories(api, before, after, export, records)
    found += _released(seen_volumes, export, records)
    if export.sentinel != sentinel:
        found.append(
            Finding(
                "sentinel",
                "written-outside-export",
                "the sentinel tree next to the export changed: something was written outside it",
            )
        )
    return found


def _claims_and_volumes(api: ApiView) -> list[Finding]:
    found = []
    by_claim: dict[str, list[str]] = {}
    by_directory: dict[str, list[str]] = {}
    for volume in api.volumes.values():
        if not volume.ours:
            continue
        if volume.claim_uid:
            by_claim.setdefault(volume.claim_uid, []).append(volume.name)
        if volume.directory is not None:
            by_directory.setdefault(volume.directory, []).append(volume.name)
    for uid, names in by_claim.items():
        if len(names) > 1:
            found.append(
                Finding(
                    f"claim-uid/{uid}",
                    "two-volumes-one-claim",
                    f"claim uid {uid} has {len(names)} PVs: {sorted(names)}",
                )
            )
    for directory, names in by_directory.items():
        if len(names) > 1:
            found.append(
                Finding(
                    f"directory/{directory}",
                    "shared-directory",
                    f"directory {directory} belongs to {len(names)} PVs: {sorted(names)}",
                )
            )
    for claim in api.claims.values():
        if claim.phase != "Bound":
            continue
        bound_to = api.volumes.get(claim.volume_name)
        if bound_to is None or bound_to.claim_uid != claim.uid:
            found.append(
                Finding(
                    f"claim/{claim.key}",
                    "claim-not-bound-to-its-volume",
                    f"claim {claim.key} is Bound to {claim.volume_name!r}, which "
                    + (
                        "does not exist"
                        if bound_to is None
                        else f"names claim {bound_to.claim_uid}"
                    ),
                    grace=5.0,
                )
            )
    return found


def _directories(
    api: ApiView,
    before: ApiView,
    after: ApiView,
    export: ExportView,
    records: list[ClaimRecord],
) -> list[Finding]:
    found = []
    live = {r.volume: r for r in records if r.volume and r.deleted_at is None}
    for volume in api.volumes.values():
        if not volume.ours or volume.directory is None or volume.phase == "Released":
            continue
        digest = export.directories.get(volume.directory)
        if digest is None:
            found.append(
                Finding(
                    f"volume/{volume.name}",
                    "volume-without-directory",
                    f"PV {volume.name} ({volume.phase}) has no directory {volume.directory}",
                )
            )
            continue
        record = live.get(volume.name)
        if record is not None and record.content not in ("", UNKNOWN) and digest != record.content:
            found.append(
                Finding(
                    f"content/{volume.name}",
                    "volume-content-changed",
                    f"the data in {volume.directory} (PV {volume.name}) is not what was written",
                    grace=5.0,
                )
            )
    explained = {
        v.directory for view in (before, after) for v in view.volumes.values() if v.directory
    }
    # A staging directory an attempt left behind (stopped or killed mid-provisioning) is the
    # provisioner's while its volume exists, and goes with it.
    explained |= {staging_of(directory) for directory in explained}
    explained |= {r.directory for r in records if r.fate == "retain" and r.deleted_at is not None}
    for directory in export.directories:
        if directory not in explained:
            found.append(
                Finding(
                    f"unexplained/{directory}",
                    "unexplained-directory",
                    f"directory {directory} is no PV's, no archive and no retained volume",
                    grace=UNEXPLAINED_GRACE,
                )
            )
    released = [r for r in records if r.fate == "archive" and r.deleted_at is not None]
    for archive in export.archives:
        if archive not in export.markers and not any(
            unregistered_archive(r.directory, {archive: ""}) for r in released
        ):
            found.append(
                Finding(
                    f"unexplained/{archive}",
                    "unexplained-directory",
                    f"archive {archive} has no marker in the registry",
                    grace=UNEXPLAINED_GRACE,
                )
            )
    return found


def _released(
    seen_volumes: set[str], export: ExportView, records: list[ClaimRecord]
) -> list[Finding]:
    """A released volume, once its PV is gone: removed, archived intact, or kept intact."""
    found = []
    archive_of = {pv: archive for archive, pv in export.markers.items()}
    for record in records:
        if record.deleted_at is None or not record.volume or record.volume in seen_volumes:
            continue
        pv = record.volume
        expected = record.content
        archive = archive_of.get(pv)
        if archive is None and record.fate == "archive":
            archive = unregistered_archive(record.directory, export.archives)
        if record.fate == "delete":
            if record.directory in export.directories or archive is not None:
                found.append(
                    Finding(
                        f"released/{pv}",
                        "deleted-volume-still-there",
                        f"PV {pv} is gone but its directory {record.directory} "
                        + ("was archived as " + archive if archive else "is still there"),
                    )
                )
        elif record.fate == "archive":
            if archive is None and not record.provisioned:
                continue
            if archive is None or archive not in export.archives:
                found.append(
                    Finding(
                        f"released/{pv}",
                        "archive-missing",
                        f"PV {pv} is gone and no archive of {record.directory} is registered",
                    )
                )
            elif expected != UNKNOWN and export.archives[archive] != expected:
                found.append(
                    Finding(
                        f"released/{pv}",
                        "archive-content-changed",
                        f"archive {archive} of PV {pv} does not hold what was written",
                    )
                )
            elif record.directory in export.directories:
                found.append(
                    Finding(
                        f"released/{pv}",
                        "archived-volume-still-there",
                        f"PV {pv} was archived as {archive} but {record.directory} is still there",
                        grace=UNEXPLAINED_GRACE,
                    )
                )
        elif record.directory not in export.directories and not record.provisioned:
            continue
        elif expected != UNKNOWN and export.directories.get(record.directory) != expected:
            found.append(
                Finding(
                    f"released/{pv}",
                    "retained-volume-changed",
                    f"retained directory {record.directory} of PV {pv} is "
                    + ("gone" if record.directory not in export.directories else "changed"),
                )
            )
    return found


def staging_of(directory: str) -> str:
    """Where the provisioner makes ``directory`` before renaming it into place."""
    parent, _, leaf = directory.rpartition("/")
    return f"{parent}/{staging_name(leaf)}" if parent else staging_name(leaf)


def unregistered_archive(directory: str, archives: Mapping[str, str]) -> str | None:
    """The archive of ``directory`` by its name, when the registry has no marker for it.

    The provisioner renames a released directory to ``archived-<its name>`` (a dated name if
    that is taken), then writes its marker; a marker it cannot write (a full export) does not
    fail the deletion, and the archive then just never expires (README, "Archive retention").
    """
    base = ARCHIVE_PREFIX + directory.rsplit("/", 1)[-1]
    found = sorted(a for a in archives if a == base or a.startswith(base + "-"))
    return found[0] if found else None


def unregistered_archives(export: ExportView) -> list[str]:
    return sorted(a for a in export.archives if a not in export.markers)


@dataclass(frozen=True)
class LogRecord:
    at: datetime
    replica: str
    event: str
    detail: str = ""


def acts_outside_own_term(records: Iterable[LogRecord]) -> list[Finding]:
    """Actions a replica logged while another replica's lease term was the latest begun.

    A term begins with a replica's "became leader"; every action after it, until the next
    replica's "became leader", must be that replica's.
    """
    found = []
    leader = ""
    began = ""
    for record in sorted(records, key=lambda r: r.at):
        if record.event == BECAME_LEADER:
            leader, began = record.replica, record.at.isoformat()
        elif record.event in ACTIONS and record.replica != leader:
            found.append(
                Finding(
                    f"term/{record.replica}/{record.at.isoformat()}",
                    "two-replicas-in-one-term",
                    f"{record.replica} logged {record.event!r} {record.detail} at "
                    f"{record.at.isoformat()}, in the term {leader or 'nobody'} began at "
                    f"{began or '-'}",
                )
            )
    return found


@dataclass
class Monitor:
    """Turns findings into violations when they last longer than their grace."""

    first_seen: dict[str, float] = field(default_factory=dict)
    reported: set[str] = field(default_factory=set)

    def observe(self, now: float, findings: Iterable[Finding]) -> list[Finding]:
        current = {f.key: f for f in findings}
        for key in list(self.first_seen):
            if key not in current:
                del self.first_seen[key]
        violations = []
        for key, finding in current.items():
            since = self.first_seen.setdefault(key, now)
            if now - since >= finding.grace and key not in self.reported:
                self.reported.add(key)
                violations.append(finding)
        return violations


def unsettled(api: ApiView, records: Iterable[ClaimRecord], before: float) -> list[str]:
    """What keeps the system from having converged on what the soak did up to ``before``:
    claims not Bound, released volumes not gone, resizes not done."""
    left = []
    for record in records:
        if record.created_at > before:
            continue
        claim = api.claims.get(record.key)
        if record.deleted_at is None:
            if claim is None or claim.phase != "Bound":
                left.append(f"claim {record.key} not Bound")
            elif (
                record.resize_at is not None
                and record.resize_at <= before
                and (claim.capacity_mi or 0) < record.requested_mi
            ):
                left.append(f"claim {record.key} not resized to {record.requested_mi}Mi")
        elif record.deleted_at <= before:
            if claim is not None:
                left.append(f"claim {record.key} not deleted")
            elif record.volume and record.volume in api.volumes:
                left.append(f"PV {record.volume} of deleted claim {record.key} not released")
    return left
