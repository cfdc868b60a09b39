"""Builds etcd, kube-apiserver, kube-controller-manager and helm from pinned Go modules.

Every binary lands in ``<cache>/bin/<tool>-<version>/`` with a ``.build-id`` stamp; a
second call finds the stamp and rebuilds nothing. Go's module and build caches live under
the same cache root, never in the repository.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devcluster.versions import HACK_DIR, Versions, cache_root, read_versions

MINIMUM_GO = (1, 26)
# kube-apiserver 1.36 built with a newer Go was seen serving a broken /openapi/v2.
BUILD_TAGS = "selinux,notest"


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    helm: Path


class BuildError(RuntimeError):
    pass


def go_environment() -> dict[str, str]:
    root = cache_root()
    env = dict(os.environ)
    env.update(
        GOMODCACHE=str(root / "gomod"),
        GOCACHE=str(root / "gocache"),
        GOTOOLCHAIN="local",
        CGO_ENABLED="0",
    )
    return env


def go_version() -> str:
    """The Go toolchain's version; BuildError unless it is >= 1.26."""
    if shutil.which("go") is None:
        raise BuildError(
            "Go >= 1.26 is required to build the pinned tools, and `go` is not on PATH"
        )
    out = subprocess.run(
        ["go", "env", "GOVERSION"], env=go_environment(), check=True, capture_output=True, text=True
    ).stdout.strip()
    match = re.match(r"go(\d+)\.(\d+)", out)
    if not match or (int(match[1]), int(match[2])) < MINIMUM_GO:
        raise BuildError(f"Go >= 1.26 is required to build the pinned tools, found {out!r}")
    return out


def _version_ldflags(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    # Without these, /version reports v0.0.0 and clients that parse it crash.
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {package}.gitVersion={version}",
            f"-X {package}.gitMajor={major}",
            f"-X {package}.gitMinor={minor}",
            f"-X {package}.gitTreeState=clean",
        ]
    return " ".join(flags)


def fingerprint(*parts: str | Path) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.read_bytes() if isinstance(part, Path) else part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


@contextmanager
def build_lock(path: Path) -> Iterator[None]:
    """One builder at a time per output, so parallel runs never write the same binary."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _log(message: str) -> None:
    print(f"[binaries] {message}", file=sys.stderr, flush=True)


def _build(
    name: str, out_dir: Path, build_id: str, outputs: list[str], command: list[str], cwd: Path
) -> None:
    stamp = out_dir / ".build-id"
    with build_lock(out_dir.parent / f".{out_dir.name}.lock"):
        if (
            stamp.exists()
            and stamp.read_text() == build_id
            and all((out_dir / o).exists() for o in outputs)
        ):
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        _log(f"building {name} into {out_dir} (first time only; this takes a while)")
        started = time.monotonic()
        result = subprocess.run(
            command,
            check=False,
            cwd=cwd,
            env=go_environment(),
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        if result.returncode != 0:
            raise BuildError(f"building {name} failed:\n{result.stdout[-4000:]}")
        stamp.write_text(build_id)
        _log(f"built {name} in {time.monotonic() - started:.0f}s")


def _check_pinned(module_dir: Path, requirement: str) -> None:
    if requirement not in (module_dir / "go.mod").read_text():
        raise BuildError(
            f"{module_dir / 'go.mod'} does not match hack/versions.env ({requirement}); "
            "run `make pin`"
        )


def build_kubernetes(versions: Versions, go: str) -> Path:
    module_dir = HACK_DIR / "controlplane"
    _check_pinned(module_dir, f"k8s.io/kubernetes {versions.kubernetes}")
    out_dir = cache_root() / "bin" / f"kubernetes-{versions.kubernetes}"
    ldflags = _version_ldflags(versions.kubernetes)
    build_id = fingerprint(go, ldflags, module_dir / "go.mod", module_dir / "go.sum")
    _build(
        "kube-apiserver and kube-controller-manager",
        out_dir,
        build_id,
        ["kube-apiserver", "kube-controller-manager"],
        [
            "go",
            "build",
            "-trimpath",
            "-tags",
            BUILD_TAGS,
            "-ldflags",
            ldflags,
            "-o",
            f"{out_dir}/",
            "k8s.io/kubernetes/cmd/kube-apiserver",
            "k8s.io/kubernetes/cmd/kube-controller-manager",
        ],
        module_dir,
    )
    return out_dir


def build_etcd(versions: Versions, go: str) -> Path:
    module_dir = HACK_DIR / "etcd"
    _check_pinned(module_dir, f"go.etcd.io/etcd/server/v3 {versions.etcd}")
    out_dir = cache_root() / "bin" / f"etcd-{versions.etcd}"
    build_id = fingerprint(go, module_dir / "go.mod", module_dir / "go.sum")
    _build(
        "etcd",
        out_dir,
        build_id,
        ["etcd"],
        [
            "go",
            "build",
            "-trimpath",
            "-ldflags",
            "-s -w",
            "-o",
            str(out_dir / "etcd"),
            "go.etcd.io/etcd/server/v3",
        ],
        module_dir,
    )
    return out_dir


def build_helm(versions: Versions, go: str) -> Path:
    out_dir = cache_root() / "bin" / f"helm-{versions.helm}"
    ldflags = f"-s -w -X helm.sh/helm/v3/internal/version.version={versions.helm}"
    build_id = fingerprint(go, versions.helm, ldflags)
    _build(
        "helm",
        out_dir,
        build_id,
        ["helm"],
        [
            "env",
            f"GOBIN={out_dir}",
            "go",
            "install",
            "-trimpath",
            "-ldflags",
            ldflags,
            f"helm.sh/helm/v3/cmd/helm@{versions.helm}",
        ],
        cache_root(),
    )
    return out_dir


def ensure_binaries() -> Binaries:
    """Build whatever is missing and return the paths of all four binaries."""
    versions = read_versions()
    go = go_version()
    kubernetes = build_kubernetes(versions, go)
    etcd = build_etcd(versions, go)
    helm = build_helm(versions, go)
    return Binaries(
        etcd=etcd / "etcd",
        kube_apiserver=kubernetes / "kube-apiserver",
        kube_controller_manager=kubernetes / "kube-controller-manager",
        helm=helm / "helm",
    )


def main() -> None:
    binaries = ensure_binaries()
    for field, path in vars(binaries).items():
        print(f"{field}={path}")
