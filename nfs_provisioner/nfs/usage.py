"""What a volume's directory tree holds: bytes and inodes, counted the way ``du -x`` counts them.

The walk works on directory descriptors with O_NOFOLLOW, like every other operation on the
export: a symbolic link is counted as itself and never followed. It stays on the volume's
filesystem (a snapshot directory or anything mounted inside is left out), counts a file with
several hard links once, and holds one descriptor per level of depth, not per directory.
"""

import errno
import os
import stat
from collections.abc import Iterator
from typing import Final

from nfs_provisioner.volumeplugin import Throttle, VolumeUsage

_OPEN_DIRECTORY: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# st_blocks is in 512-byte units whatever the filesystem's block size (POSIX).
_BLOCK_SIZE: Final = 512


def measure_tree(directory_fd: int, throttle: Throttle) -> VolumeUsage:
    """Usage of the tree below directory_fd (the directory itself included).

    Entries that vanish during the walk are skipped; directories that cannot be read are
    counted in ``unreadable`` and their contents left out.
    """
    top = os.fstat(directory_fd)
    device = top.st_dev
    used_bytes = top.st_blocks * _BLOCK_SIZE
    inodes = 1
    unreadable = 0
    linked: set[int] = set()
    try:
        entries = _scan(directory_fd, throttle)
    except OSError:
        return VolumeUsage(used_bytes, inodes, unreadable=1)
    # Each level holds its descriptor and the entries not yet visited; the caller owns the top.
    stack: list[tuple[int, Iterator[os.DirEntry[str]]]] = [(directory_fd, entries)]
    try:
        while stack:
            fd, pending = stack[-1]
            child: tuple[int, Iterator[os.DirEntry[str]]] | None = None
            for entry in pending:
                try:
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                except OSError:
                    unreadable += 1
                    continue
                if info.st_dev != device:
                    continue
                if info.st_nlink > 1 and not stat.S_ISDIR(info.st_mode):
                    if info.st_ino in linked:
                        continue
                    linked.add(info.st_ino)
                used_bytes += info.st_blocks * _BLOCK_SIZE
                inodes += 1
                if stat.S_ISDIR(info.st_mode):
                    try:
                        child = _descend(fd, entry.name, throttle)
                    except FileNotFoundError:
                        continue
                    except OSError as error:
                        if error.errno == errno.EMFILE:
                            raise
                        unreadable += 1
                        continue
                    break
            if child is not None:
                stack.append(child)
            else:
                stack.pop()
                if fd != directory_fd:
                    os.close(fd)
    finally:
        for fd, _ in stack:
            if fd != directory_fd:
                os.close(fd)
    return VolumeUsage(used_bytes, inodes, unreadable)


def _descend(
    parent_fd: int, name: str, throttle: Throttle
) -> tuple[int, Iterator[os.DirEntry[str]]]:
    # O_NOFOLLOW: a directory swapped for a link after the stat is refused (ELOOP).
    fd = os.open(name, _OPEN_DIRECTORY, dir_fd=parent_fd)
    try:
        return fd, _scan(fd, throttle)
    except BaseException:
        os.close(fd)
        raise


def _scan(fd: int, throttle: Throttle) -> Iterator[os.DirEntry[str]]:
    with os.scandir(fd) as scan:
        entries = list(scan)
    if entries:
        throttle(len(entries))
    return iter(entries)
