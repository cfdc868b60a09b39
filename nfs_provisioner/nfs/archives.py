"""The registry of archives: markers the provisioner writes when it archives a volume.

It lives in ``.nfs-provisioner-archives/`` at the top of each export, a name no pathPattern may
produce, so no volume contains it and no pod can write to it. One file per archive, named after
a hash of the archive's name (archive names may be 255 bytes long already).
"""

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Final

from nfs_provisioner.nfs.filesystem import ExportRoot
from nfs_provisioner.nfs.retention import (
    MARKER_MAX_BYTES,
    ArchiveMarker,
    decode_marker,
    encode_marker,
)

REGISTRY: Final = PurePosixPath(".nfs-provisioner-archives")
_SUFFIX: Final = ".json"


@dataclass(frozen=True)
class RegisteredArchive:
    """One file of the registry: its marker, or why it could not be read."""

    entry: PurePosixPath
    marker: ArchiveMarker | None
    error: str | None = None


def entry_for(archive: str) -> PurePosixPath:
    return REGISTRY / (hashlib.sha256(archive.encode()).hexdigest()[:40] + _SUFFIX)


def record(root: ExportRoot, marker: ArchiveMarker) -> None:
    """Write the marker of an archive just made; replaces an older one of the same name."""
    root.make_directory(REGISTRY, 0o700)
    root.write_file(entry_for(marker.archive), encode_marker(marker))


def registered(root: ExportRoot) -> Iterator[RegisteredArchive]:
    """Every registry file with its marker; a bad file is reported, never fatal to the others."""
    for name in root.file_names(REGISTRY):
        if not name.endswith(_SUFFIX) or name.startswith("."):
            continue
        entry = REGISTRY / name
        try:
            data = root.read_file(entry, MARKER_MAX_BYTES + 1)
            if data is None:
                continue
            marker = decode_marker(data)
        except Exception as error:  # one bad marker must not stop the sweep of the others
            yield RegisteredArchive(entry, None, f"unreadable archive marker {name}: {error}")
            continue
        if entry != entry_for(marker.archive):
            yield RegisteredArchive(entry, None, f"archive marker {name} names another archive")
            continue
        yield RegisteredArchive(entry, marker)


def is_current(root: ExportRoot, marker: ArchiveMarker) -> bool:
    """True if the archive the marker names is still the directory it was written for."""
    found = root.directory_id(PurePosixPath(marker.archive))
    return found is not None and found[1] == marker.inode
