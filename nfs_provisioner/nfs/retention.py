"""How long archived directories are kept: the retention parameter and the archive's marker file.

An archive keeps the Go name ``archived-<directory>``, so the facts its expiry needs travel
inside it, in a small JSON file written when the volume is archived. Archives without a valid
marker (made by the Go provisioner, or before this feature) never expire on their own.
"""

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

MARKER_NAME: Final = ".nfs-provisioner-archive.json"
# Far more than a marker needs; a bigger file is not one of ours and is not read whole.
MARKER_MAX_BYTES: Final = 16384
RETENTION_ACCEPTED: Final = (
    "a positive duration of numbers with units w, d, h, m or s, such as 30d, 12h or 1d12h"
)

_RETENTION: Final = re.compile(r"(?:\d+(?:\.\d+)?[wdhms])+")
_RETENTION_PART: Final = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")
_UNIT_SECONDS: Final = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_FORMAT_VERSION: Final = 1


def parse_retention(value: str) -> float:
    """Seconds from "30d", "12h", "1d12h"; a unit is required, since "30" could mean anything."""
    if _RETENTION.fullmatch(value) is None:
        raise ValueError(f"invalid retention {value!r}")
    seconds = sum(
        float(number) * _UNIT_SECONDS[unit] for number, unit in _RETENTION_PART.findall(value)
    )
    if not 0 < seconds < math.inf:
        raise ValueError(f"invalid retention {value!r}")
    return seconds


@dataclass(frozen=True)
class ArchiveMarker:
    """What an archive records about itself."""

    archived_at: datetime
    retention: float | None
    storage_class: str | None
    volume: str | None

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
        "archivedAt": marker.archived_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "retentionSeconds": marker.retention,
        "storageClass": marker.storage_class,
        "persistentVolume": marker.volume,
    }
    return (json.dumps(document, indent=2) + "\n").encode()


def decode_marker(data: bytes) -> ArchiveMarker:
    """The marker in data; ValueError saying what is wrong if it is not a valid one."""
    try:
        document: Any = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"not JSON: {error}") from None
    if not isinstance(document, dict) or document.get("version") != _FORMAT_VERSION:
        raise ValueError(f"not a version {_FORMAT_VERSION} archive marker")
    archived_at = document.get("archivedAt")
    if not isinstance(archived_at, str):
        raise ValueError("archivedAt is missing")
    try:
        when = datetime.strptime(archived_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"archivedAt {archived_at!r} is not a UTC time") from None
    retention = document.get("retentionSeconds")
    if retention is not None and (
        isinstance(retention, bool)
        or not isinstance(retention, int | float)
        or not 0 < retention < math.inf
    ):
        raise ValueError(f"retentionSeconds {retention!r} is not a positive number")
    return ArchiveMarker(
        archived_at=when,
        retention=None if retention is None else float(retention),
        storage_class=_optional_text(document, "storageClass"),
        volume=_optional_text(document, "persistentVolume"),
    )


def _optional_text(document: dict[str, Any], key: str) -> str | None:
    value = document.get(key)
    return value if isinstance(value, str) else None


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
