"""Every way a command stops on bad input or a setup that cannot work: exit code 1 and exactly
one line on stderr, ``nfs-provisioner <command>: error: ...``, never a traceback. And `run`
with settings no retry can fix stops at once; with a transient problem it keeps trying, says
why at error level and in /readyz."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from devcluster import ControlPlane
from devcluster.controlplane import free_port

from tests.e2e.harness import unique, wait_for

_TIMEOUT = 60


def cli(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "nfs_provisioner", *args],
        env={**clean, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=_TIMEOUT,
        check=False,
    )


def assert_one_line_error(
    result: subprocess.CompletedProcess[str], command: str, *fragments: str
) -> str:
    lines = result.stderr.splitlines()
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith(f"nfs-provisioner {command}: error: "), line
    for fragment in fragments:
        assert fragment in line, line
    return line


@pytest.fixture
def export_env(tmp_path: Path) -> dict[str, str]:
    export = tmp_path / "export"
    export.mkdir()
    return {
        "NFS_SERVER": "127.0.0.1",
        "NFS_PATH": "/exports/test",
        "PROVISIONER_NAME": "test.local/errors",
        "NFS_MOUNT_PATH": str(export),
        "NFS_PROVISIONER_METRICS_ADDRESS": "127.0.0.1:0",
    }


@pytest.fixture
def broken_kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1\nclusters: [\n  - {name: x\n")
    return path


@pytest.mark.parametrize(
    "command", [["run"], ["audit"], ["adopt", "--all-namespaces", "--dry-run"]]
)
def test_a_kubeconfig_that_is_not_yaml_is_one_line(
    command: list[str], export_env: dict[str, str], broken_kubeconfig: Path
) -> None:
    result = cli(*command, "--kubeconfig", str(broken_kubeconfig), env=export_env)
    assert_one_line_error(result, command[0], "cannot load kubeconfig", str(broken_kubeconfig))


def test_doctor_reports_a_kubeconfig_that_is_not_yaml_as_a_failure(
    export_env: dict[str, str], broken_kubeconfig: Path
) -> None:
    result = cli("doctor", "--kubeconfig", str(broken_kubeconfig), env=export_env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    cluster = [line for line in result.stdout.splitlines() if " cluster " in line]
    assert cluster and cluster[0].startswith("FAIL"), result.stdout
    assert "cannot load kubeconfig" in cluster[0]


def test_a_metrics_address_in_use_is_one_line(
    export_env: dict[str, str], control_plane: ControlPlane
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            **export_env,
            "KUBECONFIG": str(control_plane.kubeconfig),
            "NFS_PROVISIONER_METRICS_ADDRESS": f"127.0.0.1:{port}",
        }
        result = cli("run", env=env)
    assert_one_line_error(result, "run", f"127.0.0.1:{port}", "--metrics-address", "in use")


def test_a_metrics_address_that_is_not_local_is_one_line(
    export_env: dict[str, str], control_plane: ControlPlane
) -> None:
    # 192.0.2.0/24 is TEST-NET-1: never an address of this machine.
    env = {
        **export_env,
        "KUBECONFIG": str(control_plane.kubeconfig),
        "NFS_PROVISIONER_METRICS_ADDRESS": "192.0.2.1:8080",
    }
    assert_one_line_error(cli("run", env=env), "run", "192.0.2.1:8080", "--metrics-address")


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--workers", "many", "expected a whole number of at least 1"),
        ("--workers", "0", "must be at least 1"),
        ("--kube-api-qps", "fast", "expected a number"),
        ("--resync-period", "soon", "expected a duration"),
        ("--metrics-address", "8080", "expected HOST:PORT"),
    ],
)
def test_a_malformed_flag_is_one_line_naming_it(
    flag: str, value: str, expected: str, export_env: dict[str, str]
) -> None:
    result = cli("run", flag, value, env=export_env)
    assert_one_line_error(result, "run", flag, repr(value), expected)


def test_an_unknown_flag_is_one_line_with_the_command_name(export_env: dict[str, str]) -> None:
    assert_one_line_error(cli("run", "--no-such-flag", env=export_env), "run", "--no-such-flag")
    assert_one_line_error(cli("audit", "--no-such-flag"), "audit", "--no-such-flag")


def test_an_empty_nfs_server_flag_is_refused_like_an_empty_variable(
    export_env: dict[str, str],
) -> None:
    by_flag = cli("run", "--nfs-server", "", env=export_env)
    assert_one_line_error(by_flag, "run", "NFS_SERVER", "required")
    by_env = cli("run", env={**export_env, "NFS_SERVER": ""})
    assert by_env.stderr == by_flag.stderr


# `run` against the real control plane with settings that can never work.


def _kubeconfig_with_token(plane: ControlPlane, directory: Path, token: str) -> Path:
    document = json.loads(plane.kubeconfig.read_text())
    for user in document["users"]:
        user["user"] = {"token": token}
    path = directory / "kubeconfig-wrong-token"
    path.write_text(json.dumps(document))
    return path


def test_run_with_credentials_the_server_refuses_stops_with_one_line(
    export_env: dict[str, str], control_plane: ControlPlane, tmp_path: Path
) -> None:
    kubeconfig = _kubeconfig_with_token(control_plane, tmp_path, "not-the-token")
    result = cli("run", env={**export_env, "KUBECONFIG": str(kubeconfig)})
    assert_one_line_error(result, "run", "401 Unauthorized", "kubeconfig")


def test_run_with_a_lease_namespace_that_does_not_exist_stops_with_one_line(
    export_env: dict[str, str], control_plane: ControlPlane
) -> None:
    missing = unique("nosuchns")
    env = {**export_env, "KUBECONFIG": str(control_plane.kubeconfig), "POD_NAMESPACE": missing}
    result = cli("run", env=env)
    assert_one_line_error(result, "run", f"namespace {missing}", "does not exist", "POD_NAMESPACE")


def test_run_with_a_provisioner_name_that_makes_an_invalid_lease_stops_with_one_line(
    export_env: dict[str, str], control_plane: ControlPlane
) -> None:
    env = {
        **export_env,
        "KUBECONFIG": str(control_plane.kubeconfig),
        "POD_NAMESPACE": "default",
        "PROVISIONER_NAME": "Example.COM/NFS_Provisioner",
    }
    result = cli("run", env=env)
    assert_one_line_error(result, "run", "Example.COM-NFS_Provisioner", "--leader-election-id")


@pytest.fixture
def unreachable_kubeconfig(control_plane: ControlPlane, tmp_path: Path) -> Path:
    document = json.loads(control_plane.kubeconfig.read_text())
    for entry in document["clusters"]:
        entry["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    path = tmp_path / "kubeconfig-unreachable"
    path.write_text(json.dumps(document))
    return path


@pytest.fixture
def waiting_provisioner(
    export_env: dict[str, str], unreachable_kubeconfig: Path
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "KUBECONFIG"},
        **export_env,
        "KUBECONFIG": str(unreachable_kubeconfig),
        "NFS_PROVISIONER_METRICS_ADDRESS": f"127.0.0.1:{port}",
        "NFS_PROVISIONER_LOG_FORMAT": "json",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "nfs_provisioner", "run"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process, port
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


def test_run_without_an_api_server_keeps_trying_and_says_why(
    waiting_provisioner: tuple[subprocess.Popen[str], int], unreachable_kubeconfig: Path
) -> None:
    process, port = waiting_provisioner
    server = json.loads(unreachable_kubeconfig.read_text())["clusters"][0]["cluster"]["server"]

    def not_ready() -> tuple[int, str] | None:
        status, body = _get(port, "/readyz")
        return (status, body) if status == 503 and "cannot reach" in body else None

    _status, body = wait_for(not_ready, timeout=30, what="/readyz naming the unreachable server")
    assert server in body and "kubeconfig" in body, body
    assert "[Errno 111] Connection refused" in body and "HTTPSConnectionPool" not in body, body
    assert _get(port, "/healthz")[0] == 200
    time.sleep(0.5)
    assert process.poll() is None, "a transient problem must not stop the process"
    process.terminate()
    assert process.wait(timeout=30) == 0
    assert process.stderr is not None
    records = [json.loads(line) for line in process.stderr.read().splitlines() if line]
    errors = [r for r in records if r.get("level") == "error"]
    assert errors, records
    assert all(server in r["problem"] and "kubeconfig" in r["problem"] for r in errors), errors
    assert "Traceback" not in json.dumps(records)
