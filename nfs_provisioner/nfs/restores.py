"""Restoring an archived volume into a new claim, by one annotation on the claim.

The claim names an archive (``archived-...``, as ``audit`` lists it) or the deleted claim
(``namespace/name``; the newest archive of that claim is taken). Only archives the provisioner
registered are found, and only those whose marker says the volume belonged to a claim of the
restoring claim's own namespace: a claim never reads another namespace's data. Markers written
before restores existed name no claim, so those archives cannot be restored by a claim (an
administrator still can, with a shell on the server).

The archive is **moved**, not copied: a rename on the same export is instant whatever the size,
keeps every owner, mode, time and hard link exactly, and leaves one copy of the data rather
than two. Its registry entry goes with it, so the live volume is never swept as an expired
archive and the same archive cannot be restored twice. Hence a restore must use a class on the
archive's own export.

Every refusal reads the same for an archive that does not exist, belongs to another namespace
or names no claim: telling them apart would tell a tenant which other namespaces' archives
exist.
"""

from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Final

from nfs_provisioner.nfs import archives
from nfs_provisioner.nfs._paths import quote
from nfs_provisioner.nfs.errors import UnsupportedClaimError
from nfs_provisioner.nfs.filesystem import ExportRoot
from nfs_provisioner.nfs.retention import ArchiveMarker

# On a claim: the archive (or "namespace/claim") whose data the new volume starts with.
ANN_RESTORE_FROM: Final = "nfs-provisioner/restore-from"


class RestoreRefusedError(UnsupportedClaimError):
    """A restore the claim may not have; the message says why."""


def find_archive(
    registered: Iterable[archives.RegisteredArchive], wanted: str, namespace: str, export: str
) -> ArchiveMarker:
    """The marker of the archive wanted names that a claim of namespace may restore."""
    wanted = wanted.strip()
    not_found = RestoreRefusedError(
        f"annotation {ANN_RESTORE_FROM}={quote(wanted)}: no archive of namespace "
        f"{quote(namespace)} by that name in {export}. Name an archive (as `nfs-provisioner "
        "audit` lists it) or a deleted claim as namespace/name; only archives of the claim's "
        "own namespace that the provisioner archived since restores exist can be restored"
    )
    if not wanted:
        raise not_found
    if "/" in wanted:
        claim_namespace, _, claim_name = wanted.partition("/")
        if claim_namespace != namespace:
            raise not_found
        candidates = [
            found.marker
            for found in registered
            if found.marker is not None
            and found.marker.claim_namespace == namespace
            and found.marker.claim_name == claim_name
        ]
    else:
        candidates = [
            found.marker
            for found in registered
            if found.marker is not None
            and found.marker.archive == wanted
            and found.marker.claim_namespace == namespace
        ]
    if not candidates:
        raise not_found
    return max(candidates, key=lambda marker: marker.archived_at)


def restore(
    root: ExportRoot, wanted: str, namespace: str, export: str, directory: PurePosixPath
) -> ArchiveMarker:
    """Move the archive wanted names into directory and forget it in the registry."""
    marker = find_archive(archives.registered(root), wanted, namespace, export)
    if not root.move_archive(marker.archive, marker.inode, directory):
        # Gone, or replaced by a directory the marker was not written for.
        raise RestoreRefusedError(
            f"annotation {ANN_RESTORE_FROM}={quote(wanted)}: archive {quote(marker.archive)} "
            f"in {export} is no longer the directory that was archived; it cannot be restored"
        )
    root.remove_file(archives.entry_for(marker.archive))
    return marker


def restore_command(marker: ArchiveMarker) -> str | None:
    """The annotation that restores this archive, for `audit`; None if none can."""
    if not marker.claim_namespace:
        return None
    return f"{ANN_RESTORE_FROM}={marker.archive} (in namespace {marker.claim_namespace})"
