"""``python -m benchmarks.image``: the container image's size, start-up time and memory.

Builds the chart's image if needed (``make image``'s code) and reports:

- its size, its base's, what it adds, and the largest parts of what it adds;
- cold start: ``podman run`` of the chart's container spec (default values: hardened
  securityContext, read-only root filesystem, memory limit) -> ``/readyz`` answers 200, over
  ROUNDS fresh containers against a local control plane, with in-cluster configuration;
- memory: resident set when idle and ready, then peak RSS (VmHWM) and the container's CPU time
  after a burst of CLAIMS claims provisioned and deleted; CPU used while idle.

The figures are what the chart's ``resources`` defaults are set from (see README).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import ssl
import statistics
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from devcluster import ControlPlane, ensure_binaries, start_control_plane
from devcluster.controlplane import free_port
from devcluster.image import PODMAN, ensure_image, python_base
from devcluster.pods import Container, PodRun, ServiceAccountFiles
from devcluster.versions import REPO_ROOT

from nfs_provisioner.objects import new_claim

CHART = REPO_ROOT / "charts" / "nfs-provisioner"
NAMESPACE = "default"
STORAGE_CLASS = "nfs"
_TICKS = os.sysconf("SC_CLK_TCK")


def _admin_request(plane: ControlPlane, method: str, path: str, body: Any = None) -> Any:
    context = ssl.create_default_context(cafile=str(plane.ca_file))
    request = urllib.request.Request(
        plane.server + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {plane.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, context=context, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def render(port: int) -> list[dict[str, Any]]:
    """The seed line's objects, with the metrics port free on this host."""
    result = subprocess.run(
        [
            str(ensure_binaries().helm),
            "template",
            "bench",
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--set",
            "nfs.server=192.0.2.10",
            "--set",
            f"storageClass.name={STORAGE_CLASS}",
            "--set",
            "storageClass.defaultClass=true",
            "--set",
            f"metrics.port={port}",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "HELM_CACHE_HOME": tempfile.gettempdir() + "/nfs-bench-helm"},
    )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def image_size(name: str) -> int:
    out = subprocess.run(
        [*PODMAN, "image", "inspect", "--format", "{{.Size}}", name],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(out.strip())


def largest_parts(image: str) -> str:
    """``du`` of the virtualenv's largest parts, from inside the image."""
    return subprocess.run(
        [
            *PODMAN,
            "run",
            "--rm",
            "--ulimit",
            "nofile=4096:4096",
            "--ulimit",
            "nproc=4096:4096",
            "--entrypoint",
            "sh",
            image,
            "-c",
            # One du per part: du counts a file once, so a parent first would hide its parts.
            "cd /opt/nfs-provisioner/lib/python3*/site-packages && du -sk * | sort -n | tail -8",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def process_status(pid: int) -> dict[str, str]:
    status = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        status[key] = value.strip()
    return status


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def container_pid(container: Container) -> int:
    return int(container.state()["Pid"])


@contextmanager
def pod(plane: ControlPlane, workdir: Path, export: Path, name: str) -> Iterator[Container]:
    objects = render(free_port())
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    files = ServiceAccountFiles.write(
        workdir / f"{name}-serviceaccount",
        plane.token,
        plane.ca_file.read_bytes(),
        NAMESPACE,
        plane.server,
    )
    container = Container(PodRun(deployment, NAMESPACE, name, export, files))
    try:
        yield container
    finally:
        container.remove()


def wait_ready(container: Container, timeout: float = 60.0) -> float:
    """Seconds from `podman run` to /readyz 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if container.probe("readinessProbe") == 200:
            return time.monotonic() - container.started_at
        time.sleep(0.02)
    raise RuntimeError(f"{container.run.name} not ready:\n{container.logs()[-2000:]}")


def burst(plane: ControlPlane, claims: int) -> float:
    """Create ``claims`` claims, wait until all are Bound; delete them; seconds taken."""
    start = time.monotonic()
    path = f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims"

    def create(index: int) -> None:
        _admin_request(
            plane,
            "POST",
            path,
            new_claim(f"burst-{index}", storage_class=STORAGE_CLASS),
        )

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(create, range(claims)))
    while True:
        items = _admin_request(plane, "GET", path)["items"]
        if sum((i.get("status") or {}).get("phase") == "Bound" for i in items) == claims:
            break
        time.sleep(0.5)

    def delete(index: int) -> None:
        _admin_request(plane, "DELETE", f"{path}/burst-{index}")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(delete, range(claims)))
    while _admin_request(plane, "GET", "/api/v1/persistentvolumes")["items"]:
        time.sleep(0.5)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.image", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="cold starts to time")
    parser.add_argument("--claims", type=int, default=1000, help="claims in the burst")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of idle CPU sampling")
    options = parser.parse_args()

    image = ensure_image()  # the chart's image.* defaults
    base = python_base()
    size, base_size = image_size(image), image_size(base)
    print(f"image     {image}: {size / 1e6:.0f} MB")
    print(f"base      {base}: {base_size / 1e6:.0f} MB")
    print(f"added     {(size - base_size) / 1e6:.0f} MB; largest parts (KiB):")
    print(largest_parts(image).rstrip())

    workdir = Path(tempfile.mkdtemp(prefix="nfs-provisioner-bench-image-"))
    try:
        with start_control_plane(
            controller_manager_qps=500, controller_manager_burst=1000
        ) as plane:
            export = workdir / "export"
            export.mkdir()
            for obj in render(free_port()):
                if obj["kind"] == "StorageClass":
                    _admin_request(plane, "POST", "/apis/storage.k8s.io/v1/storageclasses", obj)
            starts = []
            for round_number in range(options.rounds):
                with pod(plane, workdir, export, f"bench-start-{round_number}") as container:
                    container.start()
                    starts.append(wait_ready(container))
                    container.stop()
            print(
                f"cold start to /readyz over {options.rounds} containers: "
                f"median {statistics.median(starts):.2f} s, max {max(starts):.2f} s"
            )
            with pod(plane, workdir, export, "bench-memory") as container:
                container.start()
                wait_ready(container)
                pid = container_pid(container)
                time.sleep(2.0)
                idle_rss = process_status(pid)["VmRSS"]
                before = cpu_seconds(pid)
                time.sleep(options.idle)
                idle_cpu = (cpu_seconds(pid) - before) / options.idle
                print(f"idle      RSS {idle_rss}; CPU {idle_cpu * 1000:.1f} millicores")
                before = cpu_seconds(pid)
                took = burst(plane, options.claims)
                status = process_status(pid)
                burst_cpu = cpu_seconds(pid) - before
                print(
                    f"burst     {options.claims} claims Bound and deleted in {took:.1f} s; "
                    f"CPU {burst_cpu:.1f} s ({burst_cpu / took * 1000:.0f} millicores)"
                )
                print(f"peak RSS  {status['VmHWM']} (now {status['VmRSS']})")
                container.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
