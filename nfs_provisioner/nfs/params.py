"""StorageClass parameters, parsed once into a typed options object."""

import dataclasses
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from nfs_provisioner.nfs.errors import InvalidParameterError

_TRUE_SPELLINGS: Final = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE_SPELLINGS: Final = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_bool(value: str) -> bool:
    """Parse a boolean exactly as Go's strconv.ParseBool does, so existing classes keep working."""
    if value in _TRUE_SPELLINGS:
        return True
    if value in _FALSE_SPELLINGS:
        return False
    raise ValueError(f"invalid boolean {value!r}")


@dataclass(frozen=True)
class ClassOptions:
    """What a StorageClass's parameters ask of the backend; the defaults are an empty class."""

    on_delete: Literal["delete", "retain"] | None = None
    archive_on_delete: bool = True
    path_pattern: str | None = None


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


@dataclass(frozen=True)
class _Parameter:
    field: str
    parse: Callable[[str], Any]
    accepted: str


# The one table of accepted parameters: a new parameter is a ClassOptions field plus one row here.
_PARAMETERS: Final[Mapping[str, _Parameter]] = {
    "archiveOnDelete": _Parameter(
        "archive_on_delete",
        parse_bool,
        "true, false (also 1, 0, t, f, TRUE, FALSE, True, False)",
    ),
    "onDelete": _Parameter("on_delete", _parse_on_delete, "delete, retain"),
    "pathPattern": _Parameter("path_pattern", _parse_path_pattern, "any path pattern"),
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
