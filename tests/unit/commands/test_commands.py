"""Option handling, confirmation and the doctor's probe and output of the operator commands."""

from __future__ import annotations

import datetime
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from nfs_provisioner.cli import build_parser
from nfs_provisioner.commands import adopt, audit, doctor
from nfs_provisioner.commands.checks import CheckResult, Status
from nfs_provisioner.commands.claims import ClusterView
from nfs_provisioner.config import ConfigError
from nfs_provisioner.storage import ExpiredStorage


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_confirmation_needs_a_terminal_and_a_yes() -> None:
    out = io.StringIO()
    assert adopt.confirm("Go?", io.StringIO("y\n"), out) is None
    assert out.getvalue() == ""
    assert adopt.confirm("Go?", _Terminal("y\n"), out) is True
    assert out.getvalue() == "Go? [y/N] "
    assert adopt.confirm("Go?", _Terminal("YES\n"), out) is True
    assert adopt.confirm("Go?", _Terminal("\n"), out) is False
    assert adopt.confirm("Go?", _Terminal(""), out) is False


def _adopt_options(*argv: str, env: dict[str, str] | None = None) -> adopt.Options:
    return adopt.load_options(build_parser().parse_args(["adopt", *argv]), env or {})


def test_adopt_needs_an_explicit_scope() -> None:
    with pytest.raises(ConfigError, match="--namespace NS or --all-namespaces"):
        _adopt_options()
    options = _adopt_options("-A", "--from-class", "a", "--from-class", "b", "--timeout", "90s")
    assert (options.namespace, options.from_classes, options.timeout) == (None, ("a", "b"), 90.0)
    assert options.wait
    assert not _adopt_options("-n", "kubeflow", "--no-wait").wait


def test_adopt_reads_kubeconfig_like_run() -> None:
    assert _adopt_options("-A", env={"KUBECONFIG": "/k"}).kubeconfig == "/k"
    assert _adopt_options("-A", "--kubeconfig", "/f", env={"KUBECONFIG": "/k"}).kubeconfig == "/f"


def test_restore_takes_no_selection() -> None:
    assert _adopt_options("--restore", "/b").restore == Path("/b")
    with pytest.raises(ConfigError, match="drop --storage-class, --all-namespaces"):
        _adopt_options("--restore", "/b", "-A", "--storage-class", "nfs")


def test_bad_timeout() -> None:
    with pytest.raises(ConfigError, match="invalid --timeout"):
        _adopt_options("-A", "--timeout", "soon")


def _class(name: str, provisioner: str = "x.io/nfs", *, default: bool = False) -> dict[str, Any]:
    annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
    return {"metadata": {"name": name, "annotations": annotations}, "provisioner": provisioner}


def _view(*classes: dict[str, Any]) -> ClusterView:
    return ClusterView({c["metadata"]["name"]: c for c in classes}, True)


def test_target_class_defaults_to_the_one_default_class() -> None:
    assert adopt.target_class(_view(_class("nfs", default=True), _class("b")), None, ()) == "nfs"
    with pytest.raises(ConfigError, match="no default StorageClass"):
        adopt.target_class(_view(_class("nfs")), None, ())
    with pytest.raises(ConfigError, match=r"2 default StorageClasses \(a, b\)"):
        adopt.target_class(_view(_class("a", default=True), _class("b", default=True)), None, ())


def test_target_class_must_exist_and_provision() -> None:
    view = _view(_class("nfs"), _class("local", "kubernetes.io/no-provisioner"))
    assert adopt.target_class(view, "nfs", ()) == "nfs"
    with pytest.raises(ConfigError, match="does not exist"):
        adopt.target_class(view, "fast", ())
    with pytest.raises(ConfigError, match="has no provisioner"):
        adopt.target_class(view, "local", ())
    with pytest.raises(ConfigError, match="is the class the claims move to"):
        adopt.target_class(view, "nfs", ("nfs",))


def test_probe_leaves_nothing_behind(tmp_path: Path) -> None:
    probe = doctor.probe_export(tmp_path)
    assert probe.error is None
    assert probe.cleanup_error is None
    assert probe.euid == os.geteuid()
    assert probe.owner_uid == os.geteuid()
    assert list(tmp_path.iterdir()) == []


def test_probe_reports_the_step_that_failed(tmp_path: Path) -> None:
    probe = doctor.probe_export(tmp_path / "missing")
    assert probe.error is not None
    assert probe.failed_step == "create a directory"
    assert probe.cleanup_error is None


def _settings(*argv: str, env: dict[str, str] | None = None) -> CheckResult:
    arguments = build_parser().parse_args(["doctor", *argv])
    return doctor._settings(arguments, env or {})[1]


def test_doctor_settings_come_from_flags_then_env() -> None:
    env = {"NFS_PATH": "/exports", "PROVISIONER_NAME": "a/b"}
    result = _settings("--mount-path", "/mnt", env=env)
    assert result.status is Status.PASS
    assert result.message == "provisioner a/b, export /exports mounted at /mnt"
    missing = _settings(env={"NFS_PATH": "/exports"})
    assert missing.status is Status.WARN
    assert missing.message.startswith("PROVISIONER_NAME not set: the checks that need it")
    bad = _settings(env={"NFS_PATH": "exports", "PROVISIONER_NAME": "a/b"})
    assert bad.status is Status.FAIL
    assert "invalid NFS_PATH value 'exports'" in bad.message


def test_text_and_json_output() -> None:
    results = [
        CheckResult("mount", Status.PASS, "fine"),
        CheckResult("writable", Status.FAIL, "cannot write", "mount it rw"),
    ]
    text = doctor.render_text(results)
    assert text.splitlines()[0] == "PASS  mount           fine"
    assert text.splitlines()[1] == "FAIL  writable        cannot write"
    assert text.splitlines()[2].strip() == "fix: mount it rw"
    assert text.endswith("1 passed, 0 warning(s), 1 failure(s)")
    document = json.loads(doctor.render_json(results))
    assert document["exitCode"] == 2
    assert document["summary"] == {"pass": 1, "warn": 0, "fail": 1}
    assert document["checks"][1] == {
        "name": "writable",
        "status": "fail",
        "message": "cannot write",
        "fix": "mount it rw",
    }


def test_audit_prune_never_counts_a_failed_removal_as_pruned() -> None:
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    failed = ExpiredStorage("nfs:/srv/archived-a", 7200.0, error="Read-only file system")
    text = audit.render_text([], [], [], [failed], now, "example.com/nfs")
    assert "Pruned (0), NOT pruned because of an error (1)" in text
    assert "cannot remove nfs:/srv/archived-a: Read-only file system" in text
