"""Measuring a volume: bytes and inodes like du -x, links not followed, the rate respected."""

from __future__ import annotations

import os
import subprocess
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
