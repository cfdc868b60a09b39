"""The Go original (nfs-subdir-external-provisioner) built from the archive in ../shared.

The archive carries its own vendor/ tree, so it builds offline. Where it is: the setting
``NFS_PROVISIONER_GO_ORIGINAL`` (the .tar.gz, or a directory holding exactly one), default
``../shared/go-original/`` relative to the repository root. The binary is cached under
``<cache>/bin/go-original-<archive sha256 prefix>/`` with a ``.build-id`` stamp, the way the
control plane's binaries are, so only the first run pays the ~2 minutes.

The program always works under the fixed path /persistentvolumes. ``persistentvolumes_link``
points that path at a test export for as long as one test needs it, under an exclusive lock so
that two test processes never own it at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devcluster.binaries import BuildError, build_lock, fingerprint, go_environment, go_version
from devcluster.versions import cache_root

REPOSITORY = Path(__file__).resolve().parents[2]
SETTING = "NFS_PROVISIONER_GO_ORIGINAL"
DEFAULT_LOCATION = REPOSITORY.parent / "shared" / "go-original"
PACKAGE = "./cmd/nfs-subdir-external-provisioner"
BINARY = "nfs-subdir-external-provisioner"
# The Go program's hard-coded working directory.
MOUNT_PATH = Path("/persistentvolumes")
_LINK_LOCK = Path(tempfile.gettempdir()) / "nfs-provisioner-persistentvolumes.lock"


def archive() -> Path:
    """The source archive, from the setting; one clear error when it is not there."""
    location = Path(os.environ.get(SETTING) or DEFAULT_LOCATION)
    if location.is_dir():
        found = sorted(location.glob("nfs-subdir-external-provisioner-*.tar.gz"))
        if len(found) != 1:
            raise BuildError(
                f"{SETTING} (default ../shared/go-original): expected one "
                f"nfs-subdir-external-provisioner-*.tar.gz in {location}, found {len(found)}"
            )
        return found[0]
    if location.is_file():
        return location
    raise BuildError(
        f"the Go original's source archive is missing: {location} does not exist; set "
        f"{SETTING} to nfs-subdir-external-provisioner-<commit>.tar.gz or its directory"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_go_original() -> Path:
    """Path of the built Go original; builds it (once) when the cache has none."""
    source = archive()
    checksum = _sha256(source)
    go = go_version()
    out_dir = cache_root() / "bin" / f"go-original-{checksum[:12]}"
    binary = out_dir / BINARY
    build_id = fingerprint(go, checksum, "-mod=vendor -trimpath")
    stamp = out_dir / ".build-id"
    with build_lock(out_dir.parent / f".{out_dir.name}.lock"):
        if stamp.exists() and stamp.read_text() == build_id and binary.exists():
            return binary
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="go-original-src-") as scratch:
            with tarfile.open(source) as tar:
                tar.extractall(scratch, filter="data")
            (top,) = [p for p in Path(scratch).iterdir() if (p / "go.mod").exists()]
            env = {**go_environment(), "GOFLAGS": "-mod=vendor", "GOPROXY": "off"}
            result = subprocess.run(
                ["go", "build", "-trimpath", "-o", str(binary), PACKAGE],
                cwd=top,
                env=env,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if result.returncode != 0:
            raise BuildError(f"building the Go original from {source} failed:\n{result.stdout}")
        stamp.write_text(build_id)
    return binary


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


if __name__ == "__main__":
    print(ensure_go_original())
