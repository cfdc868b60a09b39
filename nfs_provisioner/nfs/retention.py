"""How long archived directories are kept: the retention parameter and the archive's marker.

An archive keeps the Go name ``archived-<directory>``, and a name proves nothing: a namespace
may be called ``archived-x``, and a pod may write any file into its own volume. So the facts an
expiry needs live in a marker the provisioner writes at archive time into its own registry at
the top of the export (see ``archives``), which no volume can reach, and the marker names the
archive's inode. Archives without a valid marker never expire on their own.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from nfs_provisioner.objects import api_time
from nfs_provisioner.values import parse_duration

# Far more than a marker needs; a bigger file is not one of ours and is not read whole.
MARKER_MAX_BYTES: Final = 16384
# A century: longer retentions are refused rather than overflowing a date.
MAX_RETENTION_SECONDS: Final = 100 * 366 * 86400.0
RETENTION_ACCEPTED: Final = (
    "a positive duration of numbers with units w, d, h, m, s or ms, such as 30d, 12h or 1d12h"
)

_FORMAT_VERSION: Final = 2
_MAX_TEXT: Final = 4096


def parse_retention(value: str) -> float:
    """Seconds from "30d", "12h", "1d12h" (values.parse_duration); a unit is required, since
    "30" could mean anything."""
    try:
        seconds = parse_duration(value)
    except ValueError:
        raise ValueError(f"invalid retention {value!r}") from None
    if not 0 < seconds <= MAX_RETENTION_SECONDS:
        raise ValueError(f"invalid retention {value!r}")
    return seconds


@dataclass(frozen=True)
class ArchiveMarker:
    """What an archive records about itself."""

    archived_at: datetime
    retention: float | None
    storage_class: str | None
    volume: str | None
    # The archive's directory name at the top of the export, and its inode there: a directory
    # put in its place later is not the archive.
    archive: str = ""
    inode: int = 0
    # Where the volume's directory was, relative to the export.
    source: str | None = None
    # The claim the volume was bound to: only a claim of that namespace may restore it.
    claim_namespace: str | None = None
    claim_name: str | None = None

    def expires_at(self) -> datetime | None:
        if self.retention is None:
            return None
        try:
            return self.archived_at + timedelta(seconds=self.retention)
        except OverflowError:
            return None

    def is_expired(self, now: datetime) -> bool:
        expiry = self.expires_at()
        return expiry is not None and now >= expiry

    def age(self, now: datetime) -> float:
        return (now - self.archived_at).total_seconds()


def encode_marker(marker: ArchiveMarker) -> bytes:
    document = {
        "version": _FORMAT_VERSION,
        "archivedAt": api_time(marker.archived_at),
        "retentionSeconds": marker.retention,
        "storageClass": marker.storage_class,
        "persistentVolume": marker.volume,
        "archive": marker.archive,
        "inode": marker.inode,
        "source": marker.source,
        "claimNamespace": marker.claim_namespace,
        "claimName": marker.claim_name,
    }
    return (json.dumps(document, indent=2) + "\n").encode()


def decode_marker(data: bytes) -> ArchiveMarker:
    """The marker in data; ValueError saying what is wrong if it is not a valid one.

    Bounded whatever the input: size, nesting, numbers and text are checked before use.
    """
    if len(data) > MARKER_MAX_BYTES:
        raise ValueError(f"larger than {MARKER_MAX_BYTES} bytes")
    try:
        document: Any = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ValueError(f"not JSON: {type(error).__name__}") from None
    except ValueError as error:  # an integer of thousands of digits, for one
        raise ValueError(f"not JSON: {error}") from None
    if not isinstance(document, dict) or document.get("version") != _FORMAT_VERSION:
        raise ValueError(f"not a version {_FORMAT_VERSION} archive marker")
    archived_at = _optional_text(document, "archivedAt")
    if archived_at is None:
        raise ValueError("archivedAt is missing")
    try:
        when = datetime.strptime(archived_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"archivedAt {archived_at[:40]!r} is not a UTC time") from None
    retention = document.get("retentionSeconds")
    if retention is not None and (
        isinstance(retention, bool)
        or not isinstance(retention, int | float)
        or not 0 < retention <= MAX_RETENTION_SECONDS
    ):
        raise ValueError("retentionSeconds is not a positive number of at most a century")
    archive = _optional_text(document, "archive")
    inode = document.get("inode")
    if not archive or isinstance(inode, bool) or not isinstance(inode, int) or inode <= 0:
        raise ValueError("archive or inode is missing")
    return ArchiveMarker(
        archived_at=when,
        retention=None if retention is None else float(retention),
        storage_class=_optional_text(document, "storageClass"),
        volume=_optional_text(document, "persistentVolume"),
        archive=archive,
        inode=inode,
        source=_optional_text(document, "source"),
        claim_namespace=_optional_text(document, "claimNamespace"),
        claim_name=_optional_text(document, "claimName"),
    )


def _optional_text(document: dict[str, Any], key: str) -> str | None:
    value = document.get(key)
    if value is not None and (not isinstance(value, str) or len(value) > _MAX_TEXT):
        raise ValueError(f"{key} is not a text")
    return value


def format_duration(seconds: float) -> str:
    """A short human duration: "45s", "3h12m", "31d4h"; negative durations as "-" + that."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m{secs}s" if secs else f"{minutes}m"
    return f"{secs}s"
