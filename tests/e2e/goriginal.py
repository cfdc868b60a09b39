"""The fixed working path of the Go original, pointed at a test export.

The program (built by ``hack/devcluster/goriginal.py``) always works under /persistentvolumes.
``persistentvolumes_link`` points that path at a test export for as long as one test needs it,
under an exclusive lock so that two test processes never own it at once.
"""

from __future__ import annotations

import fcntl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devcluster.binaries import BuildError

# The Go program's hard-coded working directory.
MOUNT_PATH = Path("/persistentvolumes")
_LINK_LOCK = Path(tempfile.gettempdir()) / "nfs-provisioner-persistentvolumes.lock"


@contextmanager
def persistentvolumes_link(export: Path) -> Iterator[Path]:
    """/persistentvolumes -> ``export`` while the block runs; removed after, lock held."""
    _LINK_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with _LINK_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if MOUNT_PATH.is_symlink():
                # Left by a run that was killed: we hold the lock, so nobody uses it.
                MOUNT_PATH.unlink()
            if MOUNT_PATH.exists():
                raise BuildError(
                    f"{MOUNT_PATH} exists and is not a symbolic link: the Go original needs "
                    "that path for the test export; move it away"
                )
            MOUNT_PATH.symlink_to(export)
            try:
                yield MOUNT_PATH
            finally:
                MOUNT_PATH.unlink()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
