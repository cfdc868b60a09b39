"""Settings: env vars of the Go image, flags that win, one-line errors with exit code 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nfs_provisioner.cli import build_parser
from nfs_provisioner.config import ConfigError, load_settings, parse_duration, parse_go_bool

REQUIRED_ENV = {"NFS_SERVER": "10.0.0.5", "NFS_PATH": "/srv/nfs", "PROVISIONER_NAME": "x/y"}


def _settings(argv: list[str], env: dict[str, str]):  # type: ignore[no-untyped-def]
    return load_settings(build_parser().parse_args(["run", *argv]), env)


def test_environment_of_the_go_image_is_honoured() -> None:
    settings = _settings(
        [],
        {
            **REQUIRED_ENV,
            "ENABLE_LEADER_ELECTION": "F",
            "POD_NAMESPACE": "storage",
            "KUBECONFIG": "/k",
        },
    )
    assert settings.exports.nfs_server == "10.0.0.5"
    assert settings.exports.nfs_path == "/srv/nfs"
    assert settings.provisioner_name == "x/y"
    assert settings.election.enabled is False
    assert settings.election.namespace == "storage"
    assert settings.api.kubeconfig == "/k"
    assert settings.exports.mount_path == "/persistentvolumes"
    assert settings.election.lease_name == "x-y"


def test_flags_win_over_environment() -> None:
    settings = _settings(
        ["--nfs-server", "nfs.lan", "--workers", "3", "--mount-path", "/mnt/e"],
        {**REQUIRED_ENV, "NFS_PROVISIONER_WORKERS": "9"},
    )
    assert settings.exports.nfs_server == "nfs.lan"
    assert settings.controller.workers == 3
    assert settings.exports.mount_path == "/mnt/e"


def test_defaults() -> None:
    settings = _settings([], REQUIRED_ENV)
    assert settings.election.enabled is True
    assert settings.controller.workers == 64
    assert settings.controller.resync_period == 900
    assert (settings.controller.retry_base_delay, settings.controller.retry_max_delay) == (15, 1000)
    assert (
        settings.election.lease_duration,
        settings.election.renew_deadline,
        settings.election.retry_period,
    ) == (15, 10, 2)
    assert settings.serving.metrics_address == "0.0.0.0:8080"
    assert settings.identity.count("_") >= 1


@pytest.mark.parametrize("missing", ["NFS_SERVER", "NFS_PATH", "PROVISIONER_NAME"])
def test_missing_required_setting_names_it(missing: str) -> None:
    env = {k: v for k, v in REQUIRED_ENV.items() if k != missing}
    with pytest.raises(ConfigError, match=missing):
        _settings([], env)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"ENABLE_LEADER_ELECTION": "yes"}, "ENABLE_LEADER_ELECTION"),
        ({"NFS_PATH": "relative/path"}, "absolute"),
        ({"NFS_PROVISIONER_WORKERS": "0"}, "at least 1"),
        ({"NFS_PROVISIONER_RESYNC_PERIOD": "soon"}, "duration"),
        ({"NFS_PROVISIONER_METRICS_ADDRESS": "8080"}, "HOST:PORT"),
        ({"NFS_PROVISIONER_LOG_FORMAT": "xml"}, "json"),
        ({"NFS_PROVISIONER_LEASE_DURATION": "5s"}, "renew deadline"),
    ],
)
def test_bad_values_are_rejected_with_a_reason(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        _settings([], {**REQUIRED_ENV, **env})


@pytest.mark.parametrize("spelling", ["1", "t", "T", "TRUE", "true", "True"])
def test_go_true_spellings(spelling: str) -> None:
    assert parse_go_bool(spelling) is True


@pytest.mark.parametrize("spelling", ["0", "f", "F", "FALSE", "false", "False"])
def test_go_false_spellings(spelling: str) -> None:
    assert parse_go_bool(spelling) is False


@pytest.mark.parametrize("spelling", ["yes", "no", "tRUE", "", " true", "2"])
def test_other_spellings_are_not_booleans(spelling: str) -> None:
    with pytest.raises(ValueError):
        parse_go_bool(spelling)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("15s", 15),
        ("1m30s", 90),
        ("500ms", 0.5),
        ("2h", 7200),
        ("10", 10),
        ("0.25", 0.25),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "15x", "s", "-1", "1m30"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def _run_cli(
    args: list[str], env: dict[str, str], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nfs_provisioner", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


def test_missing_setting_is_one_line_and_exit_code_1(tmp_path: Path) -> None:
    result = _run_cli(["run"], {"PATH": "/usr/bin:/bin"}, tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "NFS_SERVER" in lines[0]


def test_unmounted_export_is_one_line_and_exit_code_1(tmp_path: Path) -> None:
    result = _run_cli(
        ["run", "--mount-path", str(tmp_path / "absent")],
        {**REQUIRED_ENV, "PATH": "/usr/bin:/bin"},
        tmp_path,
    )
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "not mounted" in result.stderr


def test_unknown_flag_is_one_line_and_exit_code_1(tmp_path: Path) -> None:
    result = _run_cli(["run", "--no-such-flag"], {"PATH": "/usr/bin:/bin"}, tmp_path)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1


def test_help_documents_every_knob_and_its_default(tmp_path: Path) -> None:
    result = _run_cli(["run", "--help"], {"PATH": "/usr/bin:/bin", "COLUMNS": "200"}, tmp_path)
    assert result.returncode == 0
    for needle in (
        "NFS_SERVER",
        "NFS_PATH",
        "PROVISIONER_NAME",
        "KUBECONFIG",
        "ENABLE_LEADER_ELECTION",
        "POD_NAMESPACE",
        "NFS_MOUNT_PATH",
        "default: /persistentvolumes",
        "default: 0.0.0.0:8080",
        "default: 15m",
    ):
        assert needle in result.stdout
