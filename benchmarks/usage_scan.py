"""``python -m benchmarks.usage_scan``: what one usage scan of many volumes costs.

Creates VOLUMES volume directories (each with a subdirectory and FILES files of FILE_SIZE
bytes) under a scratch export, then runs complete scans through the provisioner's own code
path (UsageReporter -> NFSBackend.measure -> the descriptor-based walk, gauges included) and
reports wall time, CPU time and entries per second. ``--rate`` applies the scan's rate limit
(entries per second) as the daemon would; without it the scan runs flat out, which gives the
CPU cost per entry. ``--export`` points it at a real NFS mount to measure the network too;
``--nfs-real`` makes one: a fresh NFS-Ganesha export on 127.0.0.1 mounted with fuse-nfs
(hack/nfsworld, root).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nfsworld import Squash, start_nfs_world

from nfs_provisioner.controller.usage_reports import UsageReporter
from nfs_provisioner.nfs import NFSBackend

SERVER = "nfs.benchmark"
SHARE = "/exports/benchmark"
PROVISIONER = "benchmark/nfs"


@dataclass(frozen=True)
class Scan:
    wall: float
    cpu: float
    entries: int

    def row(self, label: str) -> str:
        rate = self.entries / self.wall if self.wall else float("inf")
        per_entry = self.cpu / self.entries * 1e6 if self.entries else 0.0
        return (
            f"{label:<12} {self.entries:>9} {self.wall:>9.2f} {self.cpu:>8.2f} "
            f"{rate:>12.0f} {per_entry:>11.1f}"
        )


class _Volumes:
    """The one thing UsageReporter asks of the volume cache."""

    def __init__(self, volumes: list[dict[str, Any]]) -> None:
        self._volumes = volumes

    def items(self) -> list[dict[str, Any]]:
        return self._volumes


class _NoEvents:
    def record(self, *_: object) -> None:
        raise AssertionError("no volume of the benchmark outgrows its capacity")


def populate(export: Path, volumes: int, files: int, file_size: int) -> list[dict[str, Any]]:
    payload = b"x" * file_size
    bodies = []
    for index in range(volumes):
        pv_name = f"pvc-{uuid.uuid4()}"
        directory = export / f"bench-claim-{index}-{pv_name}"
        (directory / "data").mkdir(parents=True)
        for number in range(files):
            (directory / "data" / f"file-{number}").write_bytes(payload)
        bodies.append(
            {
                "metadata": {
                    "name": pv_name,
                    "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
                },
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "nfs": {"server": SERVER, "path": f"{SHARE}/{directory.name}"},
                    "claimRef": {"namespace": "bench", "name": f"claim-{index}"},
                },
                "status": {"phase": "Bound"},
            }
        )
    return bodies


def scan(reporter: UsageReporter, volumes: int, files: int) -> Scan:
    wall, cpu = time.perf_counter(), time.process_time()
    reporter.scan_once()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    # Per volume: its directory, "data", and the files in it.
    return Scan(wall, cpu, volumes * (2 + files))


@contextmanager
def scratch_export(given: Path | None) -> Iterator[Path]:
    if given is not None:
        directory = Path(tempfile.mkdtemp(prefix="usage-scan-", dir=given))
    else:
        directory = Path(tempfile.mkdtemp(prefix="usage-scan-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--volumes", type=int, default=1000)
    parser.add_argument("--files", type=int, default=10, help="files per volume (default 10)")
    parser.add_argument("--file-size", type=int, default=4096, help="bytes per file")
    parser.add_argument("--scans", type=int, default=3, help="scans after the first (cold) one")
    parser.add_argument(
        "--rate", type=float, default=None, help="entries per second (default: unlimited)"
    )
    parser.add_argument("--export", type=Path, help="directory to create the volumes in")
    parser.add_argument(
        "--nfs-real",
        action="store_true",
        help="create them on a fuse-nfs mount of a fresh NFS-Ganesha export (needs root)",
    )
    arguments = parser.parse_args()

    with ExitStack() as stack:
        root = arguments.export
        if arguments.nfs_real:
            world = stack.enter_context(start_nfs_world({"usage": Squash.NONE}))
            root = world.mount(world.exports["usage"].url).path
            print(world.describe())
        export = stack.enter_context(scratch_export(root))
        started = time.perf_counter()
        bodies = populate(export, arguments.volumes, arguments.files, arguments.file_size)
        print(
            f"created {arguments.volumes} volumes x ({arguments.files} files of "
            f"{arguments.file_size} bytes) in {time.perf_counter() - started:.1f}s under {export}"
        )
        reporter = UsageReporter(
            _Volumes(bodies),  # type: ignore[arg-type]
            NFSBackend(server=SERVER, export_path=SHARE, mount_path=export),
            _NoEvents(),  # type: ignore[arg-type]
            provisioner_name=PROVISIONER,
            interval=0,
            rate=arguments.rate or 1e12,
            stop=threading.Event(),
        )
        print(
            f"{'scan':<12} {'entries':>9} {'wall s':>9} {'CPU s':>8} {'entries/s':>12} "
            f"{'CPU us/entry':>11}"
        )
        print(scan(reporter, arguments.volumes, arguments.files).row("first"))
        for number in range(1, arguments.scans + 1):
            print(scan(reporter, arguments.volumes, arguments.files).row(f"repeat {number}"))


if __name__ == "__main__":
    main()
