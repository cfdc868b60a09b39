"""Builds the nfs-provisioner container image with podman (``make image``).

The image is built from the repository's ``Dockerfile`` and tagged with what the chart's
``image.*`` defaults point at. Its base is ``python:3.11-slim`` when that can be found or pulled;
where no registry is reachable, a Debian bookworm + Python 3.11 root filesystem is made with
mmdebstrap (once, cached under a hash of the recipe) and imported into podman. Both go through
the same Dockerfile, as its ``PYTHON_IMAGE`` build argument.

podman runs with runc and the cgroupfs manager and with ulimits below the machine's (crun
fails on hosts with hybrid cgroups); ``PODMAN`` and ``RUN_LIMITS`` are what every caller uses.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from devcluster.binaries import build_lock
from devcluster.versions import REPO_ROOT, cache_root

PACKAGES = {"podman": "podman", "runc": "runc", "mmdebstrap": "mmdebstrap"}
RUNC = "/usr/sbin/runc"
PODMAN = ("podman", "--runtime", RUNC, "--cgroup-manager", "cgroupfs")
# At or below this machine's limits: runc refuses to raise them.
RUN_LIMITS = ("--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096")

UPSTREAM_BASE = "docker.io/library/python:3.11-slim"
# The Debian-made stand-in: bookworm's python3 is 3.11, as the slim image's.
DEBIAN_SUITE = "bookworm"
DEBIAN_PACKAGES = ("python3", "python3-venv", "ca-certificates")
BASE_REPOSITORY = "localhost/nfs-provisioner-base"
PULL_TIMEOUT = 90.0

# The host's trust store, proxy CAs included: pip in the builder stage verifies TLS with it.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BUILD_CA_BUNDLE = "/etc/ssl/certs/host-ca.crt"
# The build context (.dockerignore keeps the rest out): what decides the image's content.
CONTEXT_FILES = ("Dockerfile", "pyproject.toml", "README.md", "hack/image-install.sh")
CONTEXT_DIRS = ("nfs_provisioner",)
CONTEXT_LABEL = "org.nfs-provisioner.context"

CHART = REPO_ROOT / "charts" / "nfs-provisioner"


class ImageError(RuntimeError):
    pass


def _log(message: str) -> None:
    print(f"image: {message}", file=sys.stderr, flush=True)


def chart_image() -> str:
    """``repository:tag`` of the chart's defaults (an empty tag is the chart's appVersion)."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    tag = values["image"].get("tag") or chart["appVersion"]
    return f"{values['image']['repository']}:{tag}"


def ensure_tools() -> None:
    """podman, runc and mmdebstrap from Debian packages, when one of them is missing."""
    missing = sorted(
        package
        for command, package in PACKAGES.items()
        if shutil.which(command) is None and not Path(f"/usr/sbin/{command}").exists()
    )
    if not missing:
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise ImageError(
            f"{', '.join(missing)} missing: install them (Debian: apt-get install "
            f"{' '.join(missing)}) or run as root on a Debian-like system"
        )
    _log(f"installing {' '.join(missing)}")
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=900", "-q"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*apt, "update"], env=env, check=False, stdout=subprocess.DEVNULL)
    install = subprocess.run(
        [*apt, "install", "-y", "--no-install-recommends", *missing],
        env=env,
        check=False,
        capture_output=True,
        text=True,
    )
    if install.returncode != 0:
        raise ImageError(f"apt-get install {' '.join(missing)} failed:\n{install.stderr[-2000:]}")


def podman(
    *args: str, check: bool = True, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*PODMAN, *args], capture_output=True, text=True, check=False, timeout=timeout
    )
    if check and result.returncode != 0:
        raise ImageError(f"podman {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result


def image_exists(name: str) -> bool:
    return podman("image", "exists", name, check=False).returncode == 0


def image_id(name: str) -> str | None:
    result = podman("image", "inspect", "--format", "{{.Id}}", name, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def image_label(name: str, label: str) -> str | None:
    result = podman(
        "image", "inspect", "--format", f'{{{{index .Labels "{label}"}}}}', name, check=False
    )
    value = result.stdout.strip()
    return value if result.returncode == 0 and value and value != "<no value>" else None


def _digest(parts: Iterable[str | bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def debian_recipe(rootfs: Path) -> list[str]:
    return [
        "mmdebstrap",
        "--quiet",
        "--variant=minbase",
        f"--include={','.join(DEBIAN_PACKAGES)}",
        DEBIAN_SUITE,
        str(rootfs),
    ]


def debian_base() -> str:
    """The Debian-made base image, made and imported once per recipe."""
    key = _digest(debian_recipe(Path("rootfs.tar")))
    name = f"{BASE_REPOSITORY}:python3.11-{DEBIAN_SUITE}-{key}"
    if image_exists(name):
        return name
    directory = cache_root() / "image"
    directory.mkdir(parents=True, exist_ok=True)
    rootfs = directory / f"{DEBIAN_SUITE}-{key}.tar"
    with build_lock(directory / ".lock"):
        if not rootfs.exists():
            _log(f"making a Debian {DEBIAN_SUITE} root filesystem with mmdebstrap (~1 minute)")
            partial = rootfs.with_suffix(".partial.tar")
            made = subprocess.run(
                debian_recipe(partial), capture_output=True, text=True, check=False
            )
            if made.returncode != 0:
                partial.unlink(missing_ok=True)
                raise ImageError(f"mmdebstrap failed:\n{made.stderr[-3000:]}")
            partial.rename(rootfs)
        if not image_exists(name):
            _log(f"importing {rootfs.name} as {name}")
            podman("import", str(rootfs), name)
    return name


def python_base() -> str:
    """``python:3.11-slim`` if present or pullable, else the Debian-made base.

    ``NFS_PROVISIONER_PYTHON_IMAGE`` names another base and skips the search.
    """
    configured = os.environ.get("NFS_PROVISIONER_PYTHON_IMAGE")
    if configured:
        return configured
    if image_exists(UPSTREAM_BASE):
        return UPSTREAM_BASE
    try:
        pulled = podman("pull", "--quiet", UPSTREAM_BASE, check=False, timeout=PULL_TIMEOUT)
    except subprocess.TimeoutExpired:
        pulled = None
    if pulled is not None and pulled.returncode == 0:
        return UPSTREAM_BASE
    _log(f"{UPSTREAM_BASE} cannot be pulled here; using a Debian-made base")
    return debian_base()


def context_digest(root: Path = REPO_ROOT) -> str:
    """A hash of everything the Dockerfile copies: an image with another one is stale."""
    paths = [root / name for name in CONTEXT_FILES]
    for directory in CONTEXT_DIRS:
        paths += sorted(
            path
            for path in (root / directory).rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        )
    return _digest(
        part for path in paths for part in (str(path.relative_to(root)), path.read_bytes())
    )


@dataclass(frozen=True)
class Build:
    tag: str
    build_args: Mapping[str, str]


def build(tag: str, build_args: Mapping[str, str] | None = None) -> Build:
    """``podman build`` of the Dockerfile as ``tag``; returns what was built."""
    ensure_tools()
    arguments = {"PYTHON_IMAGE": python_base(), **(build_args or {})}
    command = [
        "build",
        # No layer cache: buildah 1.28 (Debian 12's podman) reuses a cached `USER ${UID}` layer
        # when only --build-arg UID differs, so an image built for another uid kept uid 0.
        "--layers=false",
        "--network",
        "host",
        *RUN_LIMITS,
        "--label",
        f"{CONTEXT_LABEL}={context_digest()}",
        "--tag",
        tag,
        "--file",
        str(REPO_ROOT / "Dockerfile"),
    ]
    if HOST_CA_BUNDLE.exists():
        arguments.setdefault("PIP_CERT", BUILD_CA_BUNDLE)
        command += ["--volume", f"{HOST_CA_BUNDLE}:{BUILD_CA_BUNDLE}:ro"]
    for key, value in arguments.items():
        command += ["--build-arg", f"{key}={value}"]
    replaced = image_id(tag)
    _log(f"building {tag} on {arguments['PYTHON_IMAGE']}")
    with tempfile.TemporaryFile("w+") as output:
        result = subprocess.run(
            [*PODMAN, *command, str(REPO_ROOT)],
            stdout=output,
            stderr=subprocess.STDOUT,
            check=False,
        )
        if result.returncode != 0:
            output.seek(0)
            raise ImageError(f"podman build of {tag} failed:\n{output.read()[-4000:]}")
    if replaced and replaced != image_id(tag):
        # The previous build of this tag, now untagged; kept if a container still uses it.
        podman("rmi", replaced, check=False)
    return Build(tag, arguments)


def ensure_image(tag: str | None = None, build_args: Mapping[str, str] | None = None) -> str:
    """``tag`` (default: the chart's image), built unless it exists from the same sources."""
    name = tag or chart_image()
    ensure_tools()
    if image_label(name, CONTEXT_LABEL) != context_digest():
        build(name, build_args)
    return name


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="build_image.py", description=__doc__.split("\n")[0])
    parser.add_argument("--tag", help="image name (default: the chart's image.* defaults)")
    parser.add_argument(
        "--build-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="passed to podman build, e.g. UID=65534 (repeatable)",
    )
    options = parser.parse_args(argv)
    build_args = dict(item.partition("=")[::2] for item in options.build_arg)
    try:
        built = build(options.tag or chart_image(), build_args)
    except ImageError as error:
        sys.exit(f"image: {error}")
    print(built.tag)
