"""A first run, word for word: clone the repository, then do what README.md's "The demo, step
by step" says, in its order, and check every output it promises (`# -> text`, up to any `...`).

The clone installs its own .venv (pip reuses its download cache) and reuses the control-plane
binaries in ~/.cache/nfs-provisioner, so this costs a pip install and a demo start. It never
skips: without git, pip's index or the Go toolchain it fails, saying which step did."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from devcluster.versions import REPO_ROOT

SECTION = "### The demo, step by step"
# pip install and, on a machine without the binaries yet, their build.
DEMO_START_TIMEOUT = 1800.0
COMMAND_TIMEOUT = 180.0


@dataclass(frozen=True)
class Step:
    command: str
    promised: tuple[str, ...]


def _promise(comment: str) -> str:
    return comment.split("...", maxsplit=1)[0].strip()


def readme_steps(readme: str) -> list[list[Step]]:
    """The shell blocks of the section, each a list of (command, promised outputs)."""
    start = readme.index(SECTION)
    end = readme.index("\n## ", start)
    blocks = re.findall(r"```sh\n(.*?)```", readme[start:end], re.DOTALL)
    assert len(blocks) >= 2, f"README section {SECTION!r} lost its shell blocks"
    parsed = []
    for block in blocks:
        steps: list[Step] = []
        for line in block.splitlines():
            if line.startswith("# -> "):
                last = steps[-1]
                steps[-1] = Step(last.command, (*last.promised, _promise(line[5:])))
                continue
            command, _, comment = line.partition("# -> ")
            command = command.split("  #")[0].strip() if "  #" in command else command.strip()
            steps.append(Step(command, (_promise(comment),) if comment else ()))
        parsed.append(steps)
    return parsed


class Output:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.process = process
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, promised: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while promised not in self.text:
            if self.process.poll() is not None:
                pytest.fail(
                    f"`make demo` exited with {self.process.returncode} before printing "
                    f"{promised!r}:\n{self.text[-4000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"`make demo` did not print {promised!r} in {timeout:.0f}s")
            time.sleep(0.5)


@pytest.fixture
def clone(tmp_path: Path) -> Iterator[Path]:
    git = shutil.which("git")
    if git is None:
        pytest.fail("the first-run test needs git (apt-get install git)")
    directory = tmp_path / "nfs-provisioner"
    subprocess.run(
        [git, "clone", "--quiet", str(REPO_ROOT), str(directory)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    yield directory


def _environment() -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("KUBECONFIG", "NFS_PROVISIONER_DEMO_DIR", "VIRTUAL_ENV")
        and not key.startswith(("NFS_", "PROVISIONER_", "PYTEST", "MAKE", "MFLAGS"))
    }
    # The clone's own .venv, not this test's.
    paths = env.get("PATH", "/usr/bin:/bin").split(os.pathsep)
    env["PATH"] = os.pathsep.join(p for p in paths if not p.startswith(str(REPO_ROOT)))
    return env


def _wait_until_gone(group: int, timeout: float = 120.0) -> None:
    """make may exit before the demo under it has cleaned up: wait for the whole group."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(group, signal.SIGKILL)
    pytest.fail(f"the demo's processes were still running {timeout:.0f}s after Ctrl-C")


def test_the_readme_demo_word_for_word_on_a_fresh_clone(clone: Path) -> None:
    first, *others = readme_steps((clone / "README.md").read_text())
    assert [step.command for step in first] == ["make demo"], first
    env = _environment()
    demo = subprocess.Popen(
        ["make", "demo"],
        cwd=clone,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = Output(demo)
    try:
        for promised in first[0].promised:
            output.wait_for(promised, DEMO_START_TIMEOUT)
        sourced: list[str] = []
        for block in others:
            for step in block:
                if step.command.startswith(". "):
                    sourced.append(step.command.split("#")[0].strip())
                    continue
                script = "; ".join([*sourced, step.command])
                done = subprocess.run(
                    ["bash", "-c", script],
                    cwd=clone,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=COMMAND_TIMEOUT,
                    check=False,
                )
                said = done.stdout + done.stderr
                assert "Traceback" not in said, f"{step.command}:\n{said}"
                for promised in step.promised:
                    assert promised in said, f"{step.command} did not print {promised!r}:\n{said}"
        assert demo.poll() is None, output.text
    finally:
        if demo.poll() is None:
            # What Ctrl-C in the demo's terminal does: SIGINT to its whole process group.
            os.killpg(demo.pid, signal.SIGINT)
            demo.wait(timeout=120)
        _wait_until_gone(demo.pid)
    assert "stopping" in output.text, output.text[-2000:]
    assert not (clone / ".demo" / "kubeconfig").exists()
    assert not (clone / ".demo" / "env").exists()
