"""Copying a volume's tree into another directory so that nothing in the source can steer it.

The source is a live volume: a pod may change it during the copy. So, as for removal:

- every source entry is opened relative to its directory's descriptor with O_NOFOLLOW (and
  O_NONBLOCK, so a FIFO never blocks); a link is copied as a link, never followed; a directory
  swapped for a link or a file between listing and opening is left out and counted;
- the copy stays on the source's own mount: a directory on another filesystem (or a bind
  mount) is created empty in the copy and counted, nothing below it is read;
- the walk is a loop over a list of pending directories (no recursion, no depth limit); each
  pending directory is reached one component at a time from the nearest directory a cursor
  still holds open on the way to it, and the cursor keeps at most OPEN_LEVELS descriptors, so
  the descriptors in use are bounded whatever the depth;
- listings are streamed.

Regular files are copied with their content, mode and modification time; directories with
their mode and times (set once everything below them is written, so a read-only directory can
still be filled); symbolic links as links (owned by the provisioner's user: see _copy_link).
Owners are copied when the process may give files away (root on a local filesystem, or on an
NFS export without root squashing); otherwise the copy belongs to the provisioner and the
setuid/setgid bits are dropped, since keeping them on a file of another owner would hand the
tenant that owner's rights. Other file types (FIFOs, sockets, devices) are left out and
counted. Hard links become separate files.
"""

import errno
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from nfs_provisioner.nfs._mounts import Place, place_of

OPEN_DIRECTORY: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_OPEN_FILE: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE_FILE: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK: Final = 1 << 20
# Progress is also reported after this many bytes, so a large file is no long silence.
_PROGRESS_BYTES: Final = 64 << 20
# Descriptors a cursor keeps open along its path; deeper walks reopen from a shallower one.
OPEN_LEVELS: Final = 64
_SPECIAL_BITS: Final = stat.S_ISUID | stat.S_ISGID
# Errors that mean "the entry changed under us": it is left out, not a failure.
_CHANGED: Final = (errno.ENOENT, errno.ELOOP, errno.ENOTDIR, errno.ENXIO, errno.EISDIR)


class CopyCancelledError(Exception):
    """The copy was asked to stop; what was copied so far is incomplete."""


@dataclass
class CopyReport:
    """What a copy did; figures grow while it runs."""

    files: int = 0
    directories: int = 0
    links: int = 0
    bytes: int = 0
    # Left out: entries that changed type or vanished mid-copy, special files, mount points.
    changed: int = 0
    special: int = 0
    mount_points: int = 0
    # False once the process could not give a copy its source's owner.
    owners_kept: bool = True

    @property
    def entries(self) -> int:
        return self.files + self.directories + self.links

    def left_out(self) -> str:
        """A sentence about what the copy does not hold, empty if it holds everything."""
        parts = []
        if self.changed:
            parts.append(f"{self.changed} entries that changed or vanished during the copy")
        if self.special:
            parts.append(f"{self.special} FIFOs, sockets or device files")
        if self.mount_points:
            parts.append(f"the content of {self.mount_points} mount points inside the source")
        text = ("left out: " + "; ".join(parts)) if parts else ""
        if not self.owners_kept:
            text += ("; " if text else "") + (
                "owners not kept (the provisioner may not give files away: it is not root, or "
                "the NFS server squashes root); setuid/setgid bits were dropped"
            )
        return text


# Called now and then with the report so far.
Progress = Callable[[CopyReport], None]


class _Node:
    """A directory of the tree: where it is, who it is on each side, its attributes."""

    __slots__ = (
        "atime_ns",
        "depth",
        "gid",
        "mode",
        "mtime_ns",
        "name",
        "parent",
        "source",
        "target",
        "uid",
    )

    parent: "_Node | None"
    name: str
    depth: int

    def __init__(self, parent: "_Node | None", name: str, info: os.stat_result) -> None:
        self.parent = parent
        self.name = name
        self.depth = 0 if parent is None else parent.depth + 1
        self.mode = info.st_mode
        self.uid = info.st_uid
        self.gid = info.st_gid
        self.atime_ns = info.st_atime_ns
        self.mtime_ns = info.st_mtime_ns
        # (device, inode) of the directory in the source and in the copy.
        self.source = (info.st_dev, info.st_ino)
        self.target: tuple[int, int] | None = None


def copy_tree(
    source_fd: int,
    target_fd: int,
    *,
    progress: Progress | None = None,
    progress_every: int = 1000,
    stop: threading.Event | None = None,
) -> CopyReport:
    """Copy everything below the directory source_fd into the empty directory target_fd.

    target_fd itself gets source_fd's mode (and owner when permitted). Raises OSError for a
    failure that makes the copy incomplete (no space, I/O error...), CopyCancelledError if stop
    is set; the target then holds part of the tree and is the caller's to remove.
    """
    copier = _Copier(source_fd, target_fd, progress, progress_every, stop)
    copier.run()
    return copier.report


class _Copier:
    def __init__(
        self,
        source_fd: int,
        target_fd: int,
        progress: Progress | None,
        progress_every: int,
        stop: threading.Event | None,
    ) -> None:
        self.source_fd = source_fd
        self.target_fd = target_fd
        self.top: Place = place_of(source_fd)
        self.progress = progress
        self.progress_every = max(1, progress_every)
        self.stop = stop
        self.report = CopyReport()
        self._since_progress = 0
        self._bytes_reported = 0
        self.sources = _Cursor(source_fd, self._source_check)
        self.targets = _Cursor(target_fd, self._target_check)

    def run(self) -> None:
        top = _Node(None, "", os.fstat(self.source_fd))
        target = os.fstat(self.target_fd)
        top.target = (target.st_dev, target.st_ino)
        pending = [top]
        finished: list[_Node] = []
        while pending:
            directory = pending.pop()
            finished.append(directory)
            self._copy_directory(directory, pending)
        self.sources.close()
        # Deepest first: a directory's mode may forbid writing into it, and writing into it
        # changes its times.
        for directory in reversed(finished):
            self._finish_directory(directory)
        self.targets.close()
        if self.progress is not None:
            self.progress(self.report)

    def _copy_directory(self, directory: _Node, pending: list[_Node]) -> None:
        source = self.sources.open(directory)
        if source is None:
            return
        target = self.targets.open(directory)
        assert target is not None  # the target has no check: failures raise
        with os.scandir(source) as entries:
            for entry in entries:
                self._check_stop()
                self._copy_entry(source, target, entry.name, directory, pending)

    def _copy_entry(
        self, source: int, target: int, name: str, parent: _Node, pending: list[_Node]
    ) -> None:
        try:
            info = os.stat(name, dir_fd=source, follow_symlinks=False)
        except FileNotFoundError:
            self.report.changed += 1
            return
        mode = info.st_mode
        if stat.S_ISDIR(mode):
            os.mkdir(name, 0o700, dir_fd=target)
            made = os.stat(name, dir_fd=target, follow_symlinks=False)
            node = _Node(parent, name, info)
            node.target = (made.st_dev, made.st_ino)
            self.report.directories += 1
            pending.append(node)
        elif stat.S_ISLNK(mode):
            self._copy_link(source, target, name)
        elif stat.S_ISREG(mode):
            self._copy_file(source, target, name)
        else:
            self.report.special += 1
        self._since_progress += 1
        if self.progress is not None and self._since_progress >= self.progress_every:
            self._since_progress = 0
            self.progress(self.report)

    def _copy_link(self, source: int, target: int, name: str) -> None:
        try:
            destination = os.readlink(name, dir_fd=source)
        except OSError as error:
            if error.errno in (*_CHANGED, errno.EINVAL):
                self.report.changed += 1
                return
            raise
        # Not given the source's owner: a link's owner means nothing outside sticky directories,
        # and an NFS client (fuse-nfs) may apply lchown to the link's target instead, which
        # could be another volume's file.
        os.symlink(destination, name, dir_fd=target)
        self.report.links += 1

    def _copy_file(self, source: int, target: int, name: str) -> None:
        try:
            source_file = os.open(name, _OPEN_FILE, dir_fd=source)
        except OSError as error:
            if error.errno in _CHANGED:
                self.report.changed += 1
                return
            raise
        try:
            info = os.fstat(source_file)
            if not stat.S_ISREG(info.st_mode):
                self.report.changed += 1
                return
            target_file = os.open(name, _CREATE_FILE, 0o600, dir_fd=target)
            try:
                self._copy_content(source_file, target_file)
                owned = self._give(target_file, info.st_uid, info.st_gid)
                mode = stat.S_IMODE(info.st_mode)
                if not owned:
                    mode &= ~_SPECIAL_BITS
                os.fchmod(target_file, mode)
                os.utime(target_file, ns=(info.st_atime_ns, info.st_mtime_ns))
            finally:
                os.close(target_file)
        finally:
            os.close(source_file)
        self.report.files += 1

    def _copy_content(self, source_file: int, target_file: int) -> None:
        # copy_file_range lets the kernel (or an NFS 4.2 server) copy without the data passing
        # through here; where it is refused, plain reads and writes do.
        use_range = hasattr(os, "copy_file_range")
        while True:
            self._check_stop()
            if use_range:
                try:
                    copied = os.copy_file_range(source_file, target_file, _CHUNK)
                except OSError as error:
                    if error.errno not in (
                        errno.EXDEV,
                        errno.EINVAL,
                        errno.ENOSYS,
                        errno.EOPNOTSUPP,
                    ):
                        raise
                    use_range = False
                    continue
            else:
                data = os.read(source_file, _CHUNK)
                copied = len(data)
                view = memoryview(data)
                while view:
                    view = view[os.write(target_file, view) :]
            if copied == 0:
                return
            self.report.bytes += copied
            if (
                self.progress is not None
                and self.report.bytes - self._bytes_reported >= _PROGRESS_BYTES
            ):
                self._bytes_reported = self.report.bytes
                self.progress(self.report)

    def _give(self, fd: int, uid: int, gid: int) -> bool:
        """Give the open copy its source's owner; False if that is not permitted."""
        if not self.report.owners_kept:
            return False
        try:
            os.fchown(fd, uid, gid)
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.EACCES, errno.EINVAL):
                raise
            self.report.owners_kept = False
            return False
        kept = os.fstat(fd)
        if (kept.st_uid, kept.st_gid) != (uid, gid):
            # A server that maps owners (all_squash) reports success and keeps its own.
            self.report.owners_kept = False
            return False
        return True

    def _finish_directory(self, directory: _Node) -> None:
        fd = self.targets.open(directory)
        assert fd is not None
        owned = self._give(fd, directory.uid, directory.gid)
        mode = stat.S_IMODE(directory.mode)
        if not owned:
            mode &= ~_SPECIAL_BITS
        os.fchmod(fd, mode)
        os.utime(fd, ns=(directory.atime_ns, directory.mtime_ns))

    def _source_check(self, fd: int | None, error: OSError | None, node: _Node) -> bool:
        """Whether a source directory just opened (or failing with error) may be entered.

        It may not if it changed into something else, is no longer the directory that was
        listed, or lies on another mount (each counted); other errors make the copy fail.
        """
        if error is not None:
            if error.errno in _CHANGED:
                self.report.changed += 1
                return False
            raise error
        assert fd is not None
        place = place_of(fd)
        if not place.same_mount(self.top):
            self.report.mount_points += 1
            return False
        if (place.device, place.inode) != node.source:
            self.report.changed += 1
            return False
        return True

    def _target_check(self, fd: int | None, error: OSError | None, node: _Node) -> bool:
        if error is not None:
            raise error
        assert fd is not None
        found = os.fstat(fd)
        if (found.st_dev, found.st_ino) != node.target:
            raise OSError(errno.EIO, "a directory of the copy was replaced during the copy")
        return True

    def _check_stop(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise CopyCancelledError("the copy was stopped")


# Given a directory just opened (or the error opening it) and its node: True to enter it.
_Check = Callable[[int | None, OSError | None, _Node], bool]


class _Cursor:
    """Descriptors of the directories on one path from the top, opened without links.

    stack[i] is a node of depth i + 1 and fds[i] its descriptor; only the deepest OPEN_LEVELS
    stay open (fds[first_open:]). Moving to another directory keeps the shared part; a
    shallower directory whose descriptor was given up is reached again through ".." from the
    shallowest open one, and accepted only if it is the very directory recorded; otherwise the
    path is walked again from the top. Descriptors handed out stay the cursor's.
    """

    def __init__(self, top: int, check: _Check) -> None:
        self.top = top
        self.check = check
        self.stack: list[_Node] = []
        self.fds: list[int | None] = []
        self.first_open = 0

    def open(self, node: _Node) -> int | None:
        chain: list[_Node] = []
        found: _Node | None = node
        while found is not None and found.depth > 0 and not self._holds(found):
            chain.append(found)
            found = found.parent
        depth = 0 if found is None else found.depth
        fd = self._descriptor_at(depth)
        self._truncate(depth)
        if fd is None:  # not reachable through "..": from the top again
            chain = []
            walk: _Node | None = node
            while walk is not None and walk.depth > 0:
                chain.append(walk)
                walk = walk.parent
            self._truncate(0)
            fd = self.top
        for step in reversed(chain):
            try:
                child = os.open(step.name, OPEN_DIRECTORY, dir_fd=fd)
            except OSError as error:
                self.check(None, error, step)
                return None
            if not self.check(child, None, step):
                os.close(child)
                return None
            self.stack.append(step)
            self.fds.append(child)
            self._limit()
            fd = child
        return fd

    def _holds(self, node: _Node) -> bool:
        return len(self.stack) >= node.depth and self.stack[node.depth - 1] is node

    def _descriptor_at(self, depth: int) -> int | None:
        """The open descriptor of stack[depth - 1] (the top for 0), climbing ".." if needed."""
        if depth == 0:
            return self.top
        while self.first_open > depth - 1:
            if self.first_open >= len(self.stack):
                return None
            below = self.fds[self.first_open]
            assert below is not None
            wanted = self.stack[self.first_open - 1]
            try:
                up = os.open("..", OPEN_DIRECTORY, dir_fd=below)
            except OSError:
                return None
            try:
                same = self.check(up, None, wanted)
            except OSError:
                same = False
            if not same:
                os.close(up)
                return None
            self.first_open -= 1
            self.fds[self.first_open] = up
        return self.fds[depth - 1]

    def _limit(self) -> None:
        while len(self.stack) - self.first_open > OPEN_LEVELS:
            fd = self.fds[self.first_open]
            assert fd is not None
            os.close(fd)
            self.fds[self.first_open] = None
            self.first_open += 1

    def _truncate(self, depth: int) -> None:
        while len(self.stack) > depth:
            self.stack.pop()
            fd = self.fds.pop()
            if fd is not None:
                os.close(fd)
        self.first_open = min(self.first_open, len(self.stack))

    def close(self) -> None:
        self._truncate(0)
