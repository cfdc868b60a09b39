"""What a volume's directory tree holds: bytes and inodes, counted the way ``du -x`` counts them.

The walk works on directory descriptors with O_NOFOLLOW, like every other operation on the
export: a symbolic link is counted as itself and never followed. It stays on the volume's
filesystem (a snapshot directory or anything mounted inside is left out), counts a file with
several hard links once, and holds one descriptor and one directory stream per level of depth,
not per directory. Listings are streamed, BATCH_ENTRIES at a time: a directory of 200 000 names
costs what 1024 of them cost, not the whole listing.
"""

import errno
import itertools
import os
import stat
from collections.abc import Generator
from typing import Final

from nfs_provisioner.nfs._mounts import Place, place_of
from nfs_provisioner.storage import Throttle, VolumeUsage

# O_NONBLOCK: a FIFO swapped in for a directory fails the open instead of blocking it.
_OPEN_DIRECTORY: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# st_blocks is in 512-byte units whatever the filesystem's block size (POSIX).
_BLOCK_SIZE: Final = 512
# Entries read from a directory, and paid for at the throttle, at a time: a directory of a
# million names costs the memory of this many, not of a million.
BATCH_ENTRIES: Final = 1024

_Entries = Generator[os.DirEntry[str], None, None]


def measure_tree(directory_fd: int, throttle: Throttle) -> VolumeUsage:
    """Usage of the tree below directory_fd (the directory itself included).

    Entries that vanish during the walk are skipped; directories that cannot be read are
    counted in ``unreadable`` and their contents left out (or the rest of their contents, if
    reading fails midway). The throttle is asked for each batch of entries before they are
    examined: once per directory for directories of up to BATCH_ENTRIES entries.
    """
    top = os.fstat(directory_fd)
    device = top.st_dev
    mount = place_of(directory_fd)
    used_bytes = top.st_blocks * _BLOCK_SIZE
    inodes = 1
    unreadable = 0
    linked: set[int] = set()
    try:
        entries = _scan(directory_fd, throttle)
    except OSError:
        return VolumeUsage(used_bytes, inodes, unreadable=1)
    # Each level holds its descriptor and its directory stream (at most one batch of entries
    # read ahead); the caller owns the top descriptor.
    stack: list[tuple[int, _Entries]] = [(directory_fd, entries)]
    try:
        while stack:
            fd, pending = stack[-1]
            child: tuple[int, _Entries] | None = None
            try:
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
                            fd_child = os.open(entry.name, _OPEN_DIRECTORY, dir_fd=fd)
                        except (FileNotFoundError, NotADirectoryError):
                            continue
                        except OSError as error:
                            if error.errno == errno.EMFILE:
                                raise
                            # ELOOP: a link swapped in after the stat; refused, not followed.
                            if error.errno != errno.ELOOP:
                                unreadable += 1
                            continue
                        try:
                            child = _descend(fd_child, mount, throttle)
                        except OSError as error:
                            if error.errno == errno.EMFILE:
                                raise
                            unreadable += 1
                            continue
                        if child is None:
                            continue
                        break
            except OSError as error:
                if error.errno == errno.EMFILE:
                    raise
                # Reading the listing failed midway: what was not read is left out.
                unreadable += 1
                child = None
            if child is not None:
                stack.append(child)
            else:
                stack.pop()
                pending.close()
                if fd != directory_fd:
                    os.close(fd)
    finally:
        for fd, pending in stack:
            pending.close()
            if fd != directory_fd:
                os.close(fd)
    return VolumeUsage(used_bytes, inodes, unreadable)


def _descend(fd: int, mount: Place, throttle: Throttle) -> tuple[int, _Entries] | None:
    """The level for the directory open at fd; None (fd closed) if it is another mount."""
    try:
        if not mount.same_mount(place_of(fd)):
            # A bind mount of the volume's own filesystem: same device number, other mount.
            os.close(fd)
            return None
        return fd, _scan(fd, throttle)
    except BaseException:
        os.close(fd)
        raise


def _scan(fd: int, throttle: Throttle) -> _Entries:
    """The entries of fd, streamed; OSError at once if the directory cannot be opened."""
    return _batches(os.scandir(fd), throttle)


def _batches(scan: "os._ScandirIterator[str]", throttle: Throttle) -> _Entries:
    with scan:
        while True:
            batch = list(itertools.islice(scan, BATCH_ENTRIES))
            if not batch:
                return
            throttle(len(batch))
            yield from batch
