"""Removing a volume: no depth limit, no link followed, no FIFO blocking, no mount crossed."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from nfs_provisioner.nfs import ExportRoot, StorageError, _mounts, removal


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def make_chain(top: Path, depth: int) -> None:
    """top/d/d/.../d, depth levels below top, with a file at the bottom; no path is ever long."""
    top.mkdir(parents=True)
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        os.close(os.open("bottom", os.O_WRONLY | os.O_CREAT, dir_fd=fd))
    finally:
        os.close(fd)


def need_root(what: str) -> None:
    """Mount tests need root; CI runs as root, so there a missing root is a failure, not a skip."""
    if os.geteuid() == 0:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(
            f"needs root to {what}; CI=true runs the tests as root, but uid is {os.geteuid()}"
        )
    pytest.skip(f"needs root to {what}; CI runs as root")


@contextlib.contextmanager
def mounted(arguments: list[str], target: Path) -> Iterator[None]:
    subprocess.run(["mount", *arguments, str(target)], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run(["umount", str(target)], check=True, capture_output=True)


@pytest.mark.parametrize("depth", [2_000, 100_000])
def test_deep_trees_are_removed_with_few_descriptors(memory_export: Path, depth: int) -> None:
    # 100 000 levels need more descriptors than the process may hold, if held one per level.
    export = memory_export
    root = ExportRoot(export)
    make_chain(export / "v", depth)
    before = open_descriptors()
    assert root.remove_directory(PurePosixPath("v")) is True
    assert list(export.iterdir()) == []
    assert open_descriptors() == before


def test_wide_and_mixed_trees_are_removed(root: ExportRoot, export: Path, outside: Path) -> None:
    volume = export / "ns" / "v"
    for index in range(50):
        branch = volume / f"b{index}" / "c"
        branch.mkdir(parents=True)
        (branch / "file").write_text("x")
        (volume / f"f{index}").write_text("y")
    os.mkfifo(volume / "b3" / "fifo")
    (volume / "b4" / "to-outside").symlink_to(outside)
    (volume / "b5" / "to-sentinel").symlink_to(outside / "sentinel")
    (volume / "b6" / "dangling").symlink_to(export / "nowhere")
    os.link(volume / "f1", volume / "b7" / "hardlink")
    make_chain(volume / "b8" / "deep", 300)
    assert root.remove_directory(PurePosixPath("ns/v")) is True
    assert [p.name for p in export.iterdir()] == ["ns"]
    assert list((export / "ns").iterdir()) == []
    assert (outside / "sentinel").read_text() == "keep me"


def test_links_to_outside_are_removed_never_followed(
    root: ExportRoot, export: Path, outside: Path
) -> None:
    (outside / "inner").mkdir()
    (outside / "inner" / "data").write_text("keep me too")
    make_chain(export / "v", 40)
    deepest = export.joinpath("v", *["d"] * 40)
    (deepest / "escape").symlink_to(outside)
    (export / "v" / "escape-inner").symlink_to(outside / "inner")
    assert root.remove_directory(PurePosixPath("v")) is True
    assert not (export / "v").exists()
    assert (outside / "sentinel").read_text() == "keep me"
    assert (outside / "inner" / "data").read_text() == "keep me too"


class Swapper:
    """A thread that, when the removal is about to open victim, replaces it with something else.

    The removal waits (through the open hook) until the swap is done, so the race is lost by
    the removal every time: it has listed victim as a directory, and finds something else.
    """

    def __init__(self, victim: Path, outside: Path, replace: Callable[[Path], None]) -> None:
        self.victim = victim
        self.outside = outside
        self.replace = replace
        self.wanted = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        if not self.wanted.wait(60):
            return
        # The directory goes outside the export with its contents; what is left at its name
        # must be removed without following it, and the directory moved out must survive.
        self.victim.rename(self.outside / "moved-victim")
        self.replace(self.victim)
        self.done.set()

    def hook(self, real_open: Callable[..., int]) -> Callable[..., int]:
        def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            # Whatever the flags: a removal that opened it without O_DIRECTORY would block.
            if path == self.victim.name and not self.wanted.is_set():
                self.wanted.set()
                assert self.done.wait(60), "the swapping thread did not finish"
            return real_open(path, flags, *args, **kwargs)

        return open_


def run_with_hang_guard(action: Callable[[], object], fifo: Path | None) -> None:
    """Run action in a thread; if it hangs on the FIFO, unblock it by opening the writer end."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            action()
        except BaseException as error:
            failure.append(error)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(60)
    if worker.is_alive():
        if fifo is not None:
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(10)
        pytest.fail("the removal blocked on what was swapped in for a directory")
    if failure:
        raise failure[0]


@pytest.mark.parametrize("swapped_in", ["fifo", "symlink to outside", "file"])
def test_a_directory_swapped_during_the_removal_is_never_followed_and_never_blocks(
    root: ExportRoot,
    export: Path,
    outside: Path,
    monkeypatch: pytest.MonkeyPatch,
    swapped_in: str,
) -> None:
    volume = export / "v"
    victim = volume / "a" / "victim"
    (victim / "inside").mkdir(parents=True)
    (victim / "inside" / "data").write_text("moved out, must survive")
    (volume / "a" / "z-after").mkdir()
    (volume / "a" / "z-after" / "file").write_text("x")

    def replace(path: Path) -> None:
        if swapped_in == "fifo":
            os.mkfifo(path)
        elif swapped_in == "symlink to outside":
            path.symlink_to(outside)
        else:
            path.write_text("a file now")

    swapper = Swapper(victim, outside, replace)
    monkeypatch.setattr(removal.os, "open", swapper.hook(os.open))
    run_with_hang_guard(
        lambda: root.remove_directory(PurePosixPath("v")),
        victim if swapped_in == "fifo" else None,
    )
    assert swapper.done.is_set(), "the removal never reached the victim"
    assert not volume.exists()
    assert (outside / "sentinel").read_text() == "keep me"
    assert (outside / "moved-victim" / "inside" / "data").read_text() == "moved out, must survive"


def test_fifos_and_sockets_in_the_tree_are_unlinked(root: ExportRoot, export: Path) -> None:
    (export / "v" / "sub").mkdir(parents=True)
    os.mkfifo(export / "v" / "sub" / "fifo")
    os.mkfifo(export / "v" / "fifo-at-top")
    run_with_hang_guard(lambda: root.remove_directory(PurePosixPath("v")), None)
    assert not (export / "v").exists()


def test_entries_refilled_during_the_removal_are_removed_too(
    root: ExportRoot, export: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (export / "v" / "sub").mkdir(parents=True)
    real_rmdir = os.rmdir
    refilled: list[str] = []

    def rmdir(path: Any, *args: Any, **kwargs: Any) -> None:
        # A writer in a pod adds a file just as the directory is found empty.
        if path == "sub" and not refilled:
            refilled.append(path)
            (export / "v" / "sub" / "late-file").write_text("late")
        real_rmdir(path, *args, **kwargs)

    monkeypatch.setattr(removal.os, "rmdir", rmdir)
    assert root.remove_directory(PurePosixPath("v")) is True
    assert refilled == ["sub"]
    assert not (export / "v").exists()


@pytest.mark.parametrize("refilled", ["ns/v/sub", "ns/v"])
def test_a_directory_that_keeps_refilling_is_reported_as_busy(
    root: ExportRoot, export: Path, monkeypatch: pytest.MonkeyPatch, refilled: str
) -> None:
    (export / "ns" / "v" / "sub").mkdir(parents=True)
    real_rmdir = os.rmdir
    counter = iter(range(1000))

    def rmdir(path: Any, *args: Any, **kwargs: Any) -> None:
        if path == PurePosixPath(refilled).name:
            (export / refilled / f".nfs{next(counter):020d}").write_text("open in a pod")
        real_rmdir(path, *args, **kwargs)

    monkeypatch.setattr(removal.os, "rmdir", rmdir)
    before = open_descriptors()
    with pytest.raises(StorageError) as caught:
        root.remove_directory(PurePosixPath("ns/v"))
    assert str(caught.value) == (
        f'cannot remove directory "{refilled}" in the export mounted at {export}: a file in it '
        "is busy; on NFS a file still open by a pod stays behind as .nfs* until the pod closes "
        "it, so this succeeds once the pod is gone"
    )
    assert open_descriptors() == before


def test_busy_nfs_files_are_reported_and_everything_else_removed(
    root: ExportRoot, export: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (export / "v" / "a").mkdir(parents=True)
    (export / "v" / "b").mkdir()
    for name in (".nfs000000000012345600000001", ".nfs000000000012345600000002"):
        (export / "v" / "a" / name).write_text("still open in a pod")
    (export / "v" / "b" / "file").write_text("x")
    real_unlink = os.unlink

    def unlink(path: Any, *args: Any, **kwargs: Any) -> None:
        # What an NFS client answers for a silly-renamed file that a process still holds open.
        if str(path).startswith(".nfs"):
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(removal.os, "unlink", unlink)
    with pytest.raises(StorageError) as caught:
        root.remove_directory(PurePosixPath("v"))
    message = str(caught.value)
    assert message.startswith('cannot remove "v/a/.nfs00000000001234560000000'), message
    assert (
        "a file in it is busy; on NFS a file still open by a pod stays behind as .nfs*" in message
    )
    assert message.count("cannot remove") == 2
    assert isinstance(caught.value.__cause__, OSError)
    assert sorted(p.name for p in (export / "v").iterdir()) == ["a"]
    assert len(list((export / "v" / "a").iterdir())) == 2


def test_entries_that_cannot_be_removed_are_named_and_the_rest_removed(
    root: ExportRoot, export: Path
) -> None:
    (export / "v" / "keep" / "deeper").mkdir(parents=True)
    stuck = export / "v" / "keep" / "deeper" / "stuck"
    stuck.write_text("cannot go")
    (export / "v" / "other").mkdir()
    (export / "v" / "other" / "file").write_text("x")
    if os.geteuid() == 0:
        # Root may unlink anything it can write to; an immutable file it may not.
        subprocess.run(["chattr", "+i", str(stuck)], check=True)
        undo = ["chattr", "-i", str(stuck)]
    else:
        os.chmod(stuck.parent, 0o555)
        undo = ["chmod", "755", str(stuck.parent)]
    try:
        with pytest.raises(StorageError) as caught:
            root.remove_directory(PurePosixPath("v"))
    finally:
        subprocess.run(undo, check=True)
    assert str(caught.value) == (
        f'cannot remove "v/keep/deeper/stuck" in the export mounted at {export}: '
        f"permission denied; the export must be writable by uid {os.geteuid()}: check the "
        "export's mode and whether the NFS server squashes root (root_squash/all_squash)"
    )
    assert sorted(p.name for p in (export / "v").iterdir()) == ["keep"]
    assert stuck.read_text() == "cannot go"


@pytest.mark.parametrize("kind", ["tmpfs", "bind mount of the same filesystem"])
def test_a_mount_inside_the_volume_is_left_alone_and_reported(
    root: ExportRoot, export: Path, outside: Path, kind: str
) -> None:
    need_root("mount a filesystem inside a volume")
    mount_point = export / "v" / "sub" / "mnt"
    mount_point.mkdir(parents=True)
    (export / "v" / "sub" / "file").write_text("x")
    (export / "v" / "other").mkdir()
    arguments = ["-t", "tmpfs", "tmpfs"] if kind == "tmpfs" else ["--bind", str(outside)]
    with mounted(arguments, mount_point):
        (mount_point / "mounted-data").write_text("not ours")
        with pytest.raises(StorageError) as caught:
            root.remove_directory(PurePosixPath("v"))
        assert str(caught.value) == (
            f'cannot remove directory "v/sub/mnt" in the export mounted at {export}: it is a '
            "mount point (another filesystem, or a bind mount) and was left alone with "
            "everything below it: unmount it, then delete the volume again"
        )
        assert (mount_point / "mounted-data").read_text() == "not ours"
        assert sorted(p.name for p in (export / "v").iterdir()) == ["sub"]
        assert [p.name for p in (export / "v" / "sub").iterdir()] == ["mnt"]
    assert (outside / "sentinel").read_text() == "keep me"
    # Once unmounted, the same call finishes the job.
    assert root.remove_directory(PurePosixPath("v")) is True
    assert not (export / "v").exists()


def test_a_volume_that_is_itself_a_mount_point_is_not_touched(
    root: ExportRoot, export: Path
) -> None:
    need_root("mount a filesystem at a volume's path")
    volume = export / "v"
    volume.mkdir()
    with mounted(["-t", "tmpfs", "tmpfs"], volume):
        (volume / "mounted-data").write_text("not ours")
        with pytest.raises(StorageError, match=r'remove directory "v" .*: it is a mount point'):
            root.remove_directory(PurePosixPath("v"))
        assert (volume / "mounted-data").read_text() == "not ours"


def test_a_parent_moved_away_while_deep_below_it_stops_the_removal(
    root: ExportRoot, export: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Deeper than the open window, so the walk gives up the descriptors of the top levels and
    # must come back to them through "..": by then the second level is somewhere else.
    depth = removal.OPEN_LEVELS + 10
    make_chain(export / "v", depth)
    real_rmdir = os.rmdir
    moved: list[bool] = []

    def rmdir(path: Any, *args: Any, **kwargs: Any) -> None:
        # The first directory removed is the deepest one.
        if not moved:
            moved.append(True)
            (export / "v" / "d").rename(export / "elsewhere")
            (export / "v" / "d").mkdir()
        real_rmdir(path, *args, **kwargs)

    monkeypatch.setattr(removal.os, "rmdir", rmdir)
    with pytest.raises(StorageError, match="was moved while it was being removed"):
        root.remove_directory(PurePosixPath("v"))
    # The directory put in its place is not the one the walk left, so it was not touched.
    assert (export / "v" / "d").is_dir()


def test_without_statx_a_mount_of_another_filesystem_is_still_seen(
    root: ExportRoot, export: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need_root("mount a filesystem inside a volume")
    monkeypatch.setattr(_mounts, "_STATX", None)
    fd = os.open(export, os.O_RDONLY | os.O_DIRECTORY)
    try:
        info = os.fstat(fd)
        assert _mounts.place_of(fd) == _mounts.Place(info.st_dev, info.st_ino, None)
    finally:
        os.close(fd)
    mount_point = export / "v" / "mnt"
    mount_point.mkdir(parents=True)
    with mounted(["-t", "tmpfs", "tmpfs"], mount_point):
        (mount_point / "mounted-data").write_text("not ours")
        with pytest.raises(StorageError, match=r'"v/mnt" .*: it is a mount point'):
            root.remove_directory(PurePosixPath("v"))
        assert (mount_point / "mounted-data").read_text() == "not ours"
