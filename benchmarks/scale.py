"""``python -m benchmarks.scale``: ours in a big cluster, and ours restarted over many volumes.

**foreign**: a control plane holding ``--objects`` foreign objects (half claims, half PVs,
pre-bound pairs of another StorageClass and provisioner). Ours starts (time to ready, CPU,
RSS once ready) and serves a burst of ``--burst`` pre-annotated claims (time to all PVs,
peak RSS); the floor (``benchmarks/floor.py``) does the same in the same cluster, for the
comparison; each ``--rounds`` times, alternating, with a class and namespace of its own per
run. kube-controller-manager is stopped before seeding: its PV binder would otherwise
spend the run binding the foreign pairs (two writes each), and pre-annotated claims do not
need it until they are bound, which this run does not time.

**restart**: ours provisions ``--volumes`` claims (controller-manager limits raised, so they
end Bound), is stopped; one more claim is created while it is down; it is started again over
the same export. Time to ready, CPU until it is idle again, and every write the API server
received from it after the restart, counted from the API server's audit log (a policy that
logs only create, update, patch and delete, at Metadata level). The late claim must cost its
PV and two events (proof that the count sees the restarted process); the volumes already
right must cost nothing.

Seeding uses many concurrent creates from one process (``--threads``): the API server, not
the client, is the limit on 2 cores (three client processes were no faster).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from devcluster import ControlPlane, ensure_binaries, start_control_plane

from benchmarks.memory import sample
from benchmarks.runner import local_target
from benchmarks.systems import Floor, Ours, System, Target
from benchmarks.workload import (
    ANN_BETA_PROVISIONER,
    ANN_PROVISIONER,
    Recorder,
    claim_body,
    create_claims,
    create_namespace,
    create_storage_class,
    seed_bound_pairs,
    wait_for_binder,
)
from nfs_provisioner.kube import ApiClient, connect

SEED_NAMESPACE = "seed"
STALL_TIMEOUT = 60.0
# As in the burst runs (--threads): the floor's pool of concurrent writes.
FLOOR_THREADS = 32
# Where ours' writes are told apart from the harness's (both use the admin token).
OURS_USER_AGENT = "nfs-provisioner/"
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "Metadata", "verbs": ["create", "update", "patch", "delete", "deletecollection"]},
        {"level": "None"},
    ],
}


def _admin(plane: ControlPlane, threads: int) -> ApiClient:
    return connect(
        str(plane.kubeconfig),
        qps=0,
        burst=1,
        pool_size=threads + 8,
        user_agent="nfs-provisioner-benchmark",
    )


def _pid(system: System) -> int:
    assert system.process is not None
    return system.process.pid


def _burst(
    api: ApiClient, system: System, target: Target, namespace: str, storage_class: str, n: int
) -> dict[str, Any]:
    """Start ``system``, then time a burst of ``n`` pre-annotated claims to all PVs."""
    create_namespace(api, namespace)
    create_storage_class(api, storage_class, target.provisioner_name)
    result: dict[str, Any] = {"system": system.name, "n": n}
    recorder = Recorder(api, namespace, storage_class)
    try:
        started = time.monotonic()
        system.start(target)
        result["ready_s"] = round(time.monotonic() - started, 2)
        pid = _pid(system)
        result["cpu_ready_s"] = round(system.usage().cpu_seconds, 2)
        result["ready"] = asdict(sample(pid))
        recorder.start()
        before = system.usage()
        names = [f"claim-{i:05d}" for i in range(n)]
        origin = time.monotonic()
        create_claims(api, recorder, names, threads=32, provisioner=target.provisioner_name)
        complete = recorder.wait_for(
            "pv_created", n, stall_timeout=STALL_TIMEOUT, deadline=origin + 120 + 2.0 * n
        )
        pv_times = [t.pv_created for t in recorder.claims.values() if t.pv_created]
        result["complete"] = complete
        result["all_pvs_s"] = round(max(pv_times) - origin, 3) if complete else None
        after = system.usage()
        result["cpu_burst_s"] = round(after.cpu_seconds - before.cpu_seconds, 2)
        result["peak_rss_bytes"] = after.peak_rss_bytes
    finally:
        recorder.stop()
        system.stop()
        result["problems"] = system.problems()[:10]
    return result


def run_foreign(
    objects: int,
    burst: int,
    *,
    threads: int,
    rounds: int = 2,
    apiserver_args: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Ours and the floor, each started fresh and given a burst, ``rounds`` times
    alternating, in a cluster of ``objects`` foreign ones. Medians; the peak is the highest."""
    pairs = objects // 2
    result: dict[str, Any] = {"objects": 2 * pairs, "burst": burst}
    result["apiserver_args"] = list(apiserver_args)
    with (
        tempfile.TemporaryDirectory(prefix="nfs-provisioner-scale-") as scratch,
        start_control_plane(binaries=ensure_binaries(), apiserver_args=apiserver_args) as plane,
    ):
        plane.stop_process("kube-controller-manager")
        api = _admin(plane, threads)
        started = time.monotonic()
        create_namespace(api, SEED_NAMESPACE)
        create_storage_class(api, "bench-seed", "bench.local/seed")
        seed_bound_pairs(api, SEED_NAMESPACE, "bench-seed", pairs, threads=threads)
        seed_s = time.monotonic() - started
        result["seed_s"] = round(seed_s, 1)
        result["seed_objects_per_s"] = round(2 * pairs / seed_s)
        workdir = Path(scratch)
        runs: dict[str, list[dict[str, Any]]] = {"ours": [], "floor": []}
        # Alternating, so that what the cluster went through hits both alike.
        for round_number in range(1, rounds + 1):
            order = ("ours", "floor") if round_number % 2 else ("floor", "ours")
            for name in order:
                label = f"{name}-{round_number}"
                directory = workdir / label
                directory.mkdir()
                system: System = Ours() if name == "ours" else Floor(threads=FLOOR_THREADS)
                runs[name].append(
                    _burst(
                        api,
                        system,
                        local_target(plane, directory, f"bench.local/{label}"),
                        f"bench-{label}",
                        f"bench-{label}",
                        burst,
                    )
                )
    result.update(runs)
    for name, measured in runs.items():
        for key in ("ready_s", "cpu_ready_s", "all_pvs_s", "cpu_burst_s"):
            values = [run[key] for run in measured if run.get(key) is not None]
            result[f"{name}_{key}"] = round(statistics.median(values), 3) if values else None
        peaks = [run.get("peak_rss_bytes") or 0 for run in measured]
        result[f"{name}_peak_rss_bytes"] = max(peaks)
        result[f"{name}_ready_rss_bytes"] = max(run["ready"]["rss_bytes"] for run in measured)
    ours, floor = result["ours_all_pvs_s"], result["floor_all_pvs_s"]
    result["vs_floor"] = round(ours / floor, 2) if ours and floor else None
    return result


@contextmanager
def _audit_log(directory: Path) -> Iterator[tuple[Path, tuple[str, ...]]]:
    policy = directory / "audit-policy.json"
    policy.write_text(json.dumps(AUDIT_POLICY))
    log = directory / "audit.log"
    yield (
        log,
        (
            f"--audit-policy-file={policy}",
            f"--audit-log-path={log}",
            "--audit-log-format=json",
            "--audit-log-mode=blocking",
            "--audit-log-maxsize=0",
        ),
    )


def count_writes(
    log: Path,
    offset: int,
    user_agent: str = OURS_USER_AGENT,
    concerns: tuple[str, ...] | None = None,
) -> dict[str, int]:
    """Writes in the audit log after byte ``offset`` from clients whose user agent starts
    with ``user_agent``: {"<verb> <resource>[/<subresource>]": count}. With ``concerns``,
    only writes to objects whose name starts with one of them."""
    counts: Counter[str] = Counter()
    with log.open("rb") as handle:
        handle.seek(offset)
        for line in handle:
            entry = json.loads(line)
            if not str(entry.get("userAgent", "")).startswith(user_agent):
                continue
            reference = entry.get("objectRef") or {}
            if concerns is not None and not str(reference.get("name", "")).startswith(concerns):
                continue
            resource = str(reference.get("resource", "?"))
            if reference.get("subresource"):
                resource += "/" + str(reference["subresource"])
            counts[f"{entry.get('verb')} {resource}"] += 1
    return dict(sorted(counts.items()))


def _wait_idle(system: System, *, quiet_s: float = 3.0, limit_s: float = 120.0) -> float:
    """Until the process used under 2% of a core for ``quiet_s``; returns the time waited."""
    started = time.monotonic()
    last = system.usage().cpu_seconds
    quiet_since = time.monotonic()
    while time.monotonic() - started < limit_s:
        time.sleep(0.5)
        now = system.usage().cpu_seconds
        if now - last > 0.01:
            quiet_since = time.monotonic()
        last = now
        if time.monotonic() - quiet_since >= quiet_s:
            break
    return time.monotonic() - started


def run_restart(volumes: int, *, threads: int) -> dict[str, Any]:
    """Ours provisions ``volumes`` claims, then is restarted; what does the restart cost?"""
    result: dict[str, Any] = {"volumes": volumes}
    with (
        tempfile.TemporaryDirectory(prefix="nfs-provisioner-restart-") as scratch,
        _audit_log(Path(scratch)) as (log, audit_args),
        start_control_plane(
            binaries=ensure_binaries(),
            controller_manager_qps=1000,
            controller_manager_burst=1000,
            apiserver_args=audit_args,
        ) as plane,
    ):
        api = _admin(plane, threads)
        workdir = Path(scratch) / "ours"
        workdir.mkdir()
        target = local_target(plane, workdir, "bench.local/ours")
        create_namespace(api, "bench")
        create_storage_class(api, "bench-ours", target.provisioner_name)
        wait_for_binder(api, "bench")
        ours = Ours()
        recorder = Recorder(api, "bench", "bench-ours")
        names = [f"claim-{i:05d}" for i in range(volumes)]
        try:
            ours.start(target)
            recorder.start()
            started = time.monotonic()
            create_claims(api, recorder, names, threads=threads, provisioner="bench.local/ours")
            deadline = started + 300 + 0.1 * volumes
            bound = recorder.wait_for(
                "pv_created", volumes, stall_timeout=STALL_TIMEOUT, deadline=deadline
            ) and recorder.wait_for(
                "bound", volumes, stall_timeout=STALL_TIMEOUT, deadline=deadline
            )
            result["provision_s"] = round(time.monotonic() - started, 1)
            result["all_bound"] = bound
            _wait_idle(ours)
        finally:
            recorder.stop()
            ours.stop()
        result["first_run_writes"] = count_writes(log, 0)
        offset = log.stat().st_size
        # One claim arrives while ours is down: the restart must provision it, and the audit
        # log must show exactly that (proof that it sees the restarted process's writes).
        late = api.create(
            "/api/v1/namespaces/bench/persistentvolumeclaims",
            {
                **claim_body("claim-late", "bench-ours"),
                "metadata": {
                    "name": "claim-late",
                    "annotations": {
                        ANN_PROVISIONER: target.provisioner_name,
                        ANN_BETA_PROVISIONER: target.provisioner_name,
                    },
                },
            },
        )
        late_names = ("claim-late.", f"pvc-{late['metadata']['uid']}")
        restarted = Ours()
        # The same export; a log of its own, so that its problems are its own.
        second = workdir.parent / "restarted"
        second.mkdir()
        again = replace(target, workdir=second)
        try:
            started = time.monotonic()
            restarted.start(again)
            result["ready_s"] = round(time.monotonic() - started, 2)
            result["cpu_ready_s"] = round(restarted.usage().cpu_seconds, 2)
            result["ready"] = asdict(sample(_pid(restarted)))
            result["settle_s"] = round(_wait_idle(restarted), 1)
            usage = restarted.usage()
            result["cpu_settled_s"] = round(usage.cpu_seconds, 2)
            result["peak_rss_bytes"] = usage.peak_rss_bytes
        finally:
            restarted.stop()
            result["problems"] = restarted.problems()[:10]
        result["restart_writes"] = count_writes(log, offset)
        result["restart_writes_for_late_claim"] = count_writes(log, offset, concerns=late_names)
    return result


def _mib(value: int | None) -> str:
    return "-" if not value else f"{value / 2**20:.0f} MiB"


def summary_lines(result: dict[str, Any]) -> list[str]:
    """The scale block printed under the benchmark's table."""
    lines = []
    foreign = result.get("foreign")
    if foreign:
        lines.append(
            f"scale: {foreign['objects']} foreign objects (seeded in {foreign['seed_s']} s, "
            f"{foreign['seed_objects_per_s']}/s): ours ready in {foreign['ours_ready_s']} s "
            f"(CPU {foreign['ours_cpu_ready_s']} s, RSS "
            f"{_mib(foreign['ours_ready_rss_bytes'])}), burst of {foreign['burst']}: all PVs "
            f"{foreign['ours_all_pvs_s']} s vs floor {foreign['floor_all_pvs_s']} s "
            f"(x{foreign['vs_floor']}), peak RSS {_mib(foreign['ours_peak_rss_bytes'])} "
            f"(medians of {len(foreign['ours'])} alternating runs; peak: the highest)"
        )
    restart = result.get("restart")
    if restart:
        writes = restart["restart_writes"]
        lines.append(
            f"restart over {restart['volumes']} Bound volumes of ours: ready in "
            f"{restart.get('ready_s')} s (CPU {restart.get('cpu_ready_s')} s; "
            f"{restart.get('cpu_settled_s')} s once idle after {restart.get('settle_s')} s), "
            f"peak RSS {_mib(restart.get('peak_rss_bytes'))}; API writes after the restart "
            f"(audit log): {sum(writes.values())}, of which "
            f"{sum(restart['restart_writes_for_late_claim'].values())} for the one claim "
            f"created while it was down ("
            + ", ".join(f"{k} {v}" for k, v in writes.items())
            + f"); first run: {sum(restart['first_run_writes'].values())} writes"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__)
    parser.add_argument("--objects", type=int, default=100000, help="foreign claims + PVs")
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--volumes", type=int, default=10000, help="ours, for the restart")
    parser.add_argument("--threads", type=int, default=64, help="seeding and burst threads")
    parser.add_argument("--rounds", type=int, default=2, help="foreign: ours/floor runs each")
    parser.add_argument("--only", choices=("foreign", "restart"), help="one of the two runs")
    parser.add_argument(
        "--apiserver-arg",
        action="append",
        default=[],
        help="extra kube-apiserver flag for the foreign run, e.g. "
        "--feature-gates=WatchList=false to compare with paged lists",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {}
    if args.only != "restart":
        result["foreign"] = run_foreign(
            args.objects,
            args.burst,
            threads=args.threads,
            rounds=args.rounds,
            apiserver_args=tuple(args.apiserver_arg),
        )
    if args.only != "foreign":
        result["restart"] = run_restart(args.volumes, threads=args.threads)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    for line in summary_lines(result):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
