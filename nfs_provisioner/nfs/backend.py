"""The NFS backend: provision a directory per claim and dispose of it when the volume goes."""

import os
from collections.abc import Mapping
from typing import Any, Final

from nfs_provisioner.nfs.errors import UnsupportedClaimError
from nfs_provisioner.nfs.filesystem import ExportRoot
from nfs_provisioner.nfs.params import DeletePolicy, deletion_policy, parse_class_parameters
from nfs_provisioner.nfs.patterns import ARCHIVE_PREFIX, resolve_volume_directory
from nfs_provisioner.nfs.volumes import (
    build_persistent_volume,
    local_directory_for,
    normalize_export_path,
)
from nfs_provisioner.volumeplugin import DeleteOutcome, ProvisionRequest

_VOLUME_MODE: Final = 0o777


class NFSBackend:
    """Serves claims from subdirectories of one NFS export mounted at mount_path."""

    supports_block = False

    def __init__(
        self, *, server: str, export_path: str, mount_path: str | os.PathLike[str]
    ) -> None:
        self.server = server
        self.export_path = normalize_export_path(export_path)
        self.root = ExportRoot(mount_path)

    def provision(self, request: ProvisionRequest) -> dict[str, Any]:
        """Create the claim's directory and return the PV body that points at it."""
        claim = request.claim
        if (claim.get("spec") or {}).get("selector") is not None:
            raise UnsupportedClaimError("claim Selector is not supported")
        options = parse_class_parameters(request.storage_class.get("parameters"))
        metadata = claim.get("metadata") or {}
        directory = resolve_volume_directory(
            options.path_pattern,
            namespace=metadata.get("namespace", ""),
            name=metadata.get("name", ""),
            labels=metadata.get("labels") or {},
            annotations=metadata.get("annotations") or {},
            pv_name=request.pv_name,
        )
        # Built before the directory exists so that a claim we cannot serve leaves no trace.
        volume = build_persistent_volume(
            pv_name=request.pv_name,
            server=self.server,
            export_path=self.export_path,
            directory=directory,
            claim=claim,
            storage_class=request.storage_class,
        )
        self.root.create_directory(directory, _VOLUME_MODE)
        return volume

    def delete(
        self, pv: Mapping[str, Any], storage_class: Mapping[str, Any] | None
    ) -> DeleteOutcome:
        """Remove, archive or keep the PV's directory as its StorageClass says.

        Without the class (it was deleted) the directory is archived: nothing else is both safe
        and final, whereas the Go provisioner fails the deletion forever.
        """
        directory = local_directory_for(pv, export_path=self.export_path)
        # Like Go, a directory that is already gone needs no policy, so even a class whose
        # parameters are now refused cannot block the PV's deletion.
        if not self.root.exists(directory):
            return DeleteOutcome.ALREADY_GONE
        policy = (
            DeletePolicy.ARCHIVE
            if storage_class is None
            else deletion_policy(parse_class_parameters(storage_class.get("parameters")))
        )
        if policy is DeletePolicy.RETAIN:
            return DeleteOutcome.RETAINED
        if policy is DeletePolicy.REMOVE:
            removed = self.root.remove_directory(directory)
            return DeleteOutcome.REMOVED if removed else DeleteOutcome.ALREADY_GONE
        archived = self.root.archive_directory(directory, ARCHIVE_PREFIX + directory.name)
        return DeleteOutcome.ARCHIVED if archived is not None else DeleteOutcome.ALREADY_GONE

    # Undoing a volume whose PV could not be saved follows exactly the class's delete rules.
    cleanup_after_failed_save = delete
