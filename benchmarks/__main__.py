"""``python -m benchmarks``: burst benchmark of ours, the Go provisioner and the floor.

See benchmarks/README.md for what is measured and how to read the table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import socket
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from devcluster import ensure_binaries
from devcluster.binaries import BuildError
from devcluster.goriginal import SETTING as GO_SOURCE_SETTING
from devcluster.goriginal import GoOriginal as GoBuild
from devcluster.goriginal import ensure_go_original
from devcluster.versions import read_versions

from benchmarks import memory as memory_breakdown
from benchmarks import report, scale
from benchmarks.nfs import OursOnNfs
from benchmarks.runner import RunResult, RunSpec, run_one
from benchmarks.systems import Floor, GoOriginal, Ours, System, go_mount_root

# Untracked by git: a run's files are published by copying them into benchmarks/results/.
RESULTS_DIR = Path(__file__).resolve().parent.parent / ".bench-results"
SYSTEMS = ("ours", "ours-nfs", "go", "floor")


@dataclass(frozen=True)
class Size:
    n: int
    rounds: int | None  # None: every round

    def in_round(self, round_number: int) -> bool:
        return self.rounds is None or round_number <= self.rounds


def parse_sizes(text: str) -> list[Size]:
    """ "100,500x1" -> N=100 every round, N=500 in the first round only."""
    sizes = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        n, _, rounds = part.partition("x")
        sizes.append(Size(int(n), int(rounds) if rounds else None))
    return sizes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time bursts of claims against ours, the Go provisioner and the floor, "
        "each on a fresh local control plane. Sizes take an optional round limit: "
        "'500x1' runs N=500 in the first round only.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="N=100, one round, no Go, no memory run"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds, alternating systems (3)")
    parser.add_argument("--sizes", default="100,1000,5000", help="N for ours")
    parser.add_argument(
        "--nfs-sizes",
        default="1000",
        help="N for ours on a real NFS mount (fuse-nfs + NFS-Ganesha; needs root)",
    )
    parser.add_argument("--floor-sizes", default="100,1000,5000x1", help="N for the floor")
    parser.add_argument("--go-sizes", default="100,500x1", help="N for the Go provisioner")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="ours,ours-nfs,go,floor")
    parser.add_argument(
        "--no-go",
        action="store_true",
        help=f"leave out the Go original (built from {GO_SOURCE_SETTING}, default "
        "../shared/go-original)",
    )
    parser.add_argument(
        "--default-cm-sizes",
        default="100",
        help="N for the extra runs with kube-controller-manager's default limits "
        "(all-Bound-default); empty for none",
    )
    parser.add_argument("--default-cm-rounds", type=int, default=1)
    parser.add_argument("--cm-qps", type=int, default=1000, help="raised controller-manager QPS")
    parser.add_argument(
        "--cm-burst", type=int, default=1000, help="raised controller-manager burst"
    )
    parser.add_argument(
        "--preannotate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="create the claims with the binder's provisioner annotation already set "
        "(limits-raised runs; the default-limits runs never do)",
    )
    parser.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--memory-objects", type=int, default=10000)
    parser.add_argument("--memory-burst", type=int, default=1000)
    parser.add_argument(
        "--scale",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the scale runs (benchmarks/scale.py): foreign objects, restart over own volumes",
    )
    parser.add_argument("--scale-objects", type=int, default=100000, help="foreign objects")
    parser.add_argument("--scale-burst", type=int, default=1000)
    parser.add_argument(
        "--restart-volumes", type=int, default=10000, help="own volumes for the restart run"
    )
    parser.add_argument("--threads", type=int, default=32, help="harness and floor threads")
    parser.add_argument("--log-level", default="warning", help="log level of ours")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--plan", action="store_true", help="print the runs and exit")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds = 1
        args.sizes = "100"
        args.floor_sizes = "100"
        args.nfs_sizes = ""
        args.no_go = True
        args.memory = False
        args.scale = False
    return args


def build_plan(args: argparse.Namespace) -> list[RunSpec]:
    systems = [s for s in args.systems.split(",") if s in SYSTEMS]
    if args.no_go and "go" in systems:
        systems.remove("go")
    sizes = {"ours": parse_sizes(args.sizes), "floor": parse_sizes(args.floor_sizes)}
    sizes["go"] = parse_sizes(args.go_sizes)
    sizes["ours-nfs"] = parse_sizes(args.nfs_sizes)
    all_n = sorted({size.n for s in systems for size in sizes[s]})
    smallest_go = min((size.n for size in sizes["go"]), default=0)

    def times_delete(system: str, n: int, round_number: int) -> bool:
        # Deletion is timed in every round for ours. The floor's is timed in the first round
        # only, and the Go provisioner's at its smallest N only: both are paced by something
        # that does not vary (the PV binder; client-go's 5 QPS), and time is short.
        if system in ("ours", "ours-nfs"):
            return True
        if system == "floor":
            return round_number == 1
        return round_number == 1 and n == smallest_go

    plan = []
    # Alternate systems within a round, so slow drift of the machine hits all alike.
    for round_number in range(1, args.rounds + 1):
        for n in all_n:
            for system in systems:
                if any(s.n == n and s.in_round(round_number) for s in sizes[system]):
                    plan.append(
                        RunSpec(
                            system,
                            n,
                            round_number,
                            "raised",
                            args.cm_qps,
                            args.cm_burst,
                            preannotate=args.preannotate,
                            measure_delete=times_delete(system, n, round_number),
                        )
                    )
    # What a user of a stock control plane sees: the binder annotates every claim itself.
    for round_number in range(1, args.default_cm_rounds + 1):
        for size in parse_sizes(args.default_cm_sizes):
            for system in systems:
                if any(s.n == size.n for s in sizes[system]):
                    plan.append(
                        RunSpec(
                            system,
                            size.n,
                            round_number,
                            "default",
                            None,
                            None,
                            preannotate=False,
                            measure_delete=False,
                        )
                    )
    if args.memory and "ours" in systems:
        plan.append(
            RunSpec(
                "ours",
                args.memory_burst,
                1,
                "raised",
                args.cm_qps,
                args.cm_burst,
                preannotate=args.preannotate,
                measure_delete=False,
                seed_pairs=args.memory_objects,
            )
        )
    return plan


def make_system(name: str, args: argparse.Namespace, go: GoBuild | None) -> System:
    if name == "ours":
        return Ours(log_level=args.log_level)
    if name == "ours-nfs":
        return OursOnNfs(log_level=args.log_level)
    if name == "floor":
        return Floor(threads=args.threads)
    assert go is not None
    return GoOriginal(go)


def _one_line(result: RunResult) -> str:
    parts = [
        f"all PVs {report.format_number(result.all_pvs_s)} s",
        f"all Bound {report.format_number(result.all_bound_s)} s",
    ]
    if result.all_deleted_s is not None:
        parts.append(f"all deleted {report.format_number(result.all_deleted_s)} s")
    if result.cpu_burst_s is not None:
        parts.append(f"CPU {result.cpu_burst_s:.1f} s")
    if result.peak_rss_bytes:
        parts.append(f"RSS {result.peak_rss_bytes / 2**20:.0f} MiB")
    if result.problem_count:
        parts.append(f"{result.problem_count} log problems")
    if result.error:
        parts.append(f"ERROR: {result.error.splitlines()[0]}")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = build_plan(args)
    if not plan:
        print("nothing to run", file=sys.stderr)
        return 2
    if args.plan:
        for index, spec in enumerate(plan, 1):
            print(f"{index:3d}. {spec.describe()}")
        if args.scale:
            print(
                f"then scale: {args.scale_objects} foreign objects + a {args.scale_burst}-claim "
                f"burst (ours, floor); a restart over {args.restart_volumes} volumes of ours"
            )
        return 0
    started = datetime.datetime.now().astimezone()
    host = socket.gethostname()
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{started:%Y-%m-%dT%H%M%S}-{host}"
    json_path = args.out / f"{stem}.json"
    png_path = args.out / f"{stem}.png"
    log_dir = args.out / f"{stem}-logs"

    go = None
    try:
        binaries = ensure_binaries()
    except BuildError as error:
        print(f"[bench] error: {error}", file=sys.stderr)
        return 2
    if any(spec.system == "go" for spec in plan):
        try:
            go = ensure_go_original()
        except BuildError as error:
            print(
                f"[bench] error: {error}\n[bench] or leave the Go original out: "
                "make bench BENCH_ARGS=--no-go (python -m benchmarks --no-go)",
                file=sys.stderr,
            )
            return 2
    if go is not None:
        print(f"[bench] Go original: {go.source.commit} from {go.source.path}", flush=True)
    versions = read_versions()
    document: dict[str, Any] = {
        "schema": 1,
        "started": started.isoformat(timespec="seconds"),
        "finished": None,
        "host": host,
        "cpus": os.cpu_count(),
        "load_before": list(os.getloadavg()),
        "load_after": None,
        "python": platform.python_version(),
        "versions": {
            "nfs_provisioner": metadata.version("nfs-provisioner"),
            "kubernetes": versions.kubernetes,
            "etcd": versions.etcd,
        },
        "go_provisioner": go.describe() if go else None,
        "config": {
            key: (str(value) if isinstance(value, Path) else value)
            for key, value in vars(args).items()
        },
        "ours_log_level": args.log_level,
        "runs": [],
        "summary": [],
        "memory": None,
        "scale": None,
    }
    print(f"[bench] {len(plan)} runs; load average {os.getloadavg()[0]:.2f}", flush=True)
    clock = time.monotonic()
    results: list[RunResult] = []
    with ExitStack() as stack:
        if go is not None:
            stack.enter_context(go_mount_root())
        for index, spec in enumerate(plan, 1):
            print(f"[bench] {index}/{len(plan)} {spec.describe()}", flush=True)
            system = make_system(spec.system, args, go)
            result = run_one(spec, system, binaries=binaries, threads=args.threads, log_dir=log_dir)
            results.append(result)
            print(f"[bench]     {_one_line(result)}", flush=True)
            document["runs"] = [r.to_json() for r in results]
            json_path.write_text(json.dumps(document))
    if args.scale:
        print(f"[bench] scale: {args.scale_objects} foreign objects", flush=True)
        document["scale"] = {
            "foreign": scale.run_foreign(
                args.scale_objects, args.scale_burst, threads=2 * args.threads
            )
        }
        json_path.write_text(json.dumps(document))
        print(f"[bench] scale: restart over {args.restart_volumes} volumes", flush=True)
        document["scale"]["restart"] = scale.run_restart(args.restart_volumes, threads=args.threads)
        json_path.write_text(json.dumps(document))

    runs = document["runs"]
    document["summary"] = report.summarise(runs)
    memory = [r for r in runs if r["seed_pairs"]]
    if memory:
        document["memory"] = {
            key: memory[0][key]
            for key in (
                "n",
                "seed_pairs",
                "seed_s",
                "all_pvs_s",
                "ready_rss_bytes",
                "peak_rss_bytes",
                "complete",
            )
        }
        document["memory"]["imports"] = memory_breakdown.import_breakdown()
    document["finished"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    document["load_after"] = list(os.getloadavg())
    document["elapsed_s"] = time.monotonic() - clock
    json_path.write_text(json.dumps(document))
    plot_problem = report.plot(runs, document["summary"], png_path)

    print()
    print(report.table(document["summary"]))
    print()
    if memory:
        m = document["memory"]
        print(
            f"memory: ours with {m['seed_pairs']} claims + {m['seed_pairs']} PVs of another class, "
            f"then a {m['n']}-claim burst: peak RSS {m['peak_rss_bytes'] / 2**20:.0f} MiB "
            f"(all PVs {report.format_number(m['all_pvs_s'])} s)"
            if m["peak_rss_bytes"]
            else f"memory run failed: {memory[0]['error']}"
        )
        print(memory_breakdown.import_line(document["memory"]))
    if document["scale"]:
        for line in scale.summary_lines(document["scale"]):
            print(line)
    if go is not None:
        print(f"go: the original at {go.source.commit} ({go.source.path})")
    shown = report.shown_columns(document["summary"])
    notes = [
        f"controller-manager limits {args.cm_qps}/{args.cm_burst}",
        f"ours logs at {args.log_level}",
    ]
    if any(row["vs_go_approx"] for row in document["summary"] if row.get("vs_go") is not None):
        notes.append("'~' = ratio to the nearest N the Go provisioner ran")
    if "Bound s (cm 20qps)" in shown:
        notes.append("'Bound s (cm 20qps)': the controller-manager at its own 20 QPS / 30 burst")
    print("; ".join(notes))
    print(
        f"load average before {document['load_before'][0]:.2f}, after "
        f"{document['load_after'][0]:.2f}; {document['elapsed_s'] / 60:.1f} min"
    )
    print(f"results: {json_path}")
    print(f"plot:    {plot_problem or png_path}")
    return 0 if all(r.complete for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
