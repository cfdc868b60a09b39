"""The container image: the Dockerfile's shape, and its install steps run for real.

Verified here, without a container engine: the Dockerfile's builder stage runs
hack/image-install.sh and the final stage only copies its result; and that very script, run
into a fresh virtualenv, yields a working `nfs-provisioner`. tests/image/ builds the image with
podman and runs it as the chart does.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from nfs_provisioner.config import KNOBS
from tests.chart.helm import REPOSITORY

DOCKERFILE = REPOSITORY / "Dockerfile"
INSTALL_SCRIPT = REPOSITORY / "hack" / "image-install.sh"
VENV = "/opt/nfs-provisioner"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, instruction: str) -> list[str]:
        return [args for name, args in self.instructions if name == instruction]


def _stages() -> tuple[dict[str, str], list[Stage]]:
    """Global ARGs and the stages of the Dockerfile (continuation lines joined)."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif not stages and instruction == "ARG":
            key, _, default = args.partition("=")
            global_args[key] = default
        else:
            stages[-1].instructions.append((instruction, args.strip()))
    return global_args, stages


def test_dockerfile_is_multi_stage_on_slim_python() -> None:
    global_args, stages = _stages()
    assert global_args["PYTHON_IMAGE"] == "python:3.11-slim"
    builder, final = stages
    assert builder.name == "builder"
    assert builder.base == final.base == "${PYTHON_IMAGE}"
    # The builder installs through the script the test below runs, nothing else.
    assert builder.all("RUN") == [f"sh /usr/local/bin/image-install.sh /src {VENV}"]
    # pip's CA bundle behind a TLS-intercepting proxy: a build argument of the builder stage
    # only (a build argument is in the environment of that stage's RUN steps).
    assert builder.all("ARG") == ["PIP_CERT"]
    assert "hack/image-install.sh /usr/local/bin/image-install.sh" in builder.all("COPY")


def test_final_stage_only_copies_the_virtualenv() -> None:
    _, (_, final) = _stages()
    # No RUN at all: nothing is installed (no compiler, no package manager step) in the image.
    assert final.all("RUN") == []
    assert final.all("COPY") == [f"--from=builder {VENV} {VENV}"]
    assert final.all("ENTRYPOINT") == ['["nfs-provisioner", "run"]']
    env = " ".join(final.all("ENV"))
    assert f"PATH={VENV}/bin:$PATH" in env
    assert "NFS_MOUNT_PATH=/persistentvolumes" in env
    # The user is a build argument (see the chart README on root squash); root by default,
    # as the Go image.
    assert final.all("ARG") == ["UID=0", "GID=0"]
    assert final.all("USER") == ["${UID}:${GID}"]


def test_build_context_holds_what_the_dockerfile_copies() -> None:
    _, stages = _stages()
    allowed = {
        line[1:].rstrip("/")
        for line in (REPOSITORY / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    ignored = (REPOSITORY / ".dockerignore").read_text().splitlines()
    assert "*" in ignored, ".dockerignore must exclude everything not listed"
    sources = [
        source
        for stage in stages
        for args in stage.all("COPY")
        if not args.startswith("--from")
        for source in shlex.split(args)[:-1]
    ]
    assert sources
    for source in sources:
        assert (REPOSITORY / source).exists(), source
        assert source.rstrip("/") in allowed, f"{source} is excluded by .dockerignore"


def test_install_steps_give_a_working_command(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    # PYTHON: the interpreter running the tests (3.11, as the image's); its own virtualenv is
    # only the base for a fresh one.
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(PYTHON=sys.executable, PIP_DISABLE_PIP_VERSION_CHECK="1")
    install = subprocess.run(
        ["sh", str(INSTALL_SCRIPT), str(REPOSITORY), str(venv)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    command = venv / "bin" / "nfs-provisioner"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        # Empty environment and a neutral directory: only the virtualenv can provide imports.
        return subprocess.run(
            [str(command), *args],
            env={"PATH": "/usr/bin:/bin"},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    top = run("--help")
    assert top.returncode == 0, top.stderr
    assert "run the provisioner" in top.stdout
    run_help = run("run", "--help")
    assert run_help.returncode == 0, run_help.stderr
    for knob in KNOBS:
        assert knob.flag in run_help.stdout, knob.flag
        assert knob.env in run_help.stdout, knob.env
    # Imports come from the virtualenv, and it holds the runtime dependencies only.
    where = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import nfs_provisioner; print(nfs_provisioner.__file__)",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(venv))
    site_packages = next((venv / "lib").glob("python3*/site-packages"))
    installed = {path.name.split("-")[0].lower() for path in site_packages.glob("*.dist-info")}
    assert {"nfs_provisioner", "kubernetes", "prometheus_client", "structlog"} <= installed
    assert not installed & {"pytest", "mypy", "ruff", "hypothesis", "pip", "setuptools"}
    # kubernetes' asyncio client and what only it requires are left out (never imported).
    assert not installed & {"aiohttp", "aiohttp_retry", "yarl", "multidict", "frozenlist"}
    assert not (site_packages / "kubernetes" / "aio").exists()
    assert (site_packages / "kubernetes" / "client").is_dir()
    assert not list(site_packages.rglob("*_test.py"))
    # Missing settings: one line on stderr and exit 1, as the Go image's users expect.
    bare = run("run")
    assert bare.returncode == 1
    assert bare.stderr.strip().splitlines() == [
        "nfs-provisioner run: error: NFS_SERVER (or --nfs-server) is required: "
        "NFS server name or IP written into every PV"
    ]
