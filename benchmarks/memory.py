"""``python -m benchmarks.memory``: where the provisioner's resident memory goes.

Prints a breakdown, each figure from ``/proc/<pid>/status`` (VmRSS; VmHWM for peaks) of a
fresh process:

1. the bare interpreter (``site`` included), then RSS after each group of imports that
   ``nfs-provisioner run`` loads, in the order the daemon needs them;
2. ours started on a fresh control plane that holds ``--objects`` claims and as many PVs of
   another class (a cluster's background), once ready (caches synced): RSS, threads, and how
   much of it is anonymous memory (heap, stacks) vs. mapped files (code, shared libraries);
3. a burst of ``--burst`` claims of ours: the peak (VmHWM) and RSS afterwards.

``--env NAME=VALUE`` (repeatable) runs ours with extra environment, e.g. to compare malloc
settings. The figures are memory, so unlike timings they do not depend on the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from devcluster import ensure_binaries, start_control_plane

from benchmarks.systems import Ours, Target
from benchmarks.workload import (
    Recorder,
    create_claims,
    create_namespace,
    create_storage_class,
    seed_bound_pairs,
    wait_for_binder,
)
from nfs_provisioner.kube import connect

# What `nfs-provisioner run` imports, grouped; each group after the ones before it.
IMPORT_STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("nfs_provisioner package", ("nfs_provisioner",)),
    ("stdlib TLS, HTTP, JSON", ("ssl", "http.client", "json")),
    ("urllib3", ("urllib3",)),
    ("PyYAML", ("yaml",)),
    ("structlog", ("structlog",)),
    ("prometheus_client", ("prometheus_client",)),
    ("nfs_provisioner.kube", ("nfs_provisioner.kube",)),
    ("nfs_provisioner.nfs", ("nfs_provisioner.nfs",)),
    ("nfs_provisioner.controller", ("nfs_provisioner.controller.controller",)),
    ("nfs_provisioner.cli (all of run)", ("nfs_provisioner.cli",)),
)
NAMESPACE = "bench"
SEED_NAMESPACE = "seed"
PROVISIONER = "bench.local/ours"
STORAGE_CLASS = "bench-ours"

_IMPORT_SCRIPT = """
import importlib, json, sys
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0
stages = json.loads(sys.argv[1])
figures = [["interpreter", rss()]]
for label, modules in stages:
    for module in modules:
        importlib.import_module(module)
    figures.append([label, rss()])
loaded = any(m.startswith("kubernetes") for m in sys.modules)
figures.append(["kubernetes package loaded", int(loaded)])
print(json.dumps(figures))
"""


@dataclass(frozen=True)
class ProcessMemory:
    """One sample of a live process."""

    rss_bytes: int
    peak_rss_bytes: int
    anonymous_bytes: int
    file_bytes: int
    threads: int
    sockets: int


def _sockets(pid: int) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except OSError:
            continue  # closed meanwhile
    return count


def sample(pid: int) -> ProcessMemory:
    status: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        status[key] = value.strip()

    def kib(key: str) -> int:
        return int(status.get(key, "0 kB").split()[0]) * 1024

    return ProcessMemory(
        rss_bytes=kib("VmRSS"),
        peak_rss_bytes=kib("VmHWM"),
        anonymous_bytes=kib("RssAnon"),
        file_bytes=kib("RssFile") + kib("RssShmem"),
        threads=int(status.get("Threads", "0")),
        sockets=_sockets(pid),
    )


def import_breakdown(python: str = sys.executable) -> list[tuple[str, int]]:
    """RSS of a fresh interpreter after each import stage: [(label, bytes)], cumulative."""
    output = subprocess.run(
        [python, "-c", _IMPORT_SCRIPT, json.dumps(IMPORT_STAGES)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    figures: list[list[Any]] = json.loads(output)
    return [(str(label), int(value)) for label, value in figures]


def run_ours(
    objects: int, burst: int, *, threads: int, extra_env: dict[str, str]
) -> dict[str, Any]:
    """Ours on a cluster with ``objects`` foreign pairs: memory once ready and in a burst."""
    result: dict[str, Any] = {"objects": objects, "burst": burst, "env": extra_env}
    with (
        tempfile.TemporaryDirectory(prefix="nfs-provisioner-memory-") as scratch,
        start_control_plane(
            binaries=ensure_binaries(), controller_manager_qps=1000, controller_manager_burst=1000
        ) as plane,
    ):
        api = connect(
            str(plane.kubeconfig),
            qps=0,
            burst=1,
            pool_size=threads + 8,
            user_agent="nfs-provisioner-benchmark",
        )
        create_namespace(api, NAMESPACE)
        create_storage_class(api, STORAGE_CLASS, PROVISIONER)
        wait_for_binder(api, NAMESPACE)
        if objects:
            started = time.monotonic()
            create_namespace(api, SEED_NAMESPACE)
            create_storage_class(api, "bench-seed", "bench.local/seed")
            seed_bound_pairs(api, SEED_NAMESPACE, "bench-seed", objects, threads=threads)
            result["seed_s"] = round(time.monotonic() - started, 2)
        workdir = Path(scratch)
        export = workdir / "export"
        export.mkdir()
        target = Target(
            kubeconfig=plane.kubeconfig,
            provisioner_name=PROVISIONER,
            nfs_server="nfs.bench.test",
            nfs_path="/exports/bench",
            export=export,
            workdir=workdir,
        )
        ours = Ours(extra_env=extra_env)
        recorder = Recorder(api, NAMESPACE, STORAGE_CLASS)
        try:
            ours.start(target)
            assert ours.process is not None
            pid = ours.process.pid
            result["ready"] = asdict(sample(pid))
            recorder.start()
            names = [f"claim-{i:05d}" for i in range(burst)]
            started = time.monotonic()
            create_claims(api, recorder, names, threads=threads, provisioner=PROVISIONER)
            complete = recorder.wait_for(
                "pv_created", burst, stall_timeout=60.0, deadline=started + 120 + burst
            )
            result["all_pvs_s"] = round(time.monotonic() - started, 2)
            result["complete"] = complete
            result["after_burst"] = asdict(sample(pid))
        finally:
            recorder.stop()
            ours.stop()
            result["problems"] = ours.problems()[:10]
    return result


def _mib(value: int) -> str:
    return f"{value / 2**20:6.1f} MiB"


def import_line(memory: dict[str, Any]) -> str:
    """One line for the benchmark's summary: interpreter, imports, ready, peak."""
    figures = dict(memory["imports"])
    return (
        f"memory breakdown: interpreter {_mib(figures['interpreter']).strip()}, after "
        f"imports {_mib(figures[IMPORT_STAGES[-1][0]]).strip()}, ready with the "
        f"{memory['seed_pairs']} pairs cached {_mib(memory.get('ready_rss_bytes') or 0).strip()}"
        f", peak in the burst {_mib(memory.get('peak_rss_bytes') or 0).strip()} "
        "(python -m benchmarks.memory for the details)"
    )


def print_breakdown(imports: list[tuple[str, int]], run: dict[str, Any] | None) -> None:
    print("resident memory of nfs-provisioner run (VmRSS; peak = VmHWM)")
    previous = 0
    for label, value in imports:
        if label == "kubernetes package loaded":
            print(f"  {'kubernetes package imported':<36} {'yes' if value else 'no'}")
            continue
        delta = f"(+{(value - previous) / 2**20:.1f})" if previous else ""
        print(f"  {label:<36} {_mib(value)} {delta}")
        previous = value
    if run is None:
        return
    ready, burst = run["ready"], run["after_burst"]
    print(
        f"  ready, caches synced ({run['objects']} foreign claims + {run['objects']} PVs): "
        f"{_mib(ready['rss_bytes']).strip()}, {ready['threads']} threads, "
        f"anonymous {_mib(ready['anonymous_bytes']).strip()}, "
        f"files {_mib(ready['file_bytes']).strip()}"
    )
    print(
        f"  burst of {run['burst']} claims ({run['all_pvs_s']} s, "
        f"{'complete' if run['complete'] else 'INCOMPLETE'}): peak "
        f"{_mib(burst['peak_rss_bytes']).strip()}, after {_mib(burst['rss_bytes']).strip()}, "
        f"{burst['threads']} threads, {burst['sockets']} sockets"
    )
    for line in run["problems"]:
        print(f"  log: {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__)
    parser.add_argument("--objects", type=int, default=10000, help="foreign claim/PV pairs")
    parser.add_argument("--burst", type=int, default=1000, help="claims of ours in the burst")
    parser.add_argument("--threads", type=int, default=32, help="harness threads")
    parser.add_argument("--imports-only", action="store_true", help="no control plane")
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="extra env for ours"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    extra_env = dict(item.split("=", 1) for item in args.env)
    imports = import_breakdown()
    run = (
        None
        if args.imports_only
        else run_ours(args.objects, args.burst, threads=args.threads, extra_env=extra_env)
    )
    print_breakdown(imports, run)
    if args.json:
        args.json.write_text(json.dumps({"imports": imports, "run": run}, indent=1))
    return 0 if run is None or run["complete"] else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
