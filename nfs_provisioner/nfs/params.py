"""StorageClass parameters, parsed once into a typed options object."""

import dataclasses
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from nfs_provisioner.nfs.errors import InvalidParameterError
from nfs_provisioner.nfs.ownership import (
    ALLOW_CLAIM_SPECIAL_MODES,
    CLAIM_GID_RANGE,
    CLAIM_UID_RANGE,
    DEFAULT_MODE,
    ID_ACCEPTED,
    ID_RANGES_ACCEPTED,
    MODE_ACCEPTED,
    ClaimBounds,
    IdRanges,
    Ownership,
    parse_id,
    parse_id_ranges,
    parse_mode,
)
from nfs_provisioner.nfs.retention import RETENTION_ACCEPTED, parse_retention
from nfs_provisioner.nfs.volumes import normalize_export_path
from nfs_provisioner.values import GO_BOOL_ACCEPTED, parse_go_bool


@dataclass(frozen=True)
class ClassOptions:
    """What a StorageClass's parameters ask of the backend; the defaults are an empty class."""

    on_delete: Literal["delete", "retain"] | None = None
    archive_on_delete: bool = True
    path_pattern: str | None = None
    uid: int | None = None
    gid: int | None = None
    mode: int = DEFAULT_MODE
    allow_claim_ownership: bool = False
    # What claims may ask for through annotations; None: any id but 0.
    claim_uid_range: IdRanges | None = None
    claim_gid_range: IdRanges | None = None
    allow_claim_special_modes: bool = False
    # Claims of this class may resolve to one directory; see owners.DirectoryOwners.
    allow_shared_directories: bool = False
    # Claims may name an archive of their namespace to restore (see restores).
    allow_restore: bool = False
    # Seconds an archived directory is kept; None: for ever.
    archive_retention: float | None = None
    # Which mounted export serves the class; None: the default export's value.
    server: str | None = None
    share: str | None = None

    @property
    def ownership(self) -> Ownership:
        return Ownership(uid=self.uid, gid=self.gid, mode=self.mode)

    @property
    def claim_bounds(self) -> ClaimBounds:
        return ClaimBounds(
            uids=self.claim_uid_range,
            gids=self.claim_gid_range,
            special_modes=self.allow_claim_special_modes,
        )


class DeletePolicy(enum.Enum):
    """What happens to a volume's directory once its PersistentVolume is released."""

    REMOVE = "remove"
    ARCHIVE = "archive"
    RETAIN = "retain"


def _parse_on_delete(value: str) -> Literal["delete", "retain"]:
    # Go silently ignores any other spelling (even "Delete"), which surprises people into
    # archiving or deleting data they meant to keep; refusing the class is the safe reading.
    if value == "delete":
        return "delete"
    if value == "retain":
        return "retain"
    raise ValueError(value)


def _parse_path_pattern(value: str) -> str | None:
    # Go treats an empty pattern like an absent one: the default directory name.
    return value or None


def _parse_server(value: str) -> str | None:
    # Empty means unset, as for pathPattern: a chart that renders an empty value means "default".
    if any(char.isspace() or char == "/" for char in value):
        raise ValueError(value)
    return value or None


def _parse_share(value: str) -> str | None:
    return normalize_export_path(value) if value else None


@dataclass(frozen=True)
class _Parameter:
    field: str
    parse: Callable[[str], Any]
    accepted: str


# The one table of accepted parameters: a new parameter is a ClassOptions field plus one row here.
# Messages list them in this order: the Go provisioner's first, then the ones it never had.
_PARAMETERS: Final[Mapping[str, _Parameter]] = {
    "archiveOnDelete": _Parameter("archive_on_delete", parse_go_bool, GO_BOOL_ACCEPTED),
    "onDelete": _Parameter("on_delete", _parse_on_delete, "delete, retain"),
    "pathPattern": _Parameter("path_pattern", _parse_path_pattern, "any path pattern"),
    "uid": _Parameter("uid", parse_id, ID_ACCEPTED),
    "gid": _Parameter("gid", parse_id, ID_ACCEPTED),
    "mode": _Parameter("mode", parse_mode, MODE_ACCEPTED),
    "allowClaimOwnership": _Parameter("allow_claim_ownership", parse_go_bool, GO_BOOL_ACCEPTED),
    CLAIM_UID_RANGE: _Parameter("claim_uid_range", parse_id_ranges, ID_RANGES_ACCEPTED),
    CLAIM_GID_RANGE: _Parameter("claim_gid_range", parse_id_ranges, ID_RANGES_ACCEPTED),
    ALLOW_CLAIM_SPECIAL_MODES: _Parameter(
        "allow_claim_special_modes", parse_go_bool, GO_BOOL_ACCEPTED
    ),
    "allowSharedDirectories": _Parameter(
        "allow_shared_directories", parse_go_bool, GO_BOOL_ACCEPTED
    ),
    "allowRestore": _Parameter("allow_restore", parse_go_bool, GO_BOOL_ACCEPTED),
    "archiveRetention": _Parameter("archive_retention", parse_retention, RETENTION_ACCEPTED),
    "server": _Parameter("server", _parse_server, "the NFS server of a mounted export"),
    "share": _Parameter("share", _parse_share, "the absolute path of a mounted export"),
}


def parse_class_parameters(parameters: Mapping[str, str] | None) -> ClassOptions:
    """Parse StorageClass.parameters, rejecting unknown keys and malformed values."""
    changes: dict[str, Any] = {}
    for key, value in (parameters or {}).items():
        parameter = _PARAMETERS.get(key)
        if parameter is None:
            raise InvalidParameterError.unknown(key, value, _PARAMETERS)
        try:
            changes[parameter.field] = parameter.parse(value)
        except ValueError:
            raise InvalidParameterError.bad_value(key, value, parameter.accepted) from None
    return dataclasses.replace(ClassOptions(), **changes)


def deletion_policy(options: ClassOptions) -> DeletePolicy:
    """onDelete wins over archiveOnDelete; with neither set, data is archived, never lost."""
    if options.on_delete == "delete":
        return DeletePolicy.REMOVE
    if options.on_delete == "retain":
        return DeletePolicy.RETAIN
    if not options.archive_on_delete:
        return DeletePolicy.REMOVE
    return DeletePolicy.ARCHIVE
