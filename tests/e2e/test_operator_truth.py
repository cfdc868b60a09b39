"""doctor, audit and adopt say what is true: no PASS, exit code 0 or "nothing to do" where the
cluster or the export says otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from devcluster import ControlPlane

from tests.e2e.harness import Cluster, Provisioner, unique
from tests.e2e.test_operator_errors import assert_one_line_error

MakeProvisioner = Callable[..., Provisioner]


def command(
    provisioner: Provisioner, *args: str, mount: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "NFS_SERVER": provisioner.server,
        "NFS_PATH": provisioner.nfs_path,
        "NFS_MOUNT_PATH": str(mount or provisioner.export),
        "PROVISIONER_NAME": provisioner.name,
        "KUBECONFIG": str(provisioner.plane.kubeconfig),
    }
    return subprocess.run(
        [sys.executable, "-m", "nfs_provisioner", *args],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


def _line(report: str, name: str) -> str:
    lines = [line for line in report.splitlines() if line[6:].startswith(name + " ")]
    assert lines, report
    return lines[0]


def test_doctor_fails_a_class_whose_claims_fail_to_provision(
    cluster: Cluster, namespace: str, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner()
    broken = cluster.create_storage_class(provisioner.name, parameters={"onDelete": "shred"})
    cluster.create_claim(namespace, "data", storage_class=broken)
    cluster.wait_event(namespace, "data", "ProvisioningFailed", source=provisioner.name)
    result = command(provisioner, "doctor", "-n", namespace)
    assert result.returncode == 2, result.stdout
    line = _line(result.stdout, "failing-claims")
    assert line.startswith("FAIL"), line
    assert f"{namespace}/data (class {broken})" in line and "onDelete" in line, line


def test_doctor_fails_a_namespace_that_does_not_exist(make_provisioner: MakeProvisioner) -> None:
    missing = unique("nosuchns")
    result = command(make_provisioner(), "doctor", "-n", missing)
    assert result.returncode == 2, result.stdout
    line = _line(result.stdout, "namespace")
    assert line.startswith("FAIL") and f"namespace {missing} does not exist" in line, line
    assert "pending-claims" not in result.stdout


def test_audit_refuses_an_empty_directory_that_should_be_the_mounted_export(
    cluster: Cluster, namespace: str, make_provisioner: MakeProvisioner, tmp_path: Path
) -> None:
    provisioner = make_provisioner()
    storage_class = cluster.create_storage_class(provisioner.name)
    cluster.create_claim(namespace, "data", storage_class=storage_class)
    cluster.wait_bound(namespace, "data")
    unmounted = tmp_path / "not-mounted"
    unmounted.mkdir()
    result = command(provisioner, "audit", mount=unmounted)
    assert_one_line_error(result, "audit", "does not seem to be mounted", str(unmounted))
    assert result.stdout == ""


def test_audit_exits_2_when_it_finds_an_orphan(make_provisioner: MakeProvisioner) -> None:
    provisioner = make_provisioner()
    clean = command(provisioner, "audit")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    (provisioner.export / "default-left-behind-pvc-1").mkdir()
    found = command(provisioner, "audit")
    assert found.returncode == 2, found.stdout + found.stderr
    assert "default-left-behind-pvc-1" in found.stdout


def test_adopt_names_a_namespace_or_class_that_does_not_exist(
    control_plane: ControlPlane, cluster: Cluster, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner()
    cluster.create_storage_class(provisioner.name, default=True)
    missing = unique("nosuchns")
    no_namespace = command(provisioner, "adopt", "-n", missing, "--dry-run")
    assert_one_line_error(no_namespace, "adopt", f"--namespace {missing}", "does not exist")
    no_class = command(provisioner, "adopt", "-A", "--from-class", "nosuch", "--dry-run")
    assert_one_line_error(no_class, "adopt", "--from-class nosuch", "does not exist")
