"""`make demo` (hack/demo.py) cannot hurt itself: a second one refuses instead of wiping the
first; claims are created and deleted from a second terminal with one-line errors; the log is
plain text; doctor, audit and adopt work against it as the banner says."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from devcluster.versions import REPO_ROOT

from tests.e2e.harness import wait_for

DEMO = REPO_ROOT / "hack" / "demo.py"


class Demo:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.env = {**os.environ, "NFS_PROVISIONER_DEMO_DIR": str(directory)}
        self.env.pop("KUBECONFIG", None)
        self.output: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, str(DEMO)],
            env=self.env,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)

    @property
    def text(self) -> str:
        return "".join(self.output)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(DEMO), *args],
            env=self.env,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=60)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    running = Demo(tmp_path / "demo")
    try:
        wait_for(
            lambda: "Press Ctrl-C" in running.text or running.process.poll() is not None,
            timeout=180,
            what="the demo to start",
        )
        assert running.process.poll() is None, running.text
        yield running
    finally:
        running.stop()


def _one_line_error(result: subprocess.CompletedProcess[str], prog: str) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{prog}: error: "), lines[0]
    return lines[0]


def _banner_command(text: str, label: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.strip().startswith(label))
    return shlex.split(line.split(":", 1)[1].split("(")[0])


def test_a_second_demo_refuses_and_leaves_the_first_alone(demo: Demo) -> None:
    export = demo.directory / "export"
    before = sorted(p.name for p in export.iterdir())
    kubeconfig = os.readlink(demo.directory / "kubeconfig")
    assert before, demo.text
    second = demo.run()
    line = _one_line_error(second, "demo.py")
    assert f"a demo is already running (pid {demo.process.pid}" in line
    assert sorted(p.name for p in export.iterdir()) == before
    assert os.readlink(demo.directory / "kubeconfig") == kubeconfig
    assert demo.process.poll() is None
    assert demo.run("--help").returncode == 0


def test_claims_are_created_and_deleted_from_a_second_terminal(demo: Demo) -> None:
    created = demo.run("claim", "extra", "2Gi")
    assert created.returncode == 0, created.stderr
    assert "claim default/extra: Bound to pvc-" in created.stdout
    directory = next(p for p in (demo.directory / "export").iterdir() if "-extra-" in p.name)

    deleted = demo.run("delete", "extra")
    assert deleted.returncode == 0, deleted.stderr
    assert "claim default/extra: deleted" in deleted.stdout
    assert f"archived-{directory.name} (archived: True)" in deleted.stdout
    assert not directory.exists()

    for args, fragment in (
        (("claim", "minio-pvc"), "already exists"),
        (("claim", "Not_A_Name"), "Not_A_Name"),
        (("claim", "sized", "lots"), "quantities must match"),
        (("delete", "nosuch"), "not found"),
    ):
        line = _one_line_error(demo.run(*args), f"demo.py {args[0]}")
        assert fragment in line, line


def test_the_log_is_plain_text_and_the_banner_commands_work(demo: Demo) -> None:
    log = (demo.directory / "provisioner.log").read_text()
    assert "starting" in log
    assert "\x1b" not in log
    for label in ("create a claim:", "delete it:", "then check it:"):
        assert label in demo.text, demo.text
    env = dict(demo.env)
    for line in (demo.directory / "env").read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = shlex.split(value)[0]
    doctor = _banner_command(demo.text, "then check it:")
    assert doctor[-1] == "--local-export"
    checked = subprocess.run(
        doctor, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert "Traceback" not in checked.stderr
    mount = next(line for line in checked.stdout.splitlines() if line[6:].startswith("mount "))
    assert mount.startswith("WARN") and "as --local-export says" in mount, checked.stdout
    assert "FAIL" not in checked.stdout, checked.stdout
    assert checked.returncode == 1, checked.stdout
    cli = doctor[0]
    audit = subprocess.run(
        [cli, "audit"],
        check=False,
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "Directories without a PersistentVolume (0)" in audit.stdout
    adopt = subprocess.run(
        [cli, "adopt", "--all-namespaces", "--dry-run"],
        check=False,
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert adopt.returncode == 0, adopt.stdout + adopt.stderr
    assert "No Pending claim needs adoption." in adopt.stdout


def test_a_restarted_demo_says_what_it_removes(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    (directory / "export" / "default-old-pvc-1").mkdir(parents=True)
    demo = Demo(directory)
    try:
        wait_for(
            lambda: "Press Ctrl-C" in demo.text or demo.process.poll() is not None,
            timeout=180,
            what="the demo to start",
        )
        assert "Removing what an earlier demo left" in demo.text, demo.text
        assert "default-old-pvc-1" in demo.text
    finally:
        assert demo.stop() == 0, demo.text
    assert not (directory / "kubeconfig").exists()
    assert not (directory / "env").exists()


def _children(pid: int) -> dict[int, str]:
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found[int(stat.parent.name)] = cmdline
    return found


def test_a_killed_demo_leaves_no_provisioner_running(tmp_path: Path) -> None:
    demo = Demo(tmp_path / "demo")
    children: dict[int, str] = {}
    try:
        wait_for(
            lambda: "Press Ctrl-C" in demo.text or demo.process.poll() is not None,
            timeout=180,
            what="the demo to start",
        )
        children = _children(demo.process.pid)
        (provisioner,) = [pid for pid, cmd in children.items() if "nfs_provisioner run" in cmd]
        demo.process.kill()
        demo.process.wait(timeout=30)
        wait_for(
            lambda: (
                not Path(f"/proc/{provisioner}").exists()
                or "Z"
                in Path(f"/proc/{provisioner}/stat").read_text().rsplit(")", 1)[1].split()[:1]
            ),
            # Its graceful shutdown meets an API server that died with the demo too.
            timeout=120,
            what="the provisioner to stop with its demo",
        )
        # The control plane's processes die with it too (PR_SET_PDEATHSIG = SIGKILL).
        wait_for(
            lambda: not [pid for pid, cmdline in children.items() if _alive(pid, cmdline)],
            timeout=60,
            what="every process the demo started to stop with it",
        )
    finally:
        demo.stop()
        # Whatever failed above, none of the demo's processes is left behind.
        for pid, cmdline in children.items():
            if _alive(pid, cmdline):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)


def _alive(pid: int, cmdline: str) -> bool:
    """Whether ``pid`` is still the process it was (a pid may be reused) and not a zombie."""
    try:
        same = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode() == cmdline
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return same and state != "Z"
