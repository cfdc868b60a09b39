"""Removing a volume's directory tree so that nothing inside the tree can steer the removal.

A pod may change its volume while the volume is being removed, so nothing seen in a listing is
trusted when it is acted on:

- every directory is opened relative to its parent's descriptor with O_NOFOLLOW, O_DIRECTORY and
  O_NONBLOCK: a link or a file swapped in is refused (and then unlinked as what it now is), a
  FIFO never blocks the open;
- the walk stays on the volume's own mount: a directory on another filesystem (or a bind mount
  of the same one) is left alone with everything below it, and reported;
- the walk is a loop with its own stack, so no depth is too deep; only the deepest levels keep
  their descriptors, and a parent whose descriptor was given up is opened again through ".."
  and accepted only if it is the very directory left on the way down;
- listings are streamed: each level holds one open directory stream, never a list of names.

Failures do not stop the removal of the rest: whatever can go, goes, and the first failures
are reported together once the walk is over.
"""

import errno
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Final, Protocol

from nfs_provisioner.nfs._mounts import Place, place_of
from nfs_provisioner.nfs._paths import quote
from nfs_provisioner.nfs.errors import StorageError

OPEN_DIRECTORY: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# Levels that keep their descriptor (and directory stream) open; a deeper walk gives up the
# shallowest ones and opens them again on the way back up. Two descriptors per level.
OPEN_LEVELS: Final = 32
# How often a directory that rmdir still finds non-empty is emptied again: a writer in a pod,
# or an NFS client's .nfs* file, may keep refilling it.
_EMPTY_ATTEMPTS: Final = 3
# How often an entry that turns from directory to file and back is tried again.
_TYPE_ATTEMPTS: Final = 3
# Failures quoted in the error in full; the rest are counted.
_QUOTED_PROBLEMS: Final = 3

ErrorFor = Callable[[str, OSError], StorageError]


class _DirectoryStream(Iterator[os.DirEntry[str]], Protocol):
    def close(self) -> None: ...


@dataclass(eq=False)
class _Level:
    name: str
    place: Place
    fd: int | None
    stream: _DirectoryStream | None = None
    # Names left behind in this directory after a reported failure; skipped from then on.
    left: set[str] = field(default_factory=set)
    # Its listing failed, which is reported already.
    unlisted: bool = False
    refills: int = 0


def remove_tree(
    parent_fd: int, name: str, rel: PurePosixPath, mount_path: str, error_for: ErrorFor
) -> None:
    """Remove the directory name in parent_fd and everything below it on its own mount.

    rel is the directory's path relative to the export, for messages; error_for turns an
    OSError into the StorageError a user reads (it is given "remove directory \"a/b\"").
    Raises StorageError naming what could not be removed; the rest is gone by then.
    """
    try:
        outside = place_of(parent_fd)
        fd = os.open(name, OPEN_DIRECTORY, dir_fd=parent_fd)
    except FileNotFoundError:
        return
    except OSError as error:
        raise error_for(f"open directory {quote(str(rel))}", error) from error
    try:
        top = _Level(name, place_of(fd), fd)
    except OSError as error:
        os.close(fd)
        raise error_for(f"inspect directory {quote(str(rel))}", error) from error
    removal = _Removal(parent_fd, rel, mount_path, error_for, top)
    try:
        if not removal.top.same_mount(outside):
            raise removal.mount_point_error(rel)
        removal.run()
    except OSError as error:
        # Going back up failed; nothing more below can be reached safely.
        raise error_for(f"remove directory {quote(str(rel))}", error) from error
    finally:
        removal.close()
    removal.raise_problems()


class _Removal:
    def __init__(
        self,
        parent_fd: int,
        rel: PurePosixPath,
        mount_path: str,
        error_for: ErrorFor,
        top: _Level,
    ) -> None:
        self.parent_fd = parent_fd
        self.rel = rel
        self.mount_path = mount_path
        self.error_for = error_for
        self.top = top.place
        self.stack = [top]
        # Levels below this index have given up their descriptor.
        self.lowest_open = 0
        self.problems: list[StorageError] = []
        self.problem_count = 0

    def run(self) -> None:
        while self.stack:
            level = self.stack[-1]
            child = self._next_directory(level)
            if child is None:
                self._leave(level)
            else:
                self._enter(level, child)

    def close(self) -> None:
        for level in self.stack:
            self._close(level)

    def raise_problems(self) -> None:
        if not self.problems:
            return
        message = "; ".join(str(problem) for problem in self.problems)
        more = self.problem_count - len(self.problems)
        if more:
            message += f"; and {more} more entries could not be removed"
        raise StorageError(message) from self.problems[0].__cause__

    def _next_directory(self, level: _Level) -> str | None:
        """Unlink the next entries of level that are not directories; the next directory's name.

        None once the listing is over; the stream stays open across a returned directory.
        """
        assert level.fd is not None
        if level.stream is None:
            try:
                level.stream = os.scandir(level.fd)
            except OSError as error:
                level.unlisted = True
                self._fail(len(self.stack) - 1, None, "list directory", error)
                return None
        try:
            for entry in level.stream:
                name = entry.name
                if name in level.left:
                    continue
                try:
                    is_directory = entry.is_dir(follow_symlinks=False)
                except OSError:
                    is_directory = False
                if is_directory or not self._unlink(level, name):
                    return name
        except OSError as error:
            level.unlisted = True
            self._fail(len(self.stack) - 1, None, "list directory", error)
        self._close_stream(level)
        return None

    def _unlink(self, level: _Level, name: str) -> bool:
        """Remove the non-directory name; False if it is (now) a directory."""
        try:
            os.unlink(name, dir_fd=level.fd)
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            return False
        except OSError as error:
            self._fail(len(self.stack) - 1, name, "remove", error)
        return True

    def _enter(self, level: _Level, name: str) -> None:
        index = len(self.stack) - 1
        for _ in range(_TYPE_ATTEMPTS):
            try:
                fd = os.open(name, OPEN_DIRECTORY, dir_fd=level.fd)
                break
            except FileNotFoundError:
                return
            except OSError as error:
                if error.errno == errno.EMFILE:
                    raise self.error_for(
                        f"open directory {self._show(index, name)}", error
                    ) from error
                if error.errno not in (errno.ENOTDIR, errno.ELOOP):
                    self._fail(index, name, "open directory", error)
                    return
            # Swapped for a link, a FIFO or a file since it was listed: remove what it is now.
            if self._unlink(level, name):
                return
        else:
            level.left.add(name)
            self._note(
                self._plain_error(
                    f"remove {self._show(index, name)}",
                    "it keeps changing between a directory and something else; "
                    "stop what changes it, then delete again",
                )
            )
            return
        try:
            place = place_of(fd)
        except OSError as error:
            os.close(fd)
            self._fail(index, name, "inspect directory", error)
            return
        if not place.same_mount(self.top):
            os.close(fd)
            level.left.add(name)
            self._note(self.mount_point_error(self._path(index, name)))
            return
        self.stack.append(_Level(name, place, fd))
        while len(self.stack) - self.lowest_open > OPEN_LEVELS:
            self._close(self.stack[self.lowest_open])
            self.lowest_open += 1

    def _leave(self, level: _Level) -> None:
        """The listing of level is over: remove it from its parent, or list it again."""
        index = len(self.stack) - 1
        parent_fd = self._parent_fd(index)
        # Closed first: a directory removed while still open costs the filesystem more.
        self._close(level)
        try:
            os.rmdir(level.name, dir_fd=parent_fd)
        except FileNotFoundError:
            pass
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                self._fail(index - 1, level.name, "remove directory", error)
            elif level.left or level.unlisted:
                # What is left inside is reported already; so is this, by implication.
                self._leave_behind(index - 1, level.name)
            elif level.refills < _EMPTY_ATTEMPTS:
                # Refilled since it was listed (a writer, or an NFS client's .nfs* file):
                # list it again.
                level.refills += 1
                if self._reopen(parent_fd, level, index):
                    return
            else:
                busy = OSError(errno.EBUSY, os.strerror(errno.EBUSY))
                self._fail(index - 1, level.name, "remove directory", busy)
        self.stack.pop()

    def _reopen(self, parent_fd: int, level: _Level, index: int) -> bool:
        """Open level's directory again by name; False if it is gone, an error if replaced."""
        try:
            fd = os.open(level.name, OPEN_DIRECTORY, dir_fd=parent_fd)
        except FileNotFoundError:
            return False
        except OSError as error:
            self._fail(index - 1, level.name, "open directory", error)
            return False
        if not _is_at(fd, level.place):
            raise self._moved_error(index)
        level.fd = fd
        return True

    def _parent_fd(self, index: int) -> int:
        """The descriptor of the directory holding level index, opened again if given up."""
        if index == 0:
            return self.parent_fd
        parent = self.stack[index - 1]
        if parent.fd is None:
            child_fd = self.stack[index].fd
            assert child_fd is not None
            fd = os.open("..", OPEN_DIRECTORY, dir_fd=child_fd)
            if not _is_at(fd, parent.place):
                raise self._moved_error(index - 1)
            parent.fd = fd
            self.lowest_open = index - 1
        return parent.fd

    def _fail(self, index: int, name: str | None, what: str, error: OSError) -> None:
        """Report the failure on name in level index (the level itself if None), then skip it."""
        if name is not None:
            self._leave_behind(index, name)
        problem = self.error_for(f"{what} {self._show(index, name)}", error)
        problem.__cause__ = error
        self._note(problem)

    def _leave_behind(self, index: int, name: str) -> None:
        if index >= 0:
            self.stack[index].left.add(name)

    def _note(self, problem: StorageError) -> None:
        self.problem_count += 1
        if len(self.problems) < _QUOTED_PROBLEMS:
            self.problems.append(problem)

    def _path(self, index: int, name: str | None = None) -> PurePosixPath:
        if index < 0:
            # The volume's directory itself, in the directory that holds it.
            return self.rel
        names = [level.name for level in self.stack[1 : index + 1]]
        return self.rel.joinpath(*names, *([name] if name is not None else []))

    def _show(self, index: int, name: str | None = None) -> str:
        return quote(str(self._path(index, name)))

    def _plain_error(self, what: str, reason: str) -> StorageError:
        return StorageError(f"cannot {what} in the export mounted at {self.mount_path}: {reason}")

    def mount_point_error(self, path: PurePosixPath) -> StorageError:
        return self._plain_error(
            f"remove directory {quote(str(path))}",
            "it is a mount point (another filesystem, or a bind mount) and was left alone with "
            "everything below it: unmount it, then delete the volume again",
        )

    def _moved_error(self, index: int) -> StorageError:
        return self._plain_error(
            f"remove directory {quote(str(self.rel))}",
            f"directory {self._show(index)} was moved while it was being removed, so the removal "
            "stopped there rather than follow it; delete the volume again",
        )

    @staticmethod
    def _close_stream(level: _Level) -> None:
        if level.stream is not None:
            level.stream.close()
            level.stream = None

    def _close(self, level: _Level) -> None:
        self._close_stream(level)
        if level.fd is not None:
            os.close(level.fd)
            level.fd = None


def _is_at(fd: int, place: Place) -> bool:
    """True if fd is the directory at place; otherwise (or on an error) fd is closed."""
    try:
        if place_of(fd).same_directory(place):
            return True
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return False
