"""The two upstream charts this chart replaces, as test fixtures (tests/fixtures)."""

from __future__ import annotations

from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
FIXTURES = REPOSITORY / "tests" / "fixtures" / "upstream-charts"

STABLE = "nfs-client-provisioner"
SUBDIR = "nfs-subdir-external-provisioner"
# compat value -> the upstream chart's release tarball (helm reads .tgz charts as they are).
UPSTREAM_CHARTS: dict[str, Path] = {
    STABLE: FIXTURES / "stable-nfs-client-provisioner-1.2.11.tar.gz",
    SUBDIR: FIXTURES / "nfs-subdir-external-provisioner-4.0.18.tar.gz",
}
# Each upstream chart's default nfs.path, which an existing release may rely on.
DEFAULT_PATHS = {STABLE: "/ifs/kubernetes", SUBDIR: "/nfs-storage"}
# The images the upstream charts run: the Go provisioner.
GO_IMAGES = {
    STABLE: ("quay.io/external_storage/nfs-client-provisioner", "v3.1.0-k8s1.11"),
    SUBDIR: ("registry.k8s.io/sig-storage/nfs-subdir-external-provisioner", "v4.0.2"),
}
