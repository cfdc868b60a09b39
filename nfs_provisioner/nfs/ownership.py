"""Owner, group and mode of new volume directories: set by the class and, if allowed, the claim."""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from nfs_provisioner.nfs.errors import InvalidAnnotationError

ANN_UID: Final = "nfs.io/uid"
ANN_GID: Final = "nfs.io/gid"
ANN_MODE: Final = "nfs.io/mode"

# What the Go provisioner gives every directory; pods of any uid can then write to it.
DEFAULT_MODE: Final = 0o777
# (uid_t)-1 tells chown "leave unchanged", so it cannot be asked for as an owner.
_MAX_ID: Final = 2**32 - 2
_OCTAL_MODE: Final = re.compile(r"[0-7]{3,4}")

ID_ACCEPTED: Final = f"a number from 0 to {_MAX_ID}"
MODE_ACCEPTED: Final = 'an octal mode of 3 or 4 digits, such as "0770", "750" or "2775"'


def parse_id(value: str) -> int:
    """A numeric user or group id; names are refused, since the server knows no local names."""
    if not (value.isascii() and value.isdigit()) or int(value) > _MAX_ID:
        raise ValueError(f"invalid id {value!r}")
    return int(value)


def parse_mode(value: str) -> int:
    """An octal permission string as chmod takes it: "0770", "770", "2775"."""
    if _OCTAL_MODE.fullmatch(value) is None:
        raise ValueError(f"invalid mode {value!r}")
    return int(value, 8)


@dataclass(frozen=True)
class Ownership:
    """None leaves the owner or group as mkdir made it: the provisioner's own, or the server's."""

    uid: int | None = None
    gid: int | None = None
    mode: int = DEFAULT_MODE

    @property
    def changes_owner(self) -> bool:
        return self.uid is not None or self.gid is not None


def resolve_ownership(
    from_class: Ownership, *, allow_claim: bool, annotations: Mapping[str, str]
) -> Ownership:
    """The class's ownership, overridden field by field by the claim's annotations if allowed.

    Without the class's consent the annotations are ignored: any user who may create a claim
    could otherwise hand a directory to any uid on the server.
    """
    if not allow_claim:
        return from_class
    uid = _annotation(annotations, ANN_UID, parse_id, ID_ACCEPTED)
    gid = _annotation(annotations, ANN_GID, parse_id, ID_ACCEPTED)
    mode = _annotation(annotations, ANN_MODE, parse_mode, MODE_ACCEPTED)
    return Ownership(
        uid=from_class.uid if uid is None else uid,
        gid=from_class.gid if gid is None else gid,
        mode=from_class.mode if mode is None else mode,
    )


def _annotation(
    annotations: Mapping[str, str],
    key: str,
    parse: Callable[[str], int],
    accepted: str,
) -> int | None:
    value = annotations.get(key)
    if value is None:
        return None
    try:
        return parse(value)
    except ValueError:
        raise InvalidAnnotationError(key, value, accepted) from None
