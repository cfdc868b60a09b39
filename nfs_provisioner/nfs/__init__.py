"""The NFS storage backend: path patterns and their safety, directories, PV bodies.

Plain dicts in and out; this package never talks to the API server.
"""

from nfs_provisioner.nfs.backend import NFSBackend
from nfs_provisioner.nfs.errors import (
    InvalidAnnotationError,
    InvalidParameterError,
    StorageError,
    UnsafePathError,
    UnsupportedClaimError,
)
from nfs_provisioner.nfs.exports import Export, ExportSet
from nfs_provisioner.nfs.filesystem import ExportRoot
from nfs_provisioner.nfs.ownership import Ownership, resolve_ownership
from nfs_provisioner.nfs.params import (
    ClassOptions,
    DeletePolicy,
    deletion_policy,
    parse_class_parameters,
)
from nfs_provisioner.nfs.patterns import (
    default_directory_name,
    expand_path_pattern,
    resolve_volume_directory,
)
from nfs_provisioner.nfs.retention import ArchiveMarker, parse_retention
from nfs_provisioner.nfs.volumes import (
    build_persistent_volume,
    local_directory_for,
    normalize_export_path,
)
from nfs_provisioner.storage import BackendError, DeleteOutcome, ProvisionRequest

__all__ = [
    "ArchiveMarker",
    "BackendError",
    "ClassOptions",
    "DeleteOutcome",
    "DeletePolicy",
    "Export",
    "ExportRoot",
    "ExportSet",
    "InvalidAnnotationError",
    "InvalidParameterError",
    "NFSBackend",
    "Ownership",
    "ProvisionRequest",
    "StorageError",
    "UnsafePathError",
    "UnsupportedClaimError",
    "build_persistent_volume",
    "default_directory_name",
    "deletion_policy",
    "expand_path_pattern",
    "local_directory_for",
    "normalize_export_path",
    "parse_class_parameters",
    "parse_retention",
    "resolve_ownership",
    "resolve_volume_directory",
]
