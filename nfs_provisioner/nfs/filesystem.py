"""The one place that touches the export: symlink-safe directory create, remove and archive.

Every operation opens the export root and walks down one component at a time with O_NOFOLLOW,
relative to the parent's file descriptor. A symbolic link planted anywhere inside the export
(by a pod that mounts its volume, say) is therefore never followed, and no path string is ever
resolved by the kernel from the top, so nothing outside the export can be reached.
"""

import contextlib
import ctypes
import errno
import hashlib
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Final

from nfs_provisioner.nfs._libc import libc_function
from nfs_provisioner.nfs._paths import MAX_NAME_BYTES, quote, unsafe_name_reason, unsafe_reason
from nfs_provisioner.nfs.errors import StorageError, UnsafePathError
from nfs_provisioner.nfs.removal import remove_tree
from nfs_provisioner.nfs.usage import measure_tree
from nfs_provisioner.storage import Throttle, VolumeUsage

_OPEN_DIRECTORY: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO planted where a file is expected must not hang the provisioner.
_OPEN_FILE: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_CREATE_FILE: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_RENAME_NOREPLACE: Final = 1
_TOP: Final = PurePosixPath()
# Where a new volume directory is prepared before it is renamed into place.
STAGING_PREFIX: Final = ".nfs-provisioner-new-"

_Renameat2 = Callable[[int, bytes, int, bytes, int], int]


_RENAMEAT2: _Renameat2 | None = libc_function(
    "renameat2", [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
)


class ExportRoot:
    """The export as mounted locally; every path argument is relative to it."""

    def __init__(self, mount_path: str | os.PathLike[str]) -> None:
        self.mount_path = os.fspath(mount_path)

    def create_directory(
        self,
        rel: PurePosixPath,
        mode: int = 0o777,
        *,
        uid: int | None = None,
        gid: int | None = None,
        fill: Callable[[int], None] | None = None,
    ) -> bool:
        """Create rel and its missing parents; True if rel was created, False if it existed.

        With fill, the new directory is handed to fill (its descriptor) under its staging name
        instead of being given mode, uid and gid: fill writes its content and attributes (a
        clone's copy), and the directory is renamed into place only once fill has returned.

        An existing directory is reused as it is: its owner and mode belong to whoever made it,
        so they are never changed. A new leaf is made under a staging name (one of the
        provisioner's own, derived from the leaf's name) beside it, given its owner and mode
        through its descriptor (so the umask never leaks), and only then renamed into place
        without replacing anything: a crash at any point leaves either no volume directory or
        a finished one, never one with the wrong owner or mode (over NFS, whose servers refuse
        an exclusive rename, an empty placeholder holds the name for the instant of the rename,
        see _rename_noreplace). Parents get 0o777 less the
        umask, as Go's MkdirAll gives them.
        """
        parents, leaf = self._split(rel)
        staging = staging_name(leaf)
        with self._open_root() as root_fd, self._walk(root_fd, parents, create=True) as fd:
            assert fd is not None  # create=True never yields None
            if self._is_directory(fd, leaf, rel):
                return False
            here = rel.parent / staging
            self._clear_staging(fd, staging, here)
            try:
                os.mkdir(staging, 0o700, dir_fd=fd)
            except OSError as error:
                raise self._storage_error(f"create directory {_show(here)}", error) from error
            try:
                with self._open_child(fd, staging, here) as staging_fd:
                    if fill is None:
                        self._set_owner_and_mode(staging_fd, rel, mode, uid, gid)
                    else:
                        fill(staging_fd)
                created = _rename_noreplace(fd, staging, fd, leaf)
            except OSError as error:
                self._drop_staging(fd, staging, here)
                raise self._storage_error(f"create directory {_show(rel)}", error) from error
            except BaseException:
                self._drop_staging(fd, staging, here)
                raise
            if not created:
                # Made by somebody else meanwhile: reuse theirs, as if it had been there.
                self._drop_staging(fd, staging, here)
            return created

    def clear_staging(self, rel: PurePosixPath) -> bool:
        """Remove the staging directory of rel, if one is left; True if one was.

        An attempt that ends between making its staging directory and renaming it (the process
        killed, or stopped once its lease is lost) leaves it behind. The next attempt for the
        same directory clears it; when another instance has provisioned the volume meanwhile,
        none comes, so the volume's release clears it.
        """
        parents, leaf = self._split(rel)
        staging = staging_name(leaf)
        with self._open_root() as root_fd, self._walk(root_fd, parents) as fd:
            if fd is None or not self._is_directory(fd, staging, rel.parent / staging):
                return False
            self._clear_staging(fd, staging, rel.parent / staging)
        return True

    def _clear_staging(self, fd: int, staging: str, here: PurePosixPath) -> None:
        """Remove a staging directory an attempt that died left behind (with a partial copy,
        say): the name is the provisioner's own, never handed out, so it is safe to remove."""
        try:
            os.rmdir(staging, dir_fd=fd)
        except FileNotFoundError:
            pass
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise self._storage_error(f"clear directory {_show(here)}", error) from error
            remove_tree(fd, staging, here, self.mount_path, self._storage_error)

    def _drop_staging(self, fd: int, staging: str, here: PurePosixPath) -> None:
        with contextlib.suppress(OSError, StorageError):
            self._clear_staging(fd, staging, here)

    @contextlib.contextmanager
    def open_directory(self, rel: PurePosixPath) -> Iterator[int]:
        """A descriptor of the directory rel, reached without following any link."""
        parents, leaf = self._split(rel)
        with self._open_root() as root_fd, self._walk(root_fd, parents) as fd:
            if fd is None or not self._is_directory(fd, leaf, rel):
                raise StorageError(
                    f"directory {_show(rel)} does not exist in the export mounted at "
                    f"{self.mount_path}"
                )
            with self._open_child(fd, leaf, rel) as leaf_fd:
                yield leaf_fd

    def _set_owner_and_mode(
        self, fd: int, rel: PurePosixPath, mode: int, uid: int | None, gid: int | None
    ) -> None:
        if uid is not None or gid is not None:
            try:
                os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
            except OSError as error:
                raise self._chown_error(rel, uid, gid, error) from error
            self._check_owner_kept(fd, rel, uid, gid)
        # After chown: changing the owner may clear the setgid bit that the mode asks for.
        try:
            os.fchmod(fd, mode)
        except OSError as error:
            what = f"set the mode of directory {_show(rel)}"
            raise self._storage_error(what, error) from error

    def _check_owner_kept(
        self, fd: int, rel: PurePosixPath, uid: int | None, gid: int | None
    ) -> None:
        """An NFS server may map the owner it was given instead of refusing it: NFS-Ganesha
        with all_squash gives the directory to the anonymous user and reports success."""
        kept = os.fstat(fd)
        if (uid is not None and kept.st_uid != uid) or (gid is not None and kept.st_gid != gid):
            refused = OSError(
                errno.EPERM, f"the server kept uid {kept.st_uid} gid {kept.st_gid} instead"
            )
            raise self._chown_error(rel, uid, gid, refused)

    def _chown_error(
        self, rel: PurePosixPath, uid: int | None, gid: int | None, error: OSError
    ) -> StorageError:
        owner = " and ".join(
            f"{kind} {number}"
            for kind, number in (("uid", uid), ("gid", gid))
            if number is not None
        )
        prefix = (
            f"cannot give directory {_show(rel)} in the export mounted at {self.mount_path} "
            f"to {owner}"
        )
        if error.errno not in (errno.EPERM, errno.EACCES):
            return self._storage_error(f"change the owner of directory {_show(rel)}", error)
        euid = os.geteuid()
        remedy = (
            "remove uid and gid (and the claims' nfs.io/uid and nfs.io/gid) from the StorageClass"
        )
        if euid == 0:
            return StorageError(
                f"{prefix}: {error.strerror or error}; only root may give a file to another "
                "user, and the NFS server squashes root: with root_squash (the default) or "
                "all_squash, root on this client is an anonymous user on the server. Export the "
                f"share with no_root_squash, or {remedy}"
            )
        return StorageError(
            f"{prefix}: {error.strerror or error}; only root may give a file to another user, "
            f"and the provisioner runs as uid {euid}, not root (root is not enough either if "
            "the NFS server squashes root with root_squash, the default, or all_squash). Run it "
            f"as root against an export with no_root_squash, or {remedy}"
        )

    def remove_directory(self, rel: PurePosixPath) -> bool:
        """Remove the directory tree at rel; False if it did not exist."""
        parents, leaf = self._split(rel)
        with self._open_root() as root_fd, self._walk(root_fd, parents) as fd:
            if fd is None or not self._is_directory(fd, leaf, rel):
                return False
            # Not shutil.rmtree: it recurses (a deep tree raises RecursionError), blocks on a
            # FIFO swapped in for a directory, and crosses mount points.
            remove_tree(fd, leaf, rel, self.mount_path, self._storage_error)
        return True

    def remove_empty_directory(self, rel: PurePosixPath) -> bool:
        """Remove the directory at rel only if it is empty; True if it was removed."""
        parents, leaf = self._split(rel)
        with self._open_root() as root_fd, self._walk(root_fd, parents) as fd:
            if fd is None or not self._is_directory(fd, leaf, rel):
                return False
            try:
                os.rmdir(leaf, dir_fd=fd)
            except OSError as error:
                if error.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                    return False
                raise self._storage_error(f"remove directory {_show(rel)}", error) from error
        return True

    def archive_directory(self, rel: PurePosixPath, archive_name: str) -> str | None:
        """Move rel to archive_name at the top of the export; the name actually used, or None.

        An existing archive of the same name is never replaced: the new one gets a timestamped
        name instead, then -2, -3, ... after that.
        """
        parents, leaf = self._split(rel)
        self._check_name(archive_name)
        with self._open_root() as root_fd, self._walk(root_fd, parents) as fd:
            if fd is None or not self._is_directory(fd, leaf, rel):
                return None
            candidates = _archive_candidates(archive_name)
            while True:
                candidate = next(candidates)
                try:
                    if _rename_noreplace(fd, leaf, root_fd, candidate):
                        return candidate
                except OSError as error:
                    what = f"move directory {_show(rel)} to {quote(candidate)}"
                    raise self._storage_error(what, error) from error

    def move_archive(self, archive_name: str, inode: int, rel: PurePosixPath) -> bool:
        """Move the archive at the top of the export to rel (parents created), never replacing.

        False if the archive is gone or is no longer the directory with that inode (then
        nothing moves); UnsafePathError if rel exists already.
        """
        self._check_name(archive_name)
        parents, leaf = self._split(rel)
        with self._open_root() as root_fd:
            archive = PurePosixPath(archive_name)
            if not self._is_directory(root_fd, archive_name, archive):
                return False
            try:
                info = os.stat(archive_name, dir_fd=root_fd, follow_symlinks=False)
            except OSError as error:
                raise self._storage_error(f"inspect {_show(archive)}", error) from error
            if info.st_ino != inode:
                return False
            with self._walk(root_fd, parents, create=True) as fd:
                assert fd is not None  # create=True never yields None
                try:
                    moved = _rename_noreplace(root_fd, archive_name, fd, leaf)
                except OSError as error:
                    what = f"move {_show(archive)} to {_show(rel)}"
                    raise self._storage_error(what, error) from error
        if not moved:
            raise UnsafePathError(
                f"directory {_show(rel)} already exists in the export mounted at "
                f"{self.mount_path}; an archive is only restored into a new directory"
            )
        return True

    def exists(self, rel: PurePosixPath) -> bool:
        parents, leaf = self._split(rel)
        with self._open_root() as root_fd, self._walk(root_fd, parents) as fd:
            return fd is not None and self._is_directory(fd, leaf, rel)

    def subdirectories(self, rel: PurePosixPath = _TOP) -> list[str]:
        """Names of the directories in rel (the export root by default); links are left out."""
        with self._open_root() as root_fd, self._open_path(root_fd, rel) as fd:
            if fd is None:
                return []
            try:
                with os.scandir(fd) as entries:
                    return sorted(
                        entry.name for entry in entries if entry.is_dir(follow_symlinks=False)
                    )
            except OSError as error:
                raise self._storage_error(f"list directory {_show(rel)}", error) from error

    def read_file(self, rel: PurePosixPath, limit: int) -> bytes | None:
        """Up to limit bytes of the regular file rel; None if it is missing or not a file."""
        parents, leaf = self._split(rel)
        with self._open_root() as root_fd, self._walk(root_fd, parents) as fd:
            if fd is None:
                return None
            try:
                file_fd = os.open(leaf, _OPEN_FILE, dir_fd=fd)
            except OSError as error:
                if error.errno in (errno.ENOENT, errno.ELOOP, errno.EISDIR, errno.ENXIO):
                    return None
                raise self._storage_error(f"open {_show(rel)}", error) from error
            try:
                if not stat.S_ISREG(os.fstat(file_fd).st_mode):
                    return None
                with os.fdopen(file_fd, "rb", closefd=False) as file:
                    return file.read(limit)
            except OSError as error:
                raise self._storage_error(f"read {_show(rel)}", error) from error
            finally:
                os.close(file_fd)

    def write_file(self, rel: PurePosixPath, data: bytes) -> None:
        """Create or atomically replace the regular file rel; its directory must exist.

        The data goes to a fresh temporary file first, created exclusively and never through a
        link, which then replaces rel in one rename: readers see the old file or the new one.
        """
        parents, leaf = self._split(rel)
        temporary = f".{leaf}.{secrets.token_hex(6)}.tmp"
        with self._open_root() as root_fd, self._walk(root_fd, parents) as fd:
            if fd is None:
                raise StorageError(
                    f"cannot write {_show(rel)} in the export mounted at {self.mount_path}: "
                    "its directory does not exist"
                )
            try:
                file_fd = os.open(temporary, _CREATE_FILE, 0o644, dir_fd=fd)
                try:
                    remaining = memoryview(data)
                    while remaining:
                        remaining = remaining[os.write(file_fd, remaining) :]
                finally:
                    os.close(file_fd)
                os.rename(temporary, leaf, src_dir_fd=fd, dst_dir_fd=fd)
            except OSError as error:
                with contextlib.suppress(OSError):
                    os.unlink(temporary, dir_fd=fd)
                raise self._storage_error(f"write {_show(rel)}", error) from error

    def directory_id(self, rel: PurePosixPath) -> tuple[int, int] | None:
        """(device, inode) of the directory rel, None if there is none; links are not followed."""
        parents, leaf = self._split(rel)
        with self._open_root() as root_fd, self._walk(root_fd, parents) as fd:
            if fd is None or not self._is_directory(fd, leaf, rel):
                return None
            try:
                info = os.stat(leaf, dir_fd=fd, follow_symlinks=False)
            except OSError as error:
                raise self._storage_error(f"inspect {_show(rel)}", error) from error
            return info.st_dev, info.st_ino

    def file_names(self, rel: PurePosixPath) -> Iterator[str]:
        """Names of the regular files in the directory rel, read as a stream; none if missing."""
        with self._open_root() as root_fd, self._open_path(root_fd, rel) as fd:
            if fd is None:
                return
            try:
                with os.scandir(fd) as entries:
                    for entry in entries:
                        if entry.is_file(follow_symlinks=False):
                            yield entry.name
            except OSError as error:
                raise self._storage_error(f"list directory {_show(rel)}", error) from error

    def remove_file(self, rel: PurePosixPath) -> bool:
        """Unlink the file rel (never a directory); False if it did not exist."""
        parents, leaf = self._split(rel)
        with self._open_root() as root_fd, self._walk(root_fd, parents) as fd:
            if fd is None:
                return False
            try:
                os.unlink(leaf, dir_fd=fd)
            except FileNotFoundError:
                return False
            except OSError as error:
                raise self._storage_error(f"remove {_show(rel)}", error) from error
        return True

    def make_directory(self, rel: PurePosixPath, mode: int) -> None:
        """Create the directory rel for the provisioner's own use, if missing; mode as given."""
        parents, leaf = self._split(rel)
        with self._open_root() as root_fd, self._walk(root_fd, parents, create=True) as fd:
            assert fd is not None  # create=True never yields None
            try:
                os.mkdir(leaf, mode, dir_fd=fd)
            except FileExistsError:
                self._is_directory(fd, leaf, rel)
            except OSError as error:
                raise self._storage_error(f"create directory {_show(rel)}", error) from error

    def measure(self, rel: PurePosixPath, throttle: Throttle) -> VolumeUsage:
        """Bytes and inodes used by the tree at rel, on its own filesystem, links not followed."""
        parents, leaf = self._split(rel)
        with self._open_root() as root_fd, self._walk(root_fd, parents) as fd:
            if fd is None or not self._is_directory(fd, leaf, rel):
                raise StorageError(
                    f"directory {_show(rel)} does not exist in the export mounted at "
                    f"{self.mount_path}"
                )
            with self._open_child(fd, leaf, rel) as leaf_fd:
                try:
                    return measure_tree(leaf_fd, throttle)
                except OSError as error:
                    raise self._storage_error(f"measure {_show(rel)}", error) from error

    @contextlib.contextmanager
    def _open_path(self, root_fd: int, rel: PurePosixPath) -> Iterator[int | None]:
        """A descriptor of the directory rel (the root for an empty path), None if missing."""
        if not rel.parts:
            yield root_fd
            return
        parents, leaf = self._split(rel)
        with self._walk(root_fd, [*parents, leaf]) as fd:
            yield fd

    def _split(self, rel: PurePosixPath) -> tuple[list[str], str]:
        if rel.is_absolute():
            raise UnsafePathError(
                f"volume path {_show(rel)} is absolute; it must be relative to the export"
            )
        if not rel.parts:
            raise UnsafePathError("volume path is the export root itself; refusing to touch it")
        reason = unsafe_reason(rel.parts)
        if reason is not None:
            raise UnsafePathError(f"volume path {_show(rel)} {reason}")
        return list(rel.parts[:-1]), rel.parts[-1]

    @staticmethod
    def _check_name(name: str) -> None:
        # Length is not checked: over-long archive names are shortened to fit, not refused.
        if "/" in name or name in ("", ".") or unsafe_name_reason(name) is not None:
            raise UnsafePathError(f"archive name {quote(name)} is not a single directory name")

    @contextlib.contextmanager
    def _open_root(self) -> Iterator[int]:
        try:
            fd = os.open(self.mount_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as error:
            raise StorageError(
                f"cannot open the export mounted at {self.mount_path}: {error.strerror}; "
                "check that the export is mounted there"
            ) from error
        try:
            yield fd
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _walk(
        self, root_fd: int, parents: list[str], *, create: bool = False
    ) -> Iterator[int | None]:
        """Yield a descriptor of the directory parents lead to, or None if one is missing."""
        with contextlib.ExitStack() as stack:
            fd = root_fd
            for depth, name in enumerate(parents, start=1):
                here = PurePosixPath(*parents[:depth])
                if create:
                    try:
                        os.mkdir(name, 0o777, dir_fd=fd)
                    except FileExistsError:
                        pass
                    except OSError as error:
                        what = f"create directory {_show(here)}"
                        raise self._storage_error(what, error) from error
                elif not self._is_directory(fd, name, here):
                    yield None
                    return
                fd = stack.enter_context(self._open_child(fd, name, here))
            yield fd

    @contextlib.contextmanager
    def _open_child(self, parent_fd: int, name: str, here: PurePosixPath) -> Iterator[int]:
        try:
            fd = os.open(name, _OPEN_DIRECTORY, dir_fd=parent_fd)
        except OSError as error:
            if error.errno in (errno.ELOOP, errno.ENOTDIR):
                self._is_directory(parent_fd, name, here)
            raise self._storage_error(f"open directory {_show(here)}", error) from error
        try:
            yield fd
        finally:
            os.close(fd)

    def _is_directory(self, parent_fd: int, name: str, here: PurePosixPath) -> bool:
        """True for a directory, False if nothing is there; anything else is refused."""
        try:
            mode = os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode
        except FileNotFoundError:
            return False
        except OSError as error:
            raise self._storage_error(f"inspect {_show(here)}", error) from error
        if stat.S_ISDIR(mode):
            return True
        where = f"{_show(here)} in the export mounted at {self.mount_path}"
        if stat.S_ISLNK(mode):
            raise UnsafePathError(
                f"{where} is a symbolic link; refusing to follow it, since it could lead "
                "outside the export"
            )
        raise UnsafePathError(f"{where} is not a directory; refusing to touch it")

    def storage_error(self, what: str, error: OSError) -> StorageError:
        """The StorageError a user reads for error while doing what ("create directory...")."""
        return self._storage_error(what, error)

    def _storage_error(self, what: str, error: OSError) -> StorageError:
        prefix = f"cannot {what} in the export mounted at {self.mount_path}"
        if error.errno in (errno.EACCES, errno.EPERM):
            return StorageError(
                f"{prefix}: permission denied; the export must be writable by uid {os.geteuid()}: "
                "check the export's mode and whether the NFS server squashes root "
                "(root_squash/all_squash)"
            )
        if error.errno == errno.ENOSPC:
            return StorageError(f"{prefix}: no space left on the export")
        if error.errno == errno.EDQUOT:
            return StorageError(f"{prefix}: the disk quota on the export is exhausted")
        if error.errno == errno.EROFS:
            return StorageError(f"{prefix}: the export is mounted read-only")
        if error.errno == errno.ESTALE:
            return StorageError(
                f"{prefix}: stale NFS file handle; the export was removed or replaced on the "
                "server: remount it"
            )
        if error.errno == errno.EBUSY:
            return StorageError(
                f"{prefix}: a file in it is busy; on NFS a file still open by a pod stays behind "
                "as .nfs* until the pod closes it, so this succeeds once the pod is gone"
            )
        return StorageError(f"{prefix}: {error.strerror or error}")


def _show(rel: PurePosixPath) -> str:
    return quote(str(rel))


def _archive_candidates(archive_name: str) -> Iterator[str]:
    yield _fit(archive_name, "")
    stamped = f"-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    yield _fit(archive_name, stamped)
    counter = 2
    while True:
        suffix = f"{stamped}-{counter}"
        yield _fit(archive_name, suffix)
        counter += 1


def _fit(name: str, suffix: str) -> str:
    """name + suffix, with name shortened so the result is a legal directory name."""
    room = MAX_NAME_BYTES - len(suffix.encode())
    return name.encode()[:room].decode(errors="ignore") + suffix


def staging_name(leaf: str) -> str:
    """The name under which the directory ``leaf`` is made, beside it, before its rename."""
    return STAGING_PREFIX + hashlib.sha256(os.fsencode(leaf)).hexdigest()[:32]


def _rename_noreplace(src_dir_fd: int, src: str, dst_dir_fd: int, dst: str) -> bool:
    """Rename without ever replacing dst; False if dst already exists."""
    if _RENAMEAT2 is not None:
        result = _RENAMEAT2(
            src_dir_fd, os.fsencode(src), dst_dir_fd, os.fsencode(dst), _RENAME_NOREPLACE
        )
        if result == 0:
            return True
        code = ctypes.get_errno()
        if code == errno.EEXIST:
            return False
        # NFS and some older filesystems refuse the flag itself; fall through to the portable way.
        if code not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(code, os.strerror(code))
    # mkdir is atomic and exclusive even over NFS, so the placeholder claims the name; renaming
    # a directory onto an empty directory then replaces only that placeholder.
    try:
        os.mkdir(dst, 0o700, dir_fd=dst_dir_fd)
    except FileExistsError:
        return False
    try:
        os.rename(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
    except OSError:
        with contextlib.suppress(OSError):
            os.rmdir(dst, dir_fd=dst_dir_fd)
        raise
    return True
