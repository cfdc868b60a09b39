"""The systems under test, each a fresh process per run: ours, the Go provisioner, the floor.

Every one is started against a running control plane, waited for until it is ready, and
measured from ``/proc`` (CPU seconds and peak RSS) just before it is stopped.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devcluster.controlplane import free_port
from devcluster.goriginal import GoOriginal as GoBuild

_PR_SET_PDEATHSIG = 1
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The Go original has no flag for its export: it always uses this directory.
GO_MOUNT_ROOT = Path("/persistentvolumes")
_PROBLEM_LEVELS = {"warning", "error", "critical"}
_GO_PROBLEM_PREFIXES = ("E", "W", "F")


class SystemUnderTestError(RuntimeError):
    """A system under test failed to start or died."""


@dataclass(frozen=True)
class Usage:
    cpu_seconds: float
    peak_rss_bytes: int
    rss_bytes: int = 0


@dataclass(frozen=True)
class Target:
    """What a system needs to know about the run it serves."""

    kubeconfig: Path
    provisioner_name: str
    nfs_server: str
    nfs_path: str
    export: Path
    workdir: Path


def process_usage(pid: int) -> Usage:
    """User+system CPU and VmHWM of a live process (children are not counted)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name may contain spaces and parentheses; the fields start after the last ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    peak = rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) * 1024
        elif line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    return Usage(cpu_seconds=cpu, peak_rss_bytes=peak, rss_bytes=rss)


def _die_with_parent() -> None:
    # An interrupted benchmark must not leave a provisioner running against nothing.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class System:
    name: str
    label: str

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    def start(self, target: Target) -> None:
        raise NotImplementedError

    def _spawn(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )

    def _wait_ready(self, ready: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise SystemUnderTestError(
                    f"{self.name} exited with {self.process.returncode} before it was ready:\n"
                    f"{self.log_tail()}"
                )
            if ready():
                return
            time.sleep(0.1)
        raise SystemUnderTestError(
            f"{self.name} not ready after {timeout:.0f}s ({what}):\n{self.log_tail()}"
        )

    def usage(self) -> Usage:
        if self.process is None or self.process.poll() is not None:
            raise SystemUnderTestError(f"{self.name} is not running:\n{self.log_tail()}")
        return process_usage(self.process.pid)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log_text(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def problems(self) -> list[str]:
        """Warning and error lines of its log: a burst should produce none."""
        return [line for line in self.log_text().splitlines() if _is_problem(line)]

    def cleanup(self, target: Target) -> None:
        """Remove what a run left on disk; the export of ours is a per-run temp dir."""

    def stage_times(self) -> dict[str, list[float | None]]:
        """After stop: per claim ("namespace/name"), time.monotonic() when the system saw it,
        a worker took it up, its directory was made and its PV create was acknowledged
        (None where a system has no such stage); empty for a system that does not say."""
        return {}


def _is_problem(line: str) -> bool:
    """A JSON log record at warning level or above, or any line that is not JSON at all
    (a traceback, say)."""
    if not line.strip():
        return False
    try:
        record = json.loads(line)
    except ValueError:
        return True
    return not isinstance(record, dict) or record.get("level") in _PROBLEM_LEVELS


class Ours(System):
    name = "ours"
    label = "ours (nfs_provisioner)"

    def __init__(self, log_level: str = "warning", extra_env: dict[str, str] | None = None) -> None:
        super().__init__()
        self.log_level = log_level
        self.metrics_port = 0
        self.stage_path: Path | None = None
        self.extra_env = extra_env or {}

    def start(self, target: Target) -> None:
        self.metrics_port = free_port()
        self.stage_path = target.workdir / f"{self.name}-stages.json"
        env = {
            **os.environ,
            "NFS_SERVER": target.nfs_server,
            "NFS_PATH": target.nfs_path,
            "PROVISIONER_NAME": target.provisioner_name,
            "KUBECONFIG": str(target.kubeconfig),
            "ENABLE_LEADER_ELECTION": "false",
            "NFS_MOUNT_PATH": str(target.export),
            "NFS_PROVISIONER_METRICS_ADDRESS": f"127.0.0.1:{self.metrics_port}",
            "NFS_PROVISIONER_LOG_LEVEL": self.log_level,
            "NFS_PROVISIONER_LOG_FORMAT": "json",
            # Written when it stops (System.stop): see stage_times.
            "NFS_PROVISIONER_STAGE_LOG": str(self.stage_path),
            **self.extra_env,
        }
        self._spawn(
            [sys.executable, "-m", "nfs_provisioner", "run"], env, target.workdir / "ours.log"
        )
        self._wait_ready(self._ready, "GET /readyz != 200")

    def stage_times(self) -> dict[str, list[float | None]]:
        if self.stage_path is None or not self.stage_path.exists():
            return {}
        claims: dict[str, list[float | None]] = json.loads(self.stage_path.read_text())["claims"]
        return claims

    def _ready(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.metrics_port}/readyz"
            with urllib.request.urlopen(url, timeout=2) as response:
                return int(response.status) == 200
        except (urllib.error.URLError, OSError):
            return False


class GoOriginal(System):
    name = "go"

    label = "Go original"

    def __init__(self, build: GoBuild) -> None:
        super().__init__()
        self.build = build

    def start(self, target: Target) -> None:
        env = {
            **os.environ,
            "KUBECONFIG": str(target.kubeconfig),
            "ENABLE_LEADER_ELECTION": "false",
            "NFS_SERVER": target.nfs_server,
            "NFS_PATH": target.nfs_path,
            "PROVISIONER_NAME": target.provisioner_name,
        }
        self._spawn([str(self.build.binary)], env, target.workdir / "go.log")
        # Logged once the informers have synced and the workers run.
        self._wait_ready(
            lambda: "Started provisioner controller" in self.log_text(),
            "no 'Started provisioner controller' log line",
        )

    def problems(self) -> list[str]:
        # klog lines start with a severity letter and the date: "E0102 15:04:05.000000 ...".
        return [
            line
            for line in self.log_text().splitlines()
            if line[:1] in _GO_PROBLEM_PREFIXES and line[1:5].isdigit()
        ]

    def cleanup(self, target: Target) -> None:
        # The next Go run must start from an empty export, like the others.
        _empty(GO_MOUNT_ROOT)


class Floor(System):
    """Issues exactly the writes a provisioner must issue, with no other logic."""

    name = "floor"
    label = "floor (API writes only)"

    def __init__(self, threads: int = 32) -> None:
        super().__init__()
        self.threads = threads
        self.report_path: Path | None = None

    def start(self, target: Target) -> None:
        ready = target.workdir / "floor.ready"
        self.report_path = target.workdir / "floor-report.json"
        argv = [
            sys.executable,
            "-m",
            "benchmarks.floor",
            f"--kubeconfig={target.kubeconfig}",
            f"--provisioner-name={target.provisioner_name}",
            f"--nfs-server={target.nfs_server}",
            f"--nfs-path={target.nfs_path}",
            f"--threads={self.threads}",
            f"--ready-file={ready}",
            f"--report-file={self.report_path}",
        ]
        # SIGTERM (System.stop) makes the floor write its report before it exits.
        self._spawn(argv, dict(os.environ), target.workdir / "floor.log")
        self._wait_ready(ready.exists, "no ready file")

    def report(self) -> dict[str, dict[str, float]]:
        if self.report_path is None or not self.report_path.exists():
            return {}
        data: dict[str, dict[str, float]] = json.loads(self.report_path.read_text())
        return data

    def stage_times(self) -> dict[str, list[float | None]]:
        # The floor has no directory to make: its PV create starts when its thread does.
        report = self.report()
        seen, started, acked = (report.get(k, {}) for k in ("seen", "started", "pv_acks"))
        return {key: [when, started.get(key), None, acked.get(key)] for key, when in seen.items()}

    def problems(self) -> list[str]:
        return [line for line in self.log_text().splitlines() if line.startswith("error")]


@contextmanager
def go_mount_root() -> Iterator[None]:
    """Provide /persistentvolumes for the Go provisioner, and remove it afterwards."""
    created = False
    if GO_MOUNT_ROOT.exists():
        if any(GO_MOUNT_ROOT.iterdir()):
            raise SystemUnderTestError(
                f"{GO_MOUNT_ROOT} exists and is not empty; the Go provisioner would write there. "
                "Move it away or run with --no-go."
            )
    else:
        GO_MOUNT_ROOT.mkdir(mode=0o755)
        created = True
    try:
        yield
    finally:
        if GO_MOUNT_ROOT.exists():
            _empty(GO_MOUNT_ROOT)
            if created:
                GO_MOUNT_ROOT.rmdir()


def _empty(directory: Path) -> None:
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
