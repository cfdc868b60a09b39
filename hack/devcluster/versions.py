"""Reads ``hack/versions.env``, the single place where tool versions are pinned."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HACK_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = HACK_DIR.parent
VERSIONS_FILE = HACK_DIR / "versions.env"


@dataclass(frozen=True)
class Versions:
    kubernetes: str
    etcd: str
    helm: str

    @property
    def kubernetes_staging(self) -> str:
        """The published version of the k8s.io staging modules (v1.36.3 -> v0.36.3)."""
        return "v0" + self.kubernetes[2:]


def read_versions(path: Path = VERSIONS_FILE) -> Versions:
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return Versions(
        kubernetes=values["KUBERNETES_VERSION"],
        etcd=values["ETCD_VERSION"],
        helm=values["HELM_VERSION"],
    )


def cache_root() -> Path:
    """Where binaries and Go caches live: outside the repository, reused across runs."""
    configured = os.environ.get("NFS_PROVISIONER_CACHE")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "nfs-provisioner"
