"""The NFS backend: provision a directory per claim and dispose of it when the volume goes."""

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any, Final

import structlog

from nfs_provisioner.nfs import archives, clones, restores
from nfs_provisioner.nfs._paths import quote, split_components
from nfs_provisioner.nfs.errors import UnsafePathError, UnsupportedClaimError
from nfs_provisioner.nfs.exports import Export, ExportSet
from nfs_provisioner.nfs.filesystem import ExportRoot
from nfs_provisioner.nfs.isolation import Conflict, DirectoryOwners, Location
from nfs_provisioner.nfs.ownership import resolve_ownership
from nfs_provisioner.nfs.params import (
    ClassOptions,
    DeletePolicy,
    deletion_policy,
    parse_class_parameters,
)
from nfs_provisioner.nfs.patterns import ARCHIVE_PREFIX, resolve_volume_directory
from nfs_provisioner.nfs.restores import ANN_RESTORE_FROM, RestoreRefusedError
from nfs_provisioner.nfs.retention import ArchiveMarker
from nfs_provisioner.nfs.volumes import build_persistent_volume
from nfs_provisioner.objects import metadata_of, object_name, spec_of
from nfs_provisioner.storage import (
    BackendError,
    CloneReport,
    DeleteOutcome,
    ExpiredStorage,
    ProvisionRequest,
    Throttle,
    VolumeUsage,
)

log = structlog.get_logger(__name__)

# On a PV: the storage class whose volumes may share this one's directory (allowSharedDirectories).
ANN_SHARED_DIRECTORY: Final = "nfs-provisioner/shared-directory-class"


class NFSBackend:
    """Serves claims from subdirectories of NFS exports mounted locally.

    The default export is server:export_path at mount_path; extra_exports are more of them,
    which a StorageClass selects with its server and share parameters.
    """

    supports_block = False

    def __init__(
        self,
        *,
        server: str,
        export_path: str,
        mount_path: str | os.PathLike[str],
        extra_exports: Sequence[Export] = (),
    ) -> None:
        default = Export.of(server, export_path, mount_path)
        self.exports = ExportSet(default, extra_exports)
        self._roots = {export: ExportRoot(export.mount_path) for export in self.exports.exports}
        self.owners = DirectoryOwners()
        # PV name -> the marker of its archive, made but not yet written to the registry.
        self._unwritten_markers: dict[str, tuple[Export, ArchiveMarker]] = {}
        self._markers_lock = threading.Lock()

    def root_of(self, export: Export) -> ExportRoot:
        return self._roots[export]

    def provision(self, request: ProvisionRequest) -> dict[str, Any]:
        """Create the claim's directory and return the PV body that points at it."""
        return self._provision(request, None)

    def clone(
        self, request: ProvisionRequest, source: Mapping[str, Any], progress: CloneReport
    ) -> dict[str, Any]:
        """Like provision, the directory holding a copy of the source PV's (see clones)."""
        fill = clones.filler(self, request, source, progress)
        return self._provision(request, fill)

    def _provision(
        self, request: ProvisionRequest, fill: Callable[[int], None] | None
    ) -> dict[str, Any]:
        claim = request.claim
        if spec_of(claim).get("selector") is not None:
            raise UnsupportedClaimError("claim Selector is not supported")
        options = parse_class_parameters(request.storage_class.get("parameters"))
        export = self.exports.select(options.server, options.share)
        metadata = metadata_of(claim)
        annotations = metadata.get("annotations") or {}
        ownership = resolve_ownership(
            options.ownership,
            allow_claim=options.allow_claim_ownership,
            annotations=annotations,
            bounds=options.claim_bounds,
        )
        directory = resolve_volume_directory(
            options.path_pattern,
            namespace=metadata.get("namespace", ""),
            name=metadata.get("name", ""),
            labels=metadata.get("labels") or {},
            annotations=annotations,
            pv_name=request.pv_name,
        )
        location = self._location(export, directory)
        self._check_export_boundaries(export, location, directory)
        class_name = object_name(request.storage_class)
        share_group = class_name if options.allow_shared_directories else None
        # Built before the directory exists so that a claim we cannot serve leaves no trace.
        volume = build_persistent_volume(
            pv_name=request.pv_name,
            server=export.server,
            export_path=export.share,
            directory=directory,
            claim=claim,
            storage_class=request.storage_class,
        )
        if share_group is not None:
            volume["metadata"]["annotations"] = {ANN_SHARED_DIRECTORY: share_group}
        restore_from = annotations.get(ANN_RESTORE_FROM)
        if restore_from is not None:
            if not options.allow_restore:
                raise RestoreRefusedError(
                    f"annotation {ANN_RESTORE_FROM} asks for a restore, but StorageClass "
                    f"{quote(class_name)} does not allow restores (parameter allowRestore)"
                )
            if fill is not None:
                raise RestoreRefusedError(
                    f"annotation {ANN_RESTORE_FROM} and a dataSource both say where the "
                    "volume's data comes from; use one of them"
                )
        conflicts = self.owners.reserve(request.pv_name, location, share_group)
        if conflicts:
            raise UnsafePathError(_conflict_message(directory, export, conflicts, share_group))
        root = self._roots[export]
        try:
            if restore_from is not None:
                created = self._restore(root, export, restore_from, metadata, directory, request)
            else:
                created = root.create_directory(
                    directory, ownership.mode, uid=ownership.uid, gid=ownership.gid, fill=fill
                )
        except BaseException:
            self.owners.forget(request.pv_name)
            raise
        if not created:
            again = " (it is not copied again)" if fill is not None else ""
            request.report(
                "ReusingDirectory",
                f"directory {quote(str(directory))} already exists in {export} and no other "
                f"PersistentVolume uses it: it is reused with its content, owner and mode as "
                f"they are{again}",
            )
        return volume

    def _restore(
        self,
        root: ExportRoot,
        export: Export,
        wanted: str,
        metadata: Mapping[str, Any],
        directory: PurePosixPath,
        request: ProvisionRequest,
    ) -> bool:
        """Move the archive the claim names into its directory; see restores."""
        namespace = str(metadata.get("namespace", ""))
        if root.exists(directory):
            # A restore that finished before its PV could be saved; nothing else is reused.
            request.report(
                "ReusingDirectory",
                f"directory {quote(str(directory))} already exists in {export}: it is used as "
                "it is; no archive is moved",
            )
            return True
        marker = restores.restore(root, wanted, namespace, str(export), directory)
        request.report(
            "Restored",
            f"archive {quote(marker.archive)} (of claim {quote(str(marker.claim_name))}, "
            f"archived {marker.archived_at:%Y-%m-%d %H:%M:%SZ}) moved to "
            f"{quote(str(directory))} in {export}",
        )
        return True

    def track_volume(self, pv: Mapping[str, Any]) -> None:
        """Record the directory any PV (of any provisioner) owns; see owners.DirectoryOwners."""
        name = object_name(pv)
        if not name:
            return
        annotations = metadata_of(pv).get("annotations") or {}
        share_group = annotations.get(ANN_SHARED_DIRECTORY)
        self.owners.track(name, self._location_of(pv), share_group or None)

    def forget_volume(self, pv_name: str) -> None:
        self.owners.forget(pv_name)

    def _location(self, export: Export, directory: PurePosixPath) -> Location:
        return (export.server.lower(), *split_components(export.share), *directory.parts)

    def _location_of(self, pv: Mapping[str, Any]) -> Location | None:
        """Where the PV's directory is; None if it is in no mounted export or is an export root.

        A PV of the whole export (the chart's own, say) or of a directory above it is an
        administrator's view of the share, not a volume inside it.
        """
        try:
            export, directory = self.exports.locate(pv)
        except BackendError:
            return None
        return self._location(export, directory)

    def _check_export_boundaries(
        self, export: Export, location: Location, directory: PurePosixPath
    ) -> None:
        """A directory of one export may not be, hold or lie in another export mounted here."""
        depth = len(split_components(export.share))
        for other in self.exports.exports:
            if other is export or other.server.lower() != export.server.lower():
                continue
            root = (other.server.lower(), *split_components(other.share))
            inside_nested = len(root) > depth + 1 and location[: len(root)] == root
            holds = root[: len(location)] == location
            if inside_nested or holds:
                raise UnsafePathError(
                    f"directory {quote(str(directory))} of export {export} is, holds or lies in "
                    f"the export {other}, which is mounted separately: volumes of that export "
                    "belong to it. Change the pathPattern, or use that export (parameters server "
                    "and share)"
                )

    def delete(
        self, pv: Mapping[str, Any], storage_class: Mapping[str, Any] | None
    ) -> DeleteOutcome:
        """Remove, archive or keep the PV's directory as its StorageClass says.

        Without the class (it was deleted) the directory is archived: nothing else is both safe
        and final, whereas the Go provisioner fails the deletion forever. A directory that
        another PV also uses (a shared one) is kept; one that holds another PV's directory is
        refused, whatever the class says.
        """
        export, directory = self.exports.locate(pv)
        root = self._roots[export]
        with self._markers_lock:
            unwritten = self._unwritten_markers.pop(object_name(pv), None)
        if unwritten is not None:
            # Archived on an earlier attempt, whose marker the export refused (full, say).
            self._record_marker(object_name(pv), *unwritten)
            return DeleteOutcome.ARCHIVED
        self._clear_staging(root, directory)
        # Like Go, a directory that is already gone needs no policy, so even a class whose
        # parameters are now refused cannot block the PV's deletion.
        if not root.exists(directory):
            return DeleteOutcome.ALREADY_GONE
        options = (
            None
            if storage_class is None
            else parse_class_parameters(storage_class.get("parameters"))
        )
        policy = DeletePolicy.ARCHIVE if options is None else deletion_policy(options)
        if policy is DeletePolicy.RETAIN:
            return DeleteOutcome.RETAINED
        if self._still_used(pv, export, directory):
            return DeleteOutcome.SHARED
        if policy is DeletePolicy.REMOVE:
            removed = root.remove_directory(directory)
            return DeleteOutcome.REMOVED if removed else DeleteOutcome.ALREADY_GONE
        archived = root.archive_directory(directory, ARCHIVE_PREFIX + directory.name)
        if archived is None:
            return DeleteOutcome.ALREADY_GONE
        try:
            marker = self._archive_marker(root, archived, directory, pv, storage_class, options)
        except BackendError as error:
            log.warning(
                "cannot read the archive's inode; this archive will not expire on its own",
                archive=archived,
                error=str(error),
            )
            return DeleteOutcome.ARCHIVED
        if marker is not None:
            self._record_marker(object_name(pv), export, marker)
        return DeleteOutcome.ARCHIVED

    def _clear_staging(self, root: ExportRoot, directory: PurePosixPath) -> None:
        """A staging directory left for this volume's directory goes with the volume; one that
        cannot be removed now is no reason to keep the volume."""
        try:
            if root.clear_staging(directory):
                log.info("removed a staging directory left behind", directory=str(directory))
        except BackendError as error:
            log.warning("cannot remove a staging directory left behind", error=str(error))

    def _still_used(self, pv: Mapping[str, Any], export: Export, directory: PurePosixPath) -> bool:
        """True if other PVs use exactly this directory; refuses one that holds other volumes."""
        name = object_name(pv)
        location = self._location(export, directory)
        conflicts = self.owners.conflicts(location, ignore=name)
        holding = [conflict for conflict in conflicts if conflict.relation == "around"]
        if holding:
            owners = ", ".join(conflict.owner for conflict in holding[:5])
            more = f" and {len(holding) - 5} more" if len(holding) > 5 else ""
            raise UnsafePathError(
                f"directory {quote(str(directory))} in {export} holds the directories of other "
                f"PersistentVolumes ({owners}{more}); refusing to remove or archive it while "
                "they exist. Delete those volumes first, or move their data"
            )
        return any(conflict.relation == "same" for conflict in conflicts)

    def discard(self, pv: Mapping[str, Any]) -> DeleteOutcome:
        """Undo provision() for a PV that was never saved.

        The directory holds no data yet unless it was reused, so it is removed when empty and
        kept otherwise. Archiving it instead, as the class's delete rules would, leaves one more
        empty archive behind on every retry of a refused PV.
        """
        name = object_name(pv)
        export, directory = self.exports.locate(pv)
        self.owners.forget(name)
        root = self._roots[export]
        if not root.exists(directory):
            return DeleteOutcome.ALREADY_GONE
        if self.owners.conflicts(self._location(export, directory)):
            return DeleteOutcome.SHARED
        if root.remove_empty_directory(directory):
            return DeleteOutcome.REMOVED
        return DeleteOutcome.RETAINED

    def _archive_marker(
        self,
        root: ExportRoot,
        archive: str,
        directory: PurePosixPath,
        pv: Mapping[str, Any],
        storage_class: Mapping[str, Any] | None,
        options: ClassOptions | None,
    ) -> ArchiveMarker | None:
        """What the registry records of an archive just made: when, from where, under which
        retention, and its inode, so that only what the provisioner archived itself can ever
        expire. None if the archive is gone already."""
        found = root.directory_id(PurePosixPath(archive))
        if found is None:
            return None
        claim_ref = spec_of(pv).get("claimRef") or {}
        return ArchiveMarker(
            archived_at=datetime.now(UTC),
            retention=None if options is None else options.archive_retention,
            storage_class=_class_name(pv, storage_class),
            volume=object_name(pv) or None,
            archive=archive,
            inode=found[1],
            source=str(directory),
            claim_namespace=claim_ref.get("namespace") or None,
            claim_name=claim_ref.get("name") or None,
        )

    def _record_marker(self, pv_name: str, export: Export, marker: ArchiveMarker) -> None:
        """Write the marker into the registry; if the export refuses it (full, read-only, the
        server away), keep it and fail the deletion, so the PV stays and the retry writes it.
        A registry whose place something else took is refused for good: then the archive
        stands unregistered, as before.

        Found by the soak (hack/soak): deleting the PV anyway left archives the registry never
        knew, which neither expire nor can be restored by claim, after a passing fault.
        """
        try:
            archives.record(self._roots[export], marker)
        except UnsafePathError as error:
            # Not the export failing for a while but the registry's place taken (a file, a
            # link): no retry mends that, so the archive stands, never expiring on its own.
            log.warning(
                "cannot write the archive marker; this archive will not expire on its own",
                archive=marker.archive,
                error=str(error),
            )
        except BackendError as error:
            with self._markers_lock:
                self._unwritten_markers[pv_name] = (export, marker)
            raise BackendError(
                f"archived the volume's directory as {quote(marker.archive)} but cannot record "
                f"it in the export's registry of archives: {error}; the PersistentVolume is kept "
                "and recording is retried"
            ) from error

    def expand(self, pv: Mapping[str, Any], requested: str) -> str:
        """Nothing to do on the export: NFS cannot limit a directory's size, so growing a
        volume only changes the capacity Kubernetes records."""
        return requested

    def measure(self, pv: Mapping[str, Any], throttle: Throttle) -> VolumeUsage:
        export, directory = self.exports.locate(pv)
        return self._roots[export].measure(directory, throttle)

    def sweep_expired(self, now: datetime) -> list[ExpiredStorage]:
        """Remove the archives, in every export, whose registered marker says they expired.

        Only archives the provisioner registered are candidates, and only while the marker's
        inode is still theirs and no PV uses the directory: a directory named like an archive,
        or holding a file that looks like a marker, is never removed. Each problem is reported
        and the sweep goes on with the next archive.
        """
        results = []
        for export in self.exports.exports:
            root = self._roots[export]
            try:
                for found in archives.registered(root):
                    result = self._sweep_one(export, root, found, now)
                    if result is not None:
                        results.append(result)
            except BackendError as error:
                results.append(ExpiredStorage(str(export), 0.0, error=str(error)))
        return results

    def _sweep_one(
        self,
        export: Export,
        root: ExportRoot,
        found: archives.RegisteredArchive,
        now: datetime,
    ) -> ExpiredStorage | None:
        marker = found.marker
        if marker is None:
            return ExpiredStorage(f"{export}/{found.entry}", 0.0, error=found.error)
        location = f"{export}/{marker.archive}"
        try:
            if not marker.is_expired(now):
                return None
            archive = PurePosixPath(marker.archive)
            if not archives.is_current(root, marker):
                # Gone, or replaced by a directory the marker was not written for.
                root.remove_file(found.entry)
                return None
            users = self.owners.conflicts(self._location(export, archive))
            if users:
                return ExpiredStorage(
                    location,
                    marker.age(now),
                    error=f"PersistentVolume {users[0].owner} uses it; it is kept",
                )
            root.remove_directory(archive)
            root.remove_file(found.entry)
        except BackendError as error:
            return ExpiredStorage(location, marker.age(now), error=str(error))
        return ExpiredStorage(location, marker.age(now))


def _conflict_message(
    directory: PurePosixPath, export: Export, conflicts: list[Conflict], share_group: str | None
) -> str:
    first = conflicts[0]
    more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
    message = (
        f"directory {quote(str(directory))} in {export} {first.describe()}{more}; a volume may "
        "not share, hold or lie in the directory of another volume. Change the claim's labels "
        "or annotations, or the class's pathPattern"
    )
    if first.relation == "same" and share_group is None:
        message += (
            "; volumes of one class may share a directory only when the class sets "
            'allowSharedDirectories: "true"'
        )
    return message


def _class_name(pv: Mapping[str, Any], storage_class: Mapping[str, Any] | None) -> str | None:
    if storage_class is not None:
        name = metadata_of(storage_class).get("name")
    else:
        name = spec_of(pv).get("storageClassName")
    return str(name) if name else None
