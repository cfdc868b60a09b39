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
ID_RANGES_ACCEPTED: Final = (
    f"comma-separated ids or ranges of ids from 0 to {_MAX_ID}, "
    'such as "1000-65535" or "0,1000-1999"'
)
# The class parameters that bound what a claim may ask for (see ClaimBounds).
CLAIM_UID_RANGE: Final = "claimUidRange"
CLAIM_GID_RANGE: Final = "claimGidRange"
ALLOW_CLAIM_SPECIAL_MODES: Final = "allowClaimSpecialModes"
# setuid, setgid and sticky: a claim asking for setgid gets files of its chosen group.
_SPECIAL_BITS: Final = 0o7000


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
class IdRanges:
    """Inclusive ranges of user or group ids, as a class parameter lists them."""

    ranges: tuple[tuple[int, int], ...]

    def __contains__(self, number: object) -> bool:
        return isinstance(number, int) and any(low <= number <= high for low, high in self.ranges)

    def __str__(self) -> str:
        return ",".join(str(low) if low == high else f"{low}-{high}" for low, high in self.ranges)


def parse_id_ranges(value: str) -> IdRanges:
    """Parse ids and inclusive ranges of ids, comma-separated: "1000-65535", "0,1000-1999"."""
    ranges = []
    for part in value.split(","):
        low, dash, high = part.strip().partition("-")
        first = parse_id(low.strip())
        last = parse_id(high.strip()) if dash else first
        if last < first:
            raise ValueError(f"empty range {part!r}")
        ranges.append((first, last))
    return IdRanges(tuple(ranges))


@dataclass(frozen=True)
class ClaimBounds:
    """What a claim's annotations may ask for, when the class lets claims ask at all.

    Unset ranges allow every id but 0: a claim may have root own its directory only if the
    class's range names 0 explicitly. Setuid, setgid and sticky bits need special_modes.
    """

    uids: IdRanges | None = None
    gids: IdRanges | None = None
    special_modes: bool = False


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
    from_class: Ownership,
    *,
    allow_claim: bool,
    annotations: Mapping[str, str],
    bounds: ClaimBounds = ClaimBounds(),
) -> Ownership:
    """The class's ownership, overridden field by field by the claim's annotations if allowed.

    Without the class's consent the annotations are ignored: any user who may create a claim
    could otherwise hand a directory to any uid on the server. With it, what they ask for must
    lie within bounds (the class's own uid, gid and mode are not bounded).
    """
    if not allow_claim:
        return from_class
    uid = _annotation(annotations, ANN_UID, parse_id, ID_ACCEPTED)
    gid = _annotation(annotations, ANN_GID, parse_id, ID_ACCEPTED)
    mode = _annotation(annotations, ANN_MODE, parse_mode, MODE_ACCEPTED)
    _check_id(annotations, ANN_UID, uid, bounds.uids, "uid", CLAIM_UID_RANGE)
    _check_id(annotations, ANN_GID, gid, bounds.gids, "gid", CLAIM_GID_RANGE)
    if mode is not None and mode & _SPECIAL_BITS and not bounds.special_modes:
        raise InvalidAnnotationError(
            ANN_MODE,
            annotations[ANN_MODE],
            'modes without the setuid, setgid and sticky bits, such as "0770": the '
            f'StorageClass does not set its parameter "{ALLOW_CLAIM_SPECIAL_MODES}" to "true"',
        )
    return Ownership(
        uid=from_class.uid if uid is None else uid,
        gid=from_class.gid if gid is None else gid,
        mode=from_class.mode if mode is None else mode,
    )


def _check_id(
    annotations: Mapping[str, str],
    key: str,
    number: int | None,
    allowed: IdRanges | None,
    kind: str,
    parameter: str,
) -> None:
    if number is None:
        return
    if allowed is None:
        if number != 0:
            return
        accepted = (
            f"{kind}s from 1 to {_MAX_ID}: 0 (root) only if the StorageClass parameter "
            f'"{parameter}" includes it'
        )
    else:
        if number in allowed:
            return
        accepted = f'{kind}s in the StorageClass parameter "{parameter}": {allowed}'
    raise InvalidAnnotationError(key, annotations[key], accepted)


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
