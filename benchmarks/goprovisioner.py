"""Builds the Go provisioner the benchmark compares against.

First choice is the Go original, ``github.com/kubernetes-sigs/nfs-subdir-external-provisioner``
at ``GO_PROVISIONER_COMMIT`` from ``hack/versions.env``, fetched through the Go module proxy;
then its newest commit. When the proxy serves neither (it refuses this module on some
networks), the stand-in in ``benchmarks/gostandin`` is built instead: the same controller
library (sig-storage-lib-external-provisioner v6) with the same client-go defaults, which is
what sets the original's pace. Results say which one ran.

Binaries land in ``<cache>/bin/go-provisioner-<commit>/`` (or ``go-standin-<hash>/``) with a
``.build-id`` stamp, like the control plane's, so a second run builds nothing.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from devcluster.binaries import BuildError, build_lock, fingerprint, go_environment, go_version
from devcluster.versions import cache_root, read_versions

MODULE = "github.com/kubernetes-sigs/nfs-subdir-external-provisioner"
PACKAGE = "./cmd/nfs-subdir-external-provisioner"
# The newest commit of the Go original; used when the pinned release cannot be had.
NEWEST_COMMIT = "59a3ca2"
STANDIN_DIR = Path(__file__).resolve().parent / "gostandin"
BINARY = "nfs-subdir-external-provisioner"
# Old reflect2 releases crash under Go >= 1.18; the original's own go.mod predates the fix.
RUNTIME_FIXES = ("github.com/modern-go/reflect2@v1.0.2",)


@dataclass(frozen=True)
class GoProvisioner:
    path: Path
    kind: str  # "original" or "standin"
    version: str
    note: str

    def describe(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "version": self.version,
            "note": self.note,
            "path": str(self.path),
        }


def _log(message: str) -> None:
    print(f"[go-provisioner] {message}", file=sys.stderr, flush=True)


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=go_environment(), text=True, capture_output=True, check=False
    )


def _download(query: str) -> tuple[dict[str, str] | None, str]:
    """``go mod download -json MODULE@query``: (module info, "") or (None, why not)."""
    with tempfile.TemporaryDirectory(prefix="go-provisioner-dl-") as scratch:
        result = _run(["go", "mod", "download", "-json", f"{MODULE}@{query}"], Path(scratch))
    try:
        info = json.loads(result.stdout) if result.stdout.strip() else {}
    except ValueError:
        info = {}
    if result.returncode != 0 or info.get("Error") or not info.get("Dir"):
        reason = info.get("Error") or result.stderr or f"exit {result.returncode}"
        # The proxy's address says nothing useful and does not belong in a results file.
        return None, " ".join(re.sub(r"reading \S+: ", "", reason).split())
    return info, ""


def _build_original(info: dict[str, str], query: str, go: str) -> GoProvisioner:
    version = info["Version"]
    out_dir = cache_root() / "bin" / f"go-provisioner-{query}"
    binary = out_dir / BINARY
    build_id = fingerprint(go, version, *RUNTIME_FIXES)
    stamp = out_dir / ".build-id"
    with build_lock(out_dir.parent / f".{out_dir.name}.lock"):
        if not (stamp.exists() and stamp.read_text() == build_id and binary.exists()):
            _log(f"building the Go original {MODULE}@{version} into {out_dir}")
            with tempfile.TemporaryDirectory(prefix="go-provisioner-src-") as scratch:
                source = Path(scratch) / "src"
                # The module cache is read-only, and go.mod/go.sum change below.
                shutil.copytree(info["Dir"], source)
                for path in [source, *source.rglob("*")]:
                    path.chmod(path.stat().st_mode | stat.S_IWUSR)
                steps = [
                    ["go", "get", *RUNTIME_FIXES],
                    ["go", "build", "-mod=mod", "-trimpath", "-o", str(binary), PACKAGE],
                ]
                out_dir.mkdir(parents=True, exist_ok=True)
                for step in steps:
                    result = _run(step, source)
                    if result.returncode != 0:
                        raise BuildError(
                            f"{' '.join(step)} failed for {MODULE}@{version}:\n"
                            f"{(result.stdout + result.stderr)[-3000:]}"
                        )
            stamp.write_text(build_id)
    return GoProvisioner(binary, "original", version, f"{MODULE}@{version}")


def _build_standin(go: str, why: str) -> GoProvisioner:
    sources = [STANDIN_DIR / "go.mod", STANDIN_DIR / "go.sum", STANDIN_DIR / "main.go"]
    build_id = fingerprint(go, *sources)
    out_dir = cache_root() / "bin" / f"go-standin-{build_id[:12]}"
    binary = out_dir / "gostandin"
    stamp = out_dir / ".build-id"
    with build_lock(out_dir.parent / f".{out_dir.name}.lock"):
        if not (stamp.exists() and stamp.read_text() == build_id and binary.exists()):
            _log(f"building the Go stand-in into {out_dir} (about a minute, first time only)")
            out_dir.mkdir(parents=True, exist_ok=True)
            result = _run(["go", "build", "-trimpath", "-o", str(binary), "."], STANDIN_DIR)
            if result.returncode != 0:
                raise BuildError(f"building the Go stand-in failed:\n{result.stderr[-3000:]}")
            stamp.write_text(build_id)
    pinned = re.search(
        r"^\s*sigs\.k8s\.io/sig-storage-lib-external-provisioner/v6 (\S+)",
        (STANDIN_DIR / "go.mod").read_text(),
        re.MULTILINE,
    )
    library = pinned[1] if pinned else "?"
    return GoProvisioner(
        binary,
        "standin",
        f"sig-storage-lib-external-provisioner {library}",
        f"stand-in (the Go original could not be fetched: {why})",
    )


def ensure_go_provisioner(*, allow_standin: bool = True) -> GoProvisioner:
    go = go_version()
    pinned = read_versions().go_provisioner_commit
    reasons = []
    for query in dict.fromkeys([pinned, NEWEST_COMMIT]):
        info, reason = _download(query)
        if info is None:
            reasons.append(reason)
            continue
        try:
            return _build_original(info, query, go)
        except BuildError as error:
            reasons.append(str(error).splitlines()[0])
    why = "; ".join(reasons)
    if not allow_standin:
        raise BuildError(f"the Go original is not available: {why}")
    _log(f"the Go original is not available ({why}); using the stand-in")
    return _build_standin(go, why)


if __name__ == "__main__":
    print(json.dumps(ensure_go_provisioner().describe(), indent=2))
