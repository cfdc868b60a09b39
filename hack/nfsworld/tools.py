"""Installs what the NFS world needs: NFS-Ganesha, rpcbind, FUSE, and fuse-nfs built once.

The Debian packages come from apt-get (root only). fuse-nfs is in no package registry reached
here, so it is built from a source archive, whose location is ``NFS_PROVISIONER_FUSE_NFS_ARCHIVE``
(default ``../shared/fuse-nfs/fuse-nfs-331e6fe.tar.gz`` next to the repository), into
``<cache>/bin/fuse-nfs-<archive digest>/``; a second call finds the stamp and builds nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from devcluster.binaries import build_lock
from devcluster.versions import REPO_ROOT, cache_root

ARCHIVE_SETTING = "NFS_PROVISIONER_FUSE_NFS_ARCHIVE"
DEFAULT_ARCHIVE = REPO_ROOT.parent / "shared" / "fuse-nfs" / "fuse-nfs-331e6fe.tar.gz"
# What the world runs: the server, its VFS backend, the portmapper and fuse-nfs's libraries;
# and fusermount, from fuse or fuse3 (which replaces fuse: either will do, so neither is
# swapped for the other under another tool that needs it).
RUNTIME_PACKAGES = ("nfs-ganesha", "nfs-ganesha-vfs", "rpcbind", "libnfs13", "libfuse2")
FUSE_PACKAGES = ("fuse", "fuse3")
BUILD_PACKAGES = (
    "libnfs-dev",
    "libfuse-dev",
    "autoconf",
    "automake",
    "libtool",
    "pkg-config",
    "make",
    "gcc",
)


class NfsWorldError(RuntimeError):
    """The NFS world cannot be provided here; the message names what is missing."""


@dataclass(frozen=True)
class Tools:
    ganesha: Path
    rpcbind: Path
    rpcinfo: Path
    fusermount: Path
    fuse_nfs: Path


def _log(message: str) -> None:
    print(f"[nfsworld] {message}", file=sys.stderr, flush=True)


def archive_path() -> Path:
    return Path(os.environ.get(ARCHIVE_SETTING) or DEFAULT_ARCHIVE)


def _is_installed(package: str) -> bool:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False
    )
    return result.returncode == 0 and result.stdout.endswith(" installed")


def _apt_get(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["apt-get", "-o", "DPkg::Lock::Timeout=600", "-y", "--no-install-recommends", *args],
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )


def install_packages(packages: tuple[str, ...], purpose: str) -> None:
    """Install the missing Debian packages, or raise one error naming them and why not."""
    if shutil.which("dpkg-query") is None or shutil.which("apt-get") is None:
        raise NfsWorldError(
            f"{purpose} needs the Debian packages {', '.join(packages)}, and this machine has "
            "no dpkg/apt-get to install them with"
        )
    missing = [package for package in packages if not _is_installed(package)]
    if not missing:
        return
    if os.geteuid() != 0:
        raise NfsWorldError(
            f"{purpose} needs the Debian packages {', '.join(missing)}, which are not installed; "
            f"run as root (it installs them with apt-get), or: apt-get install {' '.join(missing)}"
        )
    _log(f"installing {' '.join(missing)} with apt-get (first time only)")
    result = _apt_get("install", *missing)
    if result.returncode != 0:
        _apt_get("update")
        result = _apt_get("install", *missing)
    if result.returncode != 0:
        raise NfsWorldError(
            f"apt-get install {' '.join(missing)} failed ({purpose}):\n{result.stdout[-2000:]}"
            f"{result.stderr[-2000:]}"
        )


def _command(name: str, package: str) -> Path:
    found = shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    if found is None:
        raise NfsWorldError(f"`{name}` (Debian package {package}) is not on PATH")
    return Path(found)


def _fusermount() -> Path:
    try:
        return _command("fusermount", "fuse")
    except NfsWorldError:
        return _command("fusermount3", "fuse3")


def build_fuse_nfs(archive: Path) -> Path:
    """fuse-nfs built from ``archive`` into the cache, once per archive content."""
    if not archive.is_file():
        raise NfsWorldError(
            f"the fuse-nfs source archive {archive} does not exist; point {ARCHIVE_SETTING} "
            "at fuse-nfs-<commit>.tar.gz (made with `git archive` from "
            "github.com/sahlberg/fuse-nfs)"
        )
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    out_dir = cache_root() / "bin" / f"fuse-nfs-{digest[:12]}"
    binary = out_dir / "fuse-nfs"
    stamp = out_dir / ".build-id"
    with build_lock(out_dir.parent / f".{out_dir.name}.lock"):
        if stamp.exists() and stamp.read_text() == digest and binary.exists():
            return binary
        install_packages(BUILD_PACKAGES, "building fuse-nfs")
        _log(f"building fuse-nfs from {archive} into {out_dir} (first time only)")
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="fuse-nfs-build-") as build_dir:
            with tarfile.open(archive) as tar:
                tar.extractall(build_dir, filter="data")
            (source,) = [p for p in Path(build_dir).iterdir() if (p / "setup.sh").exists()]
            for step in (["sh", "./setup.sh"], ["./configure"], ["make", "-j2"]):
                result = subprocess.run(
                    step,
                    cwd=source,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    check=False,
                )
                if result.returncode != 0:
                    raise NfsWorldError(
                        f"building fuse-nfs failed at `{' '.join(step)}`:\n{result.stdout[-3000:]}"
                    )
            out_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / "fuse" / "fuse-nfs", binary)
        stamp.write_text(digest)
        _log(f"built fuse-nfs in {time.monotonic() - started:.0f}s")
    return binary


def ensure_tools() -> Tools:
    """Install and build whatever is missing; NfsWorldError names what cannot be provided."""
    if os.geteuid() != 0:
        raise NfsWorldError(
            "the real NFS world needs root: NFS-Ganesha serves files as every uid, and its "
            "packages are installed with apt-get"
        )
    if not Path("/dev/fuse").exists():
        raise NfsWorldError("/dev/fuse does not exist: fuse-nfs needs FUSE in the kernel")
    purpose = "the real NFS world (NFS-Ganesha, rpcbind, fuse-nfs)"
    install_packages(RUNTIME_PACKAGES, purpose)
    if not any(_is_installed(package) for package in FUSE_PACKAGES):
        install_packages(FUSE_PACKAGES[:1], purpose)
    return Tools(
        ganesha=_command("ganesha.nfsd", "nfs-ganesha"),
        rpcbind=_command("rpcbind", "rpcbind"),
        rpcinfo=_command("rpcinfo", "rpcbind"),
        fusermount=_fusermount(),
        fuse_nfs=build_fuse_nfs(archive_path()),
    )


def main() -> None:
    for field, path in vars(ensure_tools()).items():
        print(f"{field}={path}")
