"""The NFS exports one provisioner serves: the default one and any extra ones mounted beside it.

A StorageClass picks an export with its ``server`` and ``share`` parameters; a released volume
finds its export again from ``spec.nfs.server`` and ``spec.nfs.path``.
"""

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Self

from nfs_provisioner.nfs._paths import quote, split_components
from nfs_provisioner.nfs.errors import InvalidParameterError, UnsafePathError
from nfs_provisioner.nfs.volumes import local_directory_for, normalize_export_path
from nfs_provisioner.objects import metadata_of, spec_of


@dataclass(frozen=True)
class Export:
    server: str
    # The path exported by the server, cleaned: the base of every PV's nfs.path.
    share: str
    # Where the provisioner has it mounted.
    mount_path: str

    @classmethod
    def of(cls, server: str, share: str, mount_path: str | os.PathLike[str]) -> Self:
        """An export with its share cleaned as every PV's nfs.path base is."""
        return cls(server, normalize_export_path(share), os.fspath(mount_path))

    def __str__(self) -> str:
        return f"{self.server}:{self.share}"

    def serves(self, server: str | None, share: str | None) -> bool:
        return (server is None or _same_server(server, self.server)) and (
            share is None or share == self.share
        )

    def holds(self, server: str, path: str) -> bool:
        """True if an nfs volume source (server, path) lies in this export (the root included)."""
        if not _same_server(server, self.server) or not path.startswith("/"):
            return False
        share = split_components(self.share)
        return split_components(path)[: len(share)] == share


def _same_server(left: str, right: str) -> bool:
    # Host names are case-insensitive; anything else (IP spellings, aliases) is not guessed at.
    return left.lower() == right.lower()


class ExportSet:
    """The default export first, then the extra ones; no two share a source or a mount."""

    def __init__(self, default: Export, extra: Sequence[Export] = ()) -> None:
        exports = (default, *extra)
        for index, export in enumerate(exports):
            for other in exports[:index]:
                if other.serves(export.server, export.share):
                    raise ValueError(f"export {export} is declared twice")
                if other.mount_path.rstrip("/") == export.mount_path.rstrip("/"):
                    raise ValueError(
                        f"exports {other} and {export} are both mounted at {export.mount_path}"
                    )
        self.default = default
        self.exports: tuple[Export, ...] = exports

    def describe(self) -> str:
        return ", ".join(f"{export} (mounted at {export.mount_path})" for export in self.exports)

    def select(self, server: str | None, share: str | None) -> Export:
        """The export a class's server and share parameters name; each narrows the choice."""
        if server is None and share is None:
            return self.default
        matches = [export for export in self.exports if export.serves(server, share)]
        if len(matches) == 1:
            return matches[0]
        named = " and ".join(
            f"{parameter} {quote(value)}"
            for parameter, value in (("server", server), ("share", share))
            if value is not None
        )
        parameter = "server" if server is not None else "share"
        value = server if server is not None else share
        reason = "name no export mounted in the provisioner" if not matches else "are ambiguous"
        raise InvalidParameterError(
            parameter,
            str(value),
            f"StorageClass parameters {named} {reason}; mounted exports: {self.describe()}. "
            "Set both server and share to one of them, or mount the export and declare it with "
            "--extra-exports (NFS_PROVISIONER_EXTRA_EXPORTS)",
        )

    def locate(self, pv: Mapping[str, Any]) -> tuple[Export, PurePosixPath]:
        """The export holding the PV's directory, and the directory relative to it.

        With one export only the path is compared, as the Go provisioner does, so volumes keep
        being deleted after NFS_SERVER changes spelling. With several the server must match too:
        the same path can exist on two servers.
        """
        if len(self.exports) == 1:
            return self.default, local_directory_for(pv, export_path=self.default.share)
        name = metadata_of(pv).get("name", "")
        nfs = spec_of(pv).get("nfs") or {}
        server, path = nfs.get("server"), nfs.get("path")
        if not isinstance(server, str) or not isinstance(path, str):
            raise UnsafePathError(
                f"PersistentVolume {quote(name)} has no spec.nfs server and path; "
                "refusing to touch it"
            )
        holding = [export for export in self.exports if export.holds(server, path)]
        if not holding:
            raise UnsafePathError(
                f"PersistentVolume {quote(name)} has nfs {quote(server)}:{quote(path)}, which is "
                f"in none of the mounted exports ({self.describe()}); refusing to touch it"
            )
        # Nested exports: the most specific one is the one whose mount shows this directory.
        export = max(holding, key=lambda candidate: len(split_components(candidate.share)))
        return export, local_directory_for(pv, export_path=export.share)
