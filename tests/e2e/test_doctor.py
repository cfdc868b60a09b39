"""``nfs-provisioner doctor`` against the real control plane and real directories.

The export is a local directory; a fed mount table says what is "mounted" there, so the NFS
checks see the mount they would see in the provisioner's pod.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from devcluster import ControlPlane

from tests.e2e.harness import Cluster, Provisioner, unique

MakeProvisioner = Callable[..., Provisioner]
SERVER = "nfs.example.test"
_SETTINGS_ENV = ("KUBECONFIG", "NFS_PATH", "PROVISIONER_NAME", "NFS_MOUNT_PATH")
_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE = 1
_CAP_DAC_READ_SEARCH = 2


def _doctor(
    *args: str,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in _SETTINGS_ENV}
    return subprocess.run(
        [sys.executable, "-m", "nfs_provisioner", "doctor", *args],
        env={**clean, **(env or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=preexec_fn,
    )


def _report(*args: str, **options: Any) -> tuple[int, dict[str, dict[str, str]]]:
    done = _doctor("--output", "json", *args, **options)
    assert done.returncode in (0, 1, 2), done.stderr
    document = json.loads(done.stdout)
    assert document["exitCode"] == done.returncode
    return done.returncode, {check["name"]: check for check in document["checks"]}


def _mountinfo(
    directory: Path,
    export: Path,
    *,
    fs_type: str = "nfs4",
    options: str = "rw,relatime",
    super_options: str = "rw,vers=4.1,sec=sys",
    source: str = f"{SERVER}:/exports/volumes",
) -> Path:
    path = directory / "mountinfo"
    path.write_text(
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
        f"90 27 0:77 / {export} {options} shared:9 - {fs_type} {source} {super_options}\n"
    )
    path.chmod(0o644)
    return path


def _problems(checks: dict[str, dict[str, str]]) -> dict[str, str]:
    return {name: c["status"] for name, c in checks.items() if c["status"] != "pass"}


def test_doctor_passes_on_a_healthy_setup(
    cluster: Cluster,
    control_plane: ControlPlane,
    namespace: str,
    export: Path,
    make_provisioner: MakeProvisioner,
    tmp_path: Path,
) -> None:
    nfs_path = f"/exports/{unique('doctor')}"
    provisioner = make_provisioner(nfs_path=nfs_path)
    storage_class = cluster.create_storage_class(provisioner.name)
    try:
        cluster.create_claim(namespace, "minio-pvc", storage_class=storage_class)
        volume = cluster.wait_bound(namespace, "minio-pvc")["spec"]["volumeName"]
        mountinfo = _mountinfo(tmp_path, export, source=f"{SERVER}:{nfs_path}")
        # The settings come from the environment, as in the provisioner's pod.
        code, checks = _report(
            "--mountinfo",
            str(mountinfo),
            "--storage-class",
            storage_class,
            "--namespace",
            namespace,
            env={
                "KUBECONFIG": str(control_plane.kubeconfig),
                "NFS_PATH": nfs_path,
                "PROVISIONER_NAME": provisioner.name,
                "NFS_MOUNT_PATH": str(export),
            },
        )
    finally:
        cluster.delete_storage_class(storage_class)
    assert _problems(checks) == {}
    assert code == 0
    assert list(checks) == [
        "settings",
        "mount",
        "nfs-version",
        "export-path",
        "writable",
        "root-squash",
        "free-space",
        "free-inodes",
        "storage-class",
        "default-class",
        "pending-claims",
        "failing-claims",
        "provisioned-by",
    ]
    assert checks["mount"]["message"] == f"{export} is {SERVER}:{nfs_path} (nfs4)"
    assert checks["provisioned-by"]["message"] == (
        f"all 1 volume(s) of this export name provisioner {provisioner.name}"
    )
    # The probe left nothing behind.
    assert [p.name for p in export.iterdir()] == [f"{namespace}-minio-pvc-{volume}"]


def test_doctor_warns_about_two_default_classes_and_claims_nothing_serves(
    cluster: Cluster, control_plane: ControlPlane, namespace: str, export: Path, tmp_path: Path
) -> None:
    name = f"test.local/{unique('nfs')}"
    ours = cluster.create_storage_class(name, default=True)
    theirs = cluster.create_storage_class("example.com/other", default=True)
    try:
        cluster.create_claim(namespace, "katib-mysql", storage_class="")
        # A path of its own: volumes other tests left under /exports/volumes are not ours.
        nfs_path = f"/exports/{unique('doctor')}"
        code, checks = _report(
            "--mount-path",
            str(export),
            "--mountinfo",
            str(_mountinfo(tmp_path, export, source=f"{SERVER}:{nfs_path}")),
            "--nfs-path",
            nfs_path,
            "--provisioner-name",
            name,
            "--namespace",
            namespace,
            "--kubeconfig",
            str(control_plane.kubeconfig),
        )
    finally:
        cluster.delete_storage_class(ours)
        cluster.delete_storage_class(theirs)
    assert _problems(checks) == {"default-class": "warn", "pending-claims": "warn"}
    assert code == 1
    defaults = checks["default-class"]
    assert "2 default StorageClasses" in defaults["message"]
    assert ours in defaults["message"]
    assert theirs in defaults["message"]
    assert defaults["fix"] == (
        f"keep one default ({ours}): kubectl annotate storageclass {theirs} "
        "storageclass.kubernetes.io/is-default-class=false --overwrite"
    )
    pending = checks["pending-claims"]
    assert f'{namespace}/katib-mysql (class "")' in pending["message"]
    assert f"nfs-provisioner adopt --all-namespaces --storage-class {ours}" in pending["fix"]


def test_doctor_warns_about_nfs_version_3_without_a_cluster(export: Path, tmp_path: Path) -> None:
    mountinfo = _mountinfo(
        tmp_path, export, fs_type="nfs", super_options="rw,vers=3,proto=tcp,sec=sys"
    )
    done = _doctor(
        "--mount-path",
        str(export),
        "--mountinfo",
        str(mountinfo),
        "--nfs-path",
        "/exports/volumes",
        "--provisioner-name",
        "test.local/nfs",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    version = next(i for i, line in enumerate(lines) if line.startswith("WARN  nfs-version"))
    assert "NFS version 3" in lines[version]
    assert "partial writes" in lines[version]
    assert lines[version + 1].strip().startswith("fix: serve the export over NFS 4.1")
    assert any(
        line.startswith("WARN  cluster         cannot reach the API server") for line in lines
    )
    assert lines[-1] == "7 passed, 2 warning(s), 0 failure(s)"
    assert list(export.iterdir()) == []


def test_doctor_fails_when_the_mount_table_says_read_only(export: Path, tmp_path: Path) -> None:
    code, checks = _report(
        "--mount-path",
        str(export),
        "--mountinfo",
        str(_mountinfo(tmp_path, export, options="ro,relatime")),
    )
    assert checks["writable"]["status"] == "fail"
    assert checks["writable"]["message"] == f"{export} is mounted read-only (ro)"
    assert code == 2


@pytest.fixture
def read_only_export(export: Path) -> Iterator[Path]:
    """The export bind-mounted read-only onto itself: writes fail with EROFS, even for root."""
    bind = subprocess.run(
        ["mount", "--bind", str(export), str(export)], capture_output=True, text=True, check=False
    )
    if bind.returncode != 0:
        pytest.skip(f"cannot bind-mount (needs root and CAP_SYS_ADMIN): {bind.stderr.strip()}")
    try:
        subprocess.run(
            ["mount", "-o", "remount,ro,bind", str(export)],
            capture_output=True,
            text=True,
            check=True,
        )
        yield export
    finally:
        subprocess.run(["umount", str(export)], check=True)


def test_doctor_fails_when_the_export_refuses_writes(
    read_only_export: Path, tmp_path: Path
) -> None:
    # The fed table claims a writable NFS mount: only the real write attempt finds out.
    code, checks = _report(
        "--mount-path",
        str(read_only_export),
        "--mountinfo",
        str(_mountinfo(tmp_path, read_only_export)),
    )
    assert checks["writable"]["status"] == "fail"
    assert checks["writable"]["message"] == (
        "cannot create a directory: the filesystem is read-only (EROFS)"
    )
    assert "root-squash" not in checks
    assert code == 2

    # The real mount table of the doctor's own process tells the same, and what is there.
    code, checks = _report("--mount-path", str(read_only_export))
    assert checks["mount"]["status"] == "fail"
    assert "not an NFS export" in checks["mount"]["message"]
    assert checks["writable"]["message"] == f"{read_only_export} is mounted read-only (ro)"
    assert code == 2


def _drop_permission_override() -> None:
    """In the child before exec: root stays root but obeys permission bits from now on."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_doctor_reports_permission_denied_as_behind_root_squash(
    export: Path, tmp_path: Path
) -> None:
    """An export root cannot write to: what a squashed root meets on a 0755 export."""
    if os.geteuid() != 0:
        pytest.skip("needs root to drop root's permission override")
    export.chmod(0o555)
    code, checks = _report(
        "--mount-path",
        str(export),
        "--mountinfo",
        str(_mountinfo(tmp_path, export)),
        preexec_fn=_drop_permission_override,
    )
    assert checks["writable"]["status"] == "fail"
    assert checks["writable"]["message"] == (
        "cannot create a directory: permission denied for uid 0 (EACCES)"
    )
    assert "root squash" in checks["writable"]["fix"]
    assert "root-squash" not in checks
    assert code == 2
