"""The fd-based copy of a volume tree: what it copies, what it refuses to follow, its limits."""

from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path

import pytest

from nfs_provisioner.nfs.copying import OPEN_LEVELS, CopyCancelledError, CopyReport, copy_tree
from tests.unit.nfs.test_removal import (
    make_chain,
    mounted,
    need_root,
    open_descriptors,
)


def _copy(source: Path, target: Path, **options: object) -> CopyReport:
    target.mkdir()
    source_fd = os.open(source, os.O_RDONLY | os.O_DIRECTORY)
    target_fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return copy_tree(source_fd, target_fd, **options)  # type: ignore[arg-type]
    finally:
        os.close(source_fd)
        os.close(target_fd)


def test_files_directories_links_modes_and_times_are_copied(tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / "a" / "b").mkdir(parents=True)
    (source / "a" / "b" / "data.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 5))
    (source / "empty").write_bytes(b"")
    (source / "script").write_text("#!/bin/sh\n")
    os.chmod(source / "script", 0o750)
    os.symlink("a/b/data.bin", source / "inside-link")
    os.symlink("/etc/passwd", source / "outside-link")
    os.chmod(source / "a", 0o711)
    os.utime(source / "empty", ns=(1_000_000_000, 2_000_000_000))
    os.chmod(source / "a" / "b", 0o500)  # read-only: filled before its mode is set
    os.chmod(source, 0o2750)

    report = _copy(source, tmp_path / "copy")

    copy = tmp_path / "copy"
    data = (source / "a" / "b" / "data.bin").read_bytes()
    assert (copy / "a" / "b" / "data.bin").read_bytes() == data
    assert (copy / "empty").read_bytes() == b""
    assert os.readlink(copy / "inside-link") == "a/b/data.bin"
    assert os.readlink(copy / "outside-link") == "/etc/passwd"  # a link, never its target
    assert stat.S_IMODE((copy / "script").stat().st_mode) == 0o750
    assert stat.S_IMODE((copy / "a").stat().st_mode) == 0o711
    assert stat.S_IMODE((copy / "a" / "b").stat().st_mode) == 0o500
    assert (copy / "empty").stat().st_mtime_ns == 2_000_000_000
    assert stat.S_IMODE(copy.stat().st_mode) == stat.S_IMODE(source.stat().st_mode)
    assert (report.files, report.directories, report.links) == (3, 2, 2)
    assert report.bytes == len(data) + len("#!/bin/sh\n")
    assert report.left_out() == "" or not report.owners_kept
    os.chmod(source / "a" / "b", 0o700)
    os.chmod(copy / "a" / "b", 0o700)


@pytest.mark.parametrize("depth", [2_000, 20_000])
def test_a_tree_deeper_than_the_recursion_limit_is_copied_with_few_descriptors(
    memory_export: Path, depth: int
) -> None:
    source = memory_export / "source"
    make_chain(source, depth)
    before = open_descriptors()
    most = [0]

    def look(_report: CopyReport) -> None:
        most[0] = max(most[0], open_descriptors())

    report = _copy(source, memory_export / "copy", progress=look, progress_every=100)

    assert report.directories == depth
    assert report.files == 1
    # Two cursors of OPEN_LEVELS descriptors, the two tops, a listing; not one per level.
    assert before < most[0] <= before + 2 * OPEN_LEVELS + 8
    assert open_descriptors() == before
    fd = os.open(memory_export / "copy", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        assert os.listdir(fd) == ["bottom"]
    finally:
        os.close(fd)


def test_a_mount_inside_the_source_is_not_crossed(tmp_path: Path) -> None:
    need_root("mount a tmpfs inside the source")
    source = tmp_path / "source"
    (source / "mnt").mkdir(parents=True)
    (source / "kept").write_text("kept")
    with mounted(["-t", "tmpfs", "tmpfs"], source / "mnt"):
        (source / "mnt" / "other-filesystem").write_text("not copied")
        report = _copy(source, tmp_path / "copy")
    assert (tmp_path / "copy" / "kept").read_text() == "kept"
    assert list((tmp_path / "copy" / "mnt").iterdir()) == []
    assert report.mount_points == 1
    assert "the content of 1 mount points" in report.left_out()


def test_special_files_are_left_out_and_never_block(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    os.mkfifo(source / "fifo")
    (source / "file").write_text("x")
    report = _copy(source, tmp_path / "copy")
    assert sorted(p.name for p in (tmp_path / "copy").iterdir()) == ["file"]
    assert report.special == 1
    assert "1 FIFOs, sockets or device files" in report.left_out()


def test_a_directory_swapped_for_a_link_mid_copy_is_not_followed(tmp_path: Path) -> None:
    """The source's pod replaces a directory with a link to a secret after it was listed."""
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_text("do not copy")
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "ok").write_text("fine")
    swapped = threading.Event()

    def swap(report: CopyReport) -> None:
        if not swapped.is_set():
            swapped.set()
            os.rename(source / "sub", tmp_path / "moved")
            os.symlink(secret, source / "sub")

    report = _copy(source, tmp_path / "copy", progress=swap, progress_every=1)
    assert swapped.is_set()
    assert not (tmp_path / "copy" / "sub" / "key").exists()
    assert list((tmp_path / "copy" / "sub").iterdir()) == []
    assert report.changed == 1


def test_owners_and_setuid_bits_are_kept_when_the_copy_may_give_files_away(
    tmp_path: Path,
) -> None:
    need_root("give files to another user")
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    (source / "tool").write_text("x")
    os.chown(source / "tool", 4321, 4322)
    os.chmod(source / "tool", 0o4755)  # after chown, which clears it
    os.chown(source / "sub", 4321, 4322)
    os.symlink("tool", source / "link")
    os.chown(source / "link", 4323, 4323, follow_symlinks=False)
    report = _copy(source, tmp_path / "copy")
    copied = (tmp_path / "copy" / "tool").stat()
    assert report.owners_kept
    assert (copied.st_uid, copied.st_gid, stat.S_IMODE(copied.st_mode)) == (4321, 4322, 0o4755)
    sub = (tmp_path / "copy" / "sub").stat()
    assert (sub.st_uid, sub.st_gid) == (4321, 4322)
    assert (tmp_path / "copy" / "link").lstat().st_uid == os.geteuid()  # links: never chown-ed


def test_setuid_bits_are_dropped_when_owners_cannot_be_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on an export that squashes root: the copy is the provisioner's, without setuid."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "tool").write_text("x")
    os.chmod(source / "tool", 0o6755)

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "fchown", refuse)
    monkeypatch.setattr(os, "chown", refuse)
    report = _copy(source, tmp_path / "copy")
    copied = (tmp_path / "copy" / "tool").stat()
    assert stat.S_IMODE(copied.st_mode) == 0o755
    assert not report.owners_kept
    assert "owners not kept" in report.left_out()


def test_a_stopped_copy_raises(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "a").write_text("a")
    stop = threading.Event()
    stop.set()
    with pytest.raises(CopyCancelledError):
        _copy(source, tmp_path / "copy", stop=stop)
