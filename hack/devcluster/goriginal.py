"""Builds the Go original (kubernetes-sigs/nfs-subdir-external-provisioner) from its source.

One builder for the end-to-end tests and the benchmark. Where the source is: the setting
``GO_PROVISIONER_SRC`` (``NFS_PROVISIONER_GO_ORIGINAL`` is the older name, still read), default
``../shared/go-original`` relative to the repository root. It may be

- a source checkout: a directory with ``go.mod`` (built with ``-mod=vendor`` when it has a
  ``vendor/modules.txt``, offline; otherwise its modules come through the Go module proxy),
- a ``.tar.gz`` of one (``git archive --format=tar.gz``), the project at its root or in its one
  top directory,
- a directory holding exactly one such archive.

The binary is cached in ``<cache>/bin/go-original-<fingerprint>/`` with a ``.build-id`` stamp,
the way the control plane's binaries are: the fingerprint is the archive's sha256, or for a
checkout a digest of every file's path and content (``.git`` left out), so an edited checkout
is rebuilt and an unchanged one is not. Only the first build pays its ~2 minutes.

The commit recorded with the binary: for an archive, the commit id ``git archive`` writes into
the tar's pax global header (the same id as ``git rev-parse HEAD``), else the hex suffix of the
archive's name (``...-59a3ca2.tar.gz``); for a checkout, ``git rev-parse HEAD`` with ``-dirty``
when tracked files differ from it. The project has no VERSION file (its Makefile asks git).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from devcluster.binaries import BuildError, build_lock, fingerprint, go_environment, go_version
from devcluster.versions import REPO_ROOT, cache_root

SETTING = "GO_PROVISIONER_SRC"
# The name the end-to-end tests used first; read when the new one is not set.
OLD_SETTING = "NFS_PROVISIONER_GO_ORIGINAL"
DEFAULT_LOCATION = REPO_ROOT.parent / "shared" / "go-original"
UPSTREAM = "https://github.com/kubernetes-sigs/nfs-subdir-external-provisioner"
PACKAGE = "./cmd/nfs-subdir-external-provisioner"
BINARY = "nfs-subdir-external-provisioner"
UNKNOWN_COMMIT = "unknown"
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
_COMMIT_IN_NAME = re.compile(r"-([0-9a-f]{7,40})(?:\.tar\.gz|\.tgz)$")
_FULL_COMMIT = re.compile(r"[0-9a-f]{40}")


class GoSourceMissingError(BuildError):
    """No usable source of the Go original where the setting points."""


@dataclass(frozen=True)
class GoSource:
    path: Path
    kind: str  # "checkout" or "archive"
    commit: str
    digest: str


@dataclass(frozen=True)
class GoOriginal:
    """A built Go original and where it came from."""

    binary: Path
    source: GoSource

    def describe(self) -> dict[str, str]:
        """What a results file records about it."""
        return {
            "kind": "original",
            "version": self.source.commit,
            "commit": self.source.commit,
            "source": str(self.source.path),
            "source_kind": self.source.kind,
            "note": f"{UPSTREAM} at {self.source.commit}, built from {self.source.path}",
            "path": str(self.binary),
        }


def _log(message: str) -> None:
    print(f"[go-original] {message}", file=sys.stderr, flush=True)


def configured_location(environ: Mapping[str, str] = os.environ) -> tuple[Path, str]:
    """(where the source should be, which setting said so) from the environment."""
    for name in (SETTING, OLD_SETTING):
        value = environ.get(name)
        if value:
            return Path(value).expanduser(), name
    return DEFAULT_LOCATION, f"{SETTING} (unset; default ../shared/go-original)"


def _missing(message: str) -> GoSourceMissingError:
    return GoSourceMissingError(
        f"the Go original's source: {message}. Set {SETTING} to a checkout of {UPSTREAM} "
        "(a directory with go.mod), a .tar.gz of one, or a directory holding exactly one "
        "such archive"
    )


def _is_archive(path: Path) -> bool:
    return path.name.endswith(_ARCHIVE_SUFFIXES)


def locate_source(environ: Mapping[str, str] = os.environ) -> GoSource:
    """The source the setting points at, with its commit and fingerprint; GoSourceMissingError
    (saying what to set) when there is none."""
    location, setting = configured_location(environ)
    if location.is_dir() and (location / "go.mod").is_file():
        return GoSource(location, "checkout", _checkout_commit(location), _tree_digest(location))
    if location.is_dir():
        found = sorted(p for p in location.iterdir() if p.is_file() and _is_archive(p))
        if len(found) != 1:
            raise _missing(
                f"{setting} is {location}, a directory with no go.mod and "
                f"{len(found)} .tar.gz archives in it (one is needed)"
            )
        location = found[0]
    elif not location.exists():
        raise _missing(f"{setting} is {location}, which does not exist")
    if not _is_archive(location):
        raise _missing(f"{setting} is {location}, which is neither a directory nor a .tar.gz")
    return GoSource(location, "archive", _archive_commit(location), _file_digest(location))


def _archive_commit(archive: Path) -> str:
    try:
        with tarfile.open(archive) as tar:
            comment = tar.pax_headers.get("comment", "").strip()
    except (OSError, tarfile.TarError) as error:
        raise _missing(f"{archive} is not a readable .tar.gz ({error})") from error
    if _FULL_COMMIT.fullmatch(comment):
        return comment
    named = _COMMIT_IN_NAME.search(archive.name)
    return named[1] if named else UNKNOWN_COMMIT


def _checkout_commit(checkout: Path) -> str:
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "-C", str(checkout), *args], capture_output=True, text=True, check=False
        )

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return UNKNOWN_COMMIT
        status = git("status", "--porcelain", "--untracked-files=no")
    except OSError:  # no git on PATH
        return UNKNOWN_COMMIT
    commit = head.stdout.strip()
    return f"{commit}-dirty" if status.stdout.strip() else commit


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _source_files(root: Path) -> Iterator[Path]:
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(d for d in subdirectories if d != ".git")
        for name in sorted(files):
            path = Path(directory, name)
            if path.is_file() and not path.is_symlink():
                yield path


def _tree_digest(root: Path) -> str:
    """Every regular file's relative path and content (``.git`` left out): an edit anywhere
    makes a new fingerprint."""
    digest = hashlib.sha256()
    for path in _source_files(root):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def _build(top: Path, binary: Path) -> None:
    env = go_environment()
    if (top / "vendor" / "modules.txt").is_file():
        env.update(GOFLAGS="-mod=vendor", GOPROXY="off")
    else:
        env["GOFLAGS"] = "-mod=mod"
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
        raise BuildError(f"building the Go original in {top} failed:\n{result.stdout[-4000:]}")


def ensure_go_original(environ: Mapping[str, str] = os.environ) -> GoOriginal:
    """The built Go original; builds it (once per source fingerprint) when the cache has none."""
    source = locate_source(environ)
    go = go_version()
    out_dir = cache_root() / "bin" / f"go-original-{source.digest[:12]}"
    binary = out_dir / BINARY
    build_id = fingerprint(go, source.digest, "-mod=vendor -trimpath")
    stamp = out_dir / ".build-id"
    with build_lock(out_dir.parent / f".{out_dir.name}.lock"):
        if stamp.exists() and stamp.read_text() == build_id and binary.exists():
            return GoOriginal(binary, source)
        out_dir.mkdir(parents=True, exist_ok=True)
        _log(f"building it from {source.path} into {out_dir} (about 2 minutes, first time only)")
        started = time.monotonic()
        if source.kind == "checkout":
            _build(source.path, binary)
        else:
            with tempfile.TemporaryDirectory(prefix="go-original-src-") as scratch:
                with tarfile.open(source.path) as tar:
                    tar.extractall(scratch, filter="data")
                root = Path(scratch)
                tops = [p for p in [root, *root.iterdir()] if (p / "go.mod").is_file()]
                if len(tops) != 1:
                    raise _missing(f"{source.path} has no top directory with a go.mod in it")
                _build(tops[0], binary)
        stamp.write_text(build_id)
        _log(f"built in {time.monotonic() - started:.0f}s")
    return GoOriginal(binary, source)


if __name__ == "__main__":
    try:
        print(ensure_go_original().describe())
    except BuildError as error:
        sys.exit(f"error: {error}")
