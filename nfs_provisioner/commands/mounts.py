"""``/proc/self/mountinfo``: what is mounted where, and with which options.

Format (proc(5)): ``id parent major:minor root mount-point options [optional...] - fstype
source super-options``; names escape space, tab, newline and backslash as octal (``\\040``).
"""

from __future__ import annotations

import posixpath
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

NFS_TYPES = frozenset({"nfs", "nfs4"})
# A userspace NFS client through FUSE (libnfs); its source is the URL nfs://server/path?options.
FUSE_NFS_TYPE = "fuse.fuse-nfs"
# libnfs speaks NFSv3 unless the URL asks for ?version=4.
LIBNFS_DEFAULT_VERSION = "3"
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


class MountinfoError(ValueError):
    """A line that does not follow the mountinfo format."""


@dataclass(frozen=True)
class Mount:
    root: str
    mount_point: str
    options: tuple[str, ...]
    fs_type: str
    source: str
    super_options: tuple[str, ...]

    @property
    def is_nfs(self) -> bool:
        return self.fs_type in NFS_TYPES or self._nfs_url is not None

    @property
    def _nfs_url(self) -> urllib.parse.SplitResult | None:
        """The source of a fuse-nfs mount, parsed; None for any other mount."""
        if self.fs_type != FUSE_NFS_TYPE:
            return None
        url = urllib.parse.urlsplit(self.source)
        if url.scheme != "nfs" or not url.hostname or not url.path.startswith("/"):
            return None
        return url

    @property
    def read_only(self) -> bool:
        return "ro" in self.options or "ro" in self.super_options

    def option(self, key: str) -> str | None:
        for option in (*self.super_options, *self.options):
            name, _, value = option.partition("=")
            if name == key:
                return value
        return None

    @property
    def nfs_version(self) -> str | None:
        """ "3", "4.1", ...; None when neither the options nor the type tell."""
        url = self._nfs_url
        if url is not None:
            asked = urllib.parse.parse_qs(url.query).get("version")
            return asked[-1] if asked else LIBNFS_DEFAULT_VERSION
        version = self.option("vers") or self.option("nfsvers")
        if version is None and self.fs_type == "nfs4":
            return "4"
        return version

    @property
    def export(self) -> tuple[str, str] | None:
        """(server, path on the server) of an NFS mount's source ``server:/path``."""
        if not self.is_nfs:
            return None
        url = self._nfs_url
        if url is not None:
            assert url.hostname is not None  # _nfs_url only returns URLs with a host
            return url.hostname, posixpath.normpath(urllib.parse.unquote(url.path))
        # IPv6 servers are written in brackets: [fd00::1]:/export.
        server, separator, path = self.source.rpartition(":")
        if not separator or not path.startswith("/"):
            return None
        return server.strip("[]"), path


def _unescape(field: str) -> str:
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    mounts = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split(" ")
        try:
            separator = fields.index("-", 6)
            root, mount_point, options = fields[3], fields[4], fields[5]
            fs_type, source, super_options = fields[separator + 1 : separator + 4]
        except ValueError:
            raise MountinfoError(f"line {number} is not a mountinfo line: {line!r}") from None
        mounts.append(
            Mount(
                root=_unescape(root),
                mount_point=_unescape(mount_point),
                options=tuple(options.split(",")),
                fs_type=fs_type,
                source=_unescape(source),
                super_options=tuple(super_options.split(",")),
            )
        )
    return mounts


def mount_of(path: str, mounts: Sequence[Mount]) -> Mount | None:
    """The mount that holds ``path`` (absolute, symbolic links resolved).

    The deepest mount point wins; of several on the same point, the last one listed is the
    one on top.
    """
    best: Mount | None = None
    for mount in mounts:
        point = mount.mount_point
        if (path == point or path.startswith(point.rstrip("/") + "/")) and (
            best is None or len(point) >= len(best.mount_point)
        ):
            best = mount
    return best


def server_path(mount: Mount, path: str) -> str | None:
    """Where on the NFS server ``path`` (inside ``mount``) is; None for a non-NFS mount."""
    export = mount.export
    if export is None:
        return None
    inside = posixpath.relpath(path, mount.mount_point)
    parts = [export[1], mount.root.lstrip("/")]
    if inside != ".":
        parts.append(inside)
    return posixpath.normpath(posixpath.join(*parts))
