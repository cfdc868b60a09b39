"""Fixtures shared by the NFS backend's unit tests."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from nfs_provisioner.nfs import ExportRoot


@pytest.fixture
def memory_export(tmp_path: Path) -> Iterator[Path]:
    """Scratch space in /dev/shm where there is one (deep trees are slow on disk), removed
    without recursion: pytest's own cleanup recurses, and a tree thousands of levels deep left
    under its temporary root would break a later session's cleanup."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else tmp_path
    path = Path(tempfile.mkdtemp(dir=base, prefix="nfs-provisioner-test-"))
    try:
        yield path
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=True)


# An empty export and a directory beside it that nothing may touch; a test module may define
# its own of either name.
@pytest.fixture
def export(tmp_path: Path) -> Path:
    path = tmp_path / "export"
    path.mkdir()
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside"
    path.mkdir()
    (path / "sentinel").write_text("keep me")
    return path


@pytest.fixture
def root(export: Path) -> ExportRoot:
    return ExportRoot(export)
