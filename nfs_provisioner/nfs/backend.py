"""The NFS backend: provision a directory per claim and dispose of it when the volume goes."""

import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

import structlog

from nfs_provisioner.nfs.errors import UnsupportedClaimError
from nfs_provisioner.nfs.exports import Export, ExportSet
from nfs_provisioner.nfs.filesystem import ExportRoot
from nfs_provisioner.nfs.ownership import resolve_ownership
from nfs_provisioner.nfs.params import (
    ClassOptions,
    DeletePolicy,
    deletion_policy,
    parse_class_parameters,
)
from nfs_provisioner.nfs.patterns import ARCHIVE_PREFIX, resolve_volume_directory
from nfs_provisioner.nfs.retention import (
    MARKER_MAX_BYTES,
    MARKER_NAME,
    ArchiveMarker,
    decode_marker,
    encode_marker,
)
from nfs_provisioner.nfs.volumes import build_persistent_volume
from nfs_provisioner.volumeplugin import (
    BackendError,
    DeleteOutcome,
    ExpiredStorage,
    ProvisionRequest,
    Throttle,
    VolumeUsage,
)

log = structlog.get_logger(__name__)


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

    def root_of(self, export: Export) -> ExportRoot:
        return self._roots[export]

    def provision(self, request: ProvisionRequest) -> dict[str, Any]:
        """Create the claim's directory and return the PV body that points at it."""
        claim = request.claim
        if (claim.get("spec") or {}).get("selector") is not None:
            raise UnsupportedClaimError("claim Selector is not supported")
        options = parse_class_parameters(request.storage_class.get("parameters"))
        export = self.exports.select(options.server, options.share)
        metadata = claim.get("metadata") or {}
        annotations = metadata.get("annotations") or {}
        ownership = resolve_ownership(
            options.ownership, allow_claim=options.allow_claim_ownership, annotations=annotations
        )
        directory = resolve_volume_directory(
            options.path_pattern,
            namespace=metadata.get("namespace", ""),
            name=metadata.get("name", ""),
            labels=metadata.get("labels") or {},
            annotations=annotations,
            pv_name=request.pv_name,
        )
        # Built before the directory exists so that a claim we cannot serve leaves no trace.
        volume = build_persistent_volume(
            pv_name=request.pv_name,
            server=export.server,
            export_path=export.share,
            directory=directory,
            claim=claim,
            storage_class=request.storage_class,
        )
        self._roots[export].create_directory(
            directory, ownership.mode, uid=ownership.uid, gid=ownership.gid
        )
        return volume

    def delete(
        self, pv: Mapping[str, Any], storage_class: Mapping[str, Any] | None
    ) -> DeleteOutcome:
        """Remove, archive or keep the PV's directory as its StorageClass says.

        Without the class (it was deleted) the directory is archived: nothing else is both safe
        and final, whereas the Go provisioner fails the deletion forever.
        """
        export, directory = self.exports.locate(pv)
        root = self._roots[export]
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
        if policy is DeletePolicy.REMOVE:
            removed = root.remove_directory(directory)
            return DeleteOutcome.REMOVED if removed else DeleteOutcome.ALREADY_GONE
        self._mark_archive(root, directory, pv, storage_class, options)
        archived = root.archive_directory(directory, ARCHIVE_PREFIX + directory.name)
        return DeleteOutcome.ARCHIVED if archived is not None else DeleteOutcome.ALREADY_GONE

    def discard(self, pv: Mapping[str, Any]) -> DeleteOutcome:
        """Undo provision() for a PV that was never saved.

        The directory holds no data yet unless pathPattern pointed at an existing one, so it is
        removed when empty and kept otherwise. Archiving it instead, as the class's delete rules
        would, leaves one more empty archive behind on every retry of a refused PV.
        """
        export, directory = self.exports.locate(pv)
        root = self._roots[export]
        if not root.exists(directory):
            return DeleteOutcome.ALREADY_GONE
        if root.remove_empty_directory(directory):
            return DeleteOutcome.REMOVED
        return DeleteOutcome.RETAINED

    def _mark_archive(
        self,
        root: ExportRoot,
        directory: PurePosixPath,
        pv: Mapping[str, Any],
        storage_class: Mapping[str, Any] | None,
        options: ClassOptions | None,
    ) -> None:
        """Record when and under which retention the directory is archived, inside it.

        Written before the rename, so no archive of ours ever lacks it: a retry after a crash
        rewrites it. A marker that cannot be written is no reason to keep a released volume
        from being archived; that archive just never expires on its own.
        """
        marker = ArchiveMarker(
            archived_at=datetime.now(UTC),
            retention=None if options is None else options.archive_retention,
            storage_class=_class_name(pv, storage_class),
            volume=str((pv.get("metadata") or {}).get("name") or "") or None,
        )
        try:
            root.write_file(directory / MARKER_NAME, encode_marker(marker))
        except BackendError as error:
            log.warning(
                "cannot write the archive marker; this archive will not expire on its own",
                pv=marker.volume,
                directory=str(directory),
                error=str(error),
            )

    def expand(self, pv: Mapping[str, Any], requested: str) -> str:
        """Nothing to do on the export: NFS cannot limit a directory's size, so growing a
        volume only changes the capacity Kubernetes records."""
        return requested

    def measure(self, pv: Mapping[str, Any], throttle: Throttle) -> VolumeUsage:
        export, directory = self.exports.locate(pv)
        return self._roots[export].measure(directory, throttle)

    def sweep_expired(self, now: datetime) -> list[ExpiredStorage]:
        """Remove the archives, in every export, whose marker says their retention has ended."""
        results = []
        for export in self.exports.exports:
            root = self._roots[export]
            try:
                names = root.subdirectories()
            except BackendError as error:
                results.append(ExpiredStorage(str(export), 0.0, error=str(error)))
                continue
            for name in names:
                if not name.startswith(ARCHIVE_PREFIX):
                    continue
                archive = PurePosixPath(name)
                location = f"{export}/{name}"
                marker = None
                try:
                    marker = read_archive_marker(root, archive)
                    if marker is None or not marker.is_expired(now):
                        continue
                    root.remove_directory(archive)
                except BackendError as error:
                    age = marker.age(now) if marker is not None else 0.0
                    results.append(ExpiredStorage(location, age, error=str(error)))
                    continue
                results.append(ExpiredStorage(location, marker.age(now)))
        return results


def read_archive_marker(root: ExportRoot, archive: PurePosixPath) -> ArchiveMarker | None:
    """The archive's marker; None if it has none or an invalid one (such archives never expire)."""
    data = root.read_file(archive / MARKER_NAME, MARKER_MAX_BYTES)
    if data is None:
        return None
    try:
        return decode_marker(data)
    except ValueError:
        return None


def _class_name(pv: Mapping[str, Any], storage_class: Mapping[str, Any] | None) -> str | None:
    if storage_class is not None:
        name = (storage_class.get("metadata") or {}).get("name")
    else:
        name = (pv.get("spec") or {}).get("storageClassName")
    return str(name) if name else None
