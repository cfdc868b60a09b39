"""Measuring a volume: bytes and inodes like du -x, links not followed, the rate respected."""

from __future__ import annotations

import os
import subprocess
import threading
import tracemalloc
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from nfs_provisioner.nfs import ExportRoot, NFSBackend, StorageError, UnsafePathError, usage


def _no_limit(count: int) -> None:
    pass


def _du(path: Path) -> tuple[int, int]:
    """(bytes, inodes) as GNU du -x counts them."""
    size = subprocess.run(
        ["du", "-x", "-s", "-B1", str(path)], capture_output=True, text=True, check=True
    )
    inodes = subprocess.run(
        ["du", "-x", "-s", "--inodes", str(path)], capture_output=True, text=True, check=True
    )
    return int(size.stdout.split()[0]), int(inodes.stdout.split()[0])


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    root = tmp_path / "export" / "ns" / "claim"
    (root / "a" / "b").mkdir(parents=True)
    (root / "small").write_bytes(b"x" * 100)
    (root / "a" / "big").write_bytes(os.urandom(256 * 1024))
    (root / "a" / "b" / "empty").touch()
    os.link(root / "a" / "big", root / "hardlink-to-big")
    return root


def test_usage_matches_du(tmp_path: Path, volume: Path) -> None:
    measured = ExportRoot(tmp_path / "export").measure(PurePosixPath("ns/claim"), _no_limit)
    assert (measured.used_bytes, measured.used_inodes) == _du(volume)
    assert measured.unreadable == 0
    # The file with two names is counted once: its 256 KiB are not doubled.
    assert measured.used_bytes < 2 * 256 * 1024


def test_links_are_counted_not_followed(tmp_path: Path, volume: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "huge").write_bytes(b"y" * 1024 * 1024)
    (volume / "escape").symlink_to(outside)
    measured = ExportRoot(tmp_path / "export").measure(PurePosixPath("ns/claim"), _no_limit)
    assert measured.used_bytes < 1024 * 1024
    assert measured.used_inodes == _du(volume)[1]


def test_a_volume_that_is_a_link_is_refused(tmp_path: Path, volume: Path) -> None:
    (tmp_path / "export" / "elsewhere").symlink_to(volume)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        ExportRoot(tmp_path / "export").measure(PurePosixPath("elsewhere"), _no_limit)


def test_a_missing_volume_is_a_storage_error(tmp_path: Path, volume: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        ExportRoot(tmp_path / "export").measure(PurePosixPath("ns/gone"), _no_limit)


def test_the_throttle_is_asked_for_every_entry(tmp_path: Path, volume: Path) -> None:
    asked: list[int] = []
    measured = ExportRoot(tmp_path / "export").measure(PurePosixPath("ns/claim"), asked.append)
    # Every entry below the top is listed once; the top directory itself is not an entry.
    assert sum(asked) == measured.used_inodes
    assert sorted(asked) == [1, 2, 3]


def test_a_stopping_throttle_ends_the_walk_and_closes_everything(
    tmp_path: Path, volume: Path
) -> None:
    class StopError(Exception):
        pass

    def stop_at_second_directory(count: int) -> None:
        calls.append(count)
        if len(calls) == 2:
            raise StopError

    calls: list[int] = []
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(StopError):
        ExportRoot(tmp_path / "export").measure(PurePosixPath("ns/claim"), stop_at_second_directory)
    assert len(os.listdir("/proc/self/fd")) == before


def test_unreadable_directories_are_counted_and_skipped(
    tmp_path: Path, volume: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_scandir = os.scandir
    refused = os.stat(volume / "a" / "b").st_ino

    def scandir(fd: int) -> Any:
        if os.fstat(fd).st_ino == refused:
            raise PermissionError(13, "Permission denied")
        return real_scandir(fd)

    monkeypatch.setattr(usage.os, "scandir", scandir)
    measured = ExportRoot(tmp_path / "export").measure(PurePosixPath("ns/claim"), _no_limit)
    assert measured.unreadable == 1
    # "b" itself is counted; "empty" inside it could not be seen.
    assert measured.used_inodes == _du(volume)[1] - 1


def test_deep_trees_hold_one_descriptor_per_level(tmp_path: Path) -> None:
    export = tmp_path / "export"
    deep = export / "v"
    path = deep
    for index in range(200):
        path = path / f"d{index}"
    path.mkdir(parents=True)
    measured = ExportRoot(export).measure(PurePosixPath("v"), _no_limit)
    assert measured.used_inodes == 201


def test_backend_measures_the_volume_of_a_pv(tmp_path: Path, volume: Path) -> None:
    backend = NFSBackend(server="nfs", export_path="/srv", mount_path=tmp_path / "export")
    pv = {"metadata": {"name": "pv"}, "spec": {"nfs": {"server": "nfs", "path": "/srv/ns/claim"}}}
    assert backend.measure(pv, _no_limit).used_inodes == _du(volume)[1]


def test_a_huge_directory_is_streamed_not_listed_whole(memory_export: Path) -> None:
    names = 200_000
    directory = memory_export / "v" / "huge"
    directory.mkdir(parents=True)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for index in range(names):
            os.close(os.open(f"file-with-a-longish-name-{index:06d}", os.O_CREAT, dir_fd=fd))
    finally:
        os.close(fd)
    asked: list[int] = []
    tracemalloc.start()
    try:
        measured = ExportRoot(memory_export).measure(PurePosixPath("v"), asked.append)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert measured.used_inodes == names + 2
    assert sum(asked) == names + 1
    # Paid for a batch at a time, so the throttle can slow the walk down inside the directory.
    assert max(asked) == usage.BATCH_ENTRIES
    # The whole listing held at once takes well over 40 MiB of Python objects.
    assert peak < 20 * 2**20, f"peak of {peak / 2**20:.1f} MiB while scanning"


def test_a_bind_mount_inside_the_volume_is_not_counted(tmp_path: Path, volume: Path) -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(
                f"needs root to bind-mount; CI=true runs as root, but uid is {os.geteuid()}"
            )
        pytest.skip("needs root to bind-mount; CI runs as root")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "huge").write_bytes(os.urandom(4 * 1024 * 1024))
    before = ExportRoot(tmp_path / "export").measure(PurePosixPath("ns/claim"), _no_limit)
    target = volume / "mnt"
    target.mkdir()
    # Same filesystem, so the same device number: only the mount id tells it apart.
    subprocess.run(["mount", "--bind", str(outside), str(target)], check=True)
    try:
        measured = ExportRoot(tmp_path / "export").measure(PurePosixPath("ns/claim"), _no_limit)
    finally:
        subprocess.run(["umount", str(target)], check=True)
    # The mount point itself is an entry of the volume; nothing below it is.
    assert measured.used_inodes == before.used_inodes + 1
    assert measured.used_bytes < before.used_bytes + 1024 * 1024
    assert measured.unreadable == 0


def test_a_fifo_in_the_volume_is_counted_never_opened(tmp_path: Path, volume: Path) -> None:
    os.mkfifo(volume / "a" / "fifo")
    measured = ExportRoot(tmp_path / "export").measure(PurePosixPath("ns/claim"), _no_limit)
    assert (measured.used_bytes, measured.used_inodes) == _du(volume)


def test_a_directory_swapped_for_a_fifo_is_not_opened_and_does_not_block(
    tmp_path: Path, volume: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open
    swapped: list[str] = []

    def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        # Between the walk's stat of "b" (a directory) and its open, a pod puts a FIFO there.
        if path == "b" and not swapped:
            swapped.append(path)
            (volume / "a" / "b").rename(tmp_path / "moved-b")
            os.mkfifo(volume / "a" / "b")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(usage.os, "open", open_)
    result: list[Any] = []
    worker = threading.Thread(
        target=lambda: result.append(
            ExportRoot(tmp_path / "export").measure(PurePosixPath("ns/claim"), _no_limit)
        ),
        daemon=True,
    )
    worker.start()
    worker.join(60)
    if worker.is_alive():
        os.close(real_open(volume / "a" / "b", os.O_WRONLY | os.O_NONBLOCK))
        worker.join(10)
        pytest.fail("the scan blocked opening a FIFO swapped in for a directory")
    assert swapped == ["b"]
    # "b" was counted as the directory it was when listed; nothing below it was read.
    assert result[0].used_inodes == _du(volume)[1]
    assert result[0].unreadable == 0
