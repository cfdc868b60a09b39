"""One measured run: a fresh control plane, a fresh system under test, one burst of N claims.

A new control plane per run costs about 4 s and buys independence: no run inherits the
objects, events or watch-cache history of the one before, and a run that fails cannot
leave claims behind that the next system would see.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devcluster import Binaries, ControlPlane, start_control_plane

from benchmarks.systems import Floor, System, SystemUnderTestError, Target, Usage
from benchmarks.workload import (
    ClaimTimes,
    Recorder,
    create_claims,
    create_namespace,
    create_storage_class,
    delete_claims,
    seed_bound_pairs,
    wait_for_binder,
)
from nfs_provisioner.kube import ApiClient, ApiError, connect

NAMESPACE = "bench"
SEED_NAMESPACE = "seed"
NFS_SERVER = "nfs.bench.test"
NFS_PATH = "/exports/bench"
# No progress for this long ends a phase: the run is recorded as incomplete.
STALL_TIMEOUT = 60.0
# Where a claim's time goes: (name, from, to), over the harness's timestamps ("create_call",
# "create_acked", "pv_created") and the system's own stage times ("seen", "dequeued", "made",
# "saved"; see System.stage_times). Every one is time.monotonic() of one machine.
STAGE_SPANS = (
    ("create_to_acked", "create_call", "create_acked"),
    ("create_to_seen", "create_call", "seen"),
    ("seen_to_dequeued", "seen", "dequeued"),
    ("dequeued_to_made", "dequeued", "made"),
    ("made_to_saved", "made", "saved"),
    ("dequeued_to_saved", "dequeued", "saved"),
    ("saved_to_pv_seen", "saved", "pv_created"),
)
SYSTEM_STAGES = ("seen", "dequeued", "made", "saved")


@dataclass(frozen=True)
class RunSpec:
    system: str
    n: int
    round: int
    cm_limits: str  # "raised" or "default"
    cm_qps: int | None
    cm_burst: int | None
    preannotate: bool = True
    measure_delete: bool = True
    seed_pairs: int = 0

    def describe(self) -> str:
        extra = "" if self.measure_delete else ", no delete"
        extra += ", claims pre-annotated" if self.preannotate else ""
        extra += f", {self.seed_pairs} seeded pairs" if self.seed_pairs else ""
        return (
            f"{self.system} N={self.n} round {self.round} "
            f"(controller-manager limits {self.cm_limits}{extra})"
        )


@dataclass
class RunResult:
    spec: RunSpec
    label: str
    complete: bool = False
    error: str = ""
    create_calls_s: float | None = None
    all_pvs_s: float | None = None
    all_bound_s: float | None = None
    all_deleted_s: float | None = None
    floor_all_acked_s: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    latency: dict[str, dict[str, float]] = field(default_factory=dict)
    cpu_burst_s: float | None = None
    cpu_delete_s: float | None = None
    cpu_total_s: float | None = None
    peak_rss_bytes: int | None = None
    ready_rss_bytes: int | None = None
    seed_s: float | None = None
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    phases: dict[str, float] = field(default_factory=dict)
    claims: list[list[float | None]] = field(default_factory=list)
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    claim_stages: list[list[float | None]] = field(default_factory=list)

    @property
    def throughput(self) -> float | None:
        return self.spec.n / self.all_pvs_s if self.all_pvs_s else None

    def to_json(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "system": spec.system,
            "label": self.label,
            "n": spec.n,
            "round": spec.round,
            "cm_limits": spec.cm_limits,
            "cm_qps": spec.cm_qps,
            "cm_burst": spec.cm_burst,
            "seed_pairs": spec.seed_pairs,
            "preannotated": spec.preannotate,
            "complete": self.complete,
            "error": self.error,
            "create_calls_s": _rounded(self.create_calls_s),
            "all_pvs_s": _rounded(self.all_pvs_s),
            "all_bound_s": _rounded(self.all_bound_s),
            "all_deleted_s": _rounded(self.all_deleted_s),
            "floor_all_acked_s": _rounded(self.floor_all_acked_s),
            "throughput_per_s": _rounded(self.throughput),
            "counts": self.counts,
            "latency_s": self.latency,
            "cpu_burst_s": _rounded(self.cpu_burst_s),
            "cpu_delete_s": _rounded(self.cpu_delete_s),
            "cpu_total_s": _rounded(self.cpu_total_s),
            "peak_rss_bytes": self.peak_rss_bytes,
            "ready_rss_bytes": self.ready_rss_bytes,
            "seed_s": _rounded(self.seed_s),
            "problem_count": self.problem_count,
            "phases_s": self.phases,
            "problems": self.problems,
            "claims": self.claims,
            "stages_s": self.stages,
            "claim_stages": self.claim_stages,
        }


def _rounded(value: float | None) -> float | None:
    # Milliseconds are the harness's resolution; more digits are noise in the JSON.
    return None if value is None else round(value, 4)


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {
        "p50": round(at(0.50), 4),
        "p90": round(at(0.90), 4),
        "p99": round(at(0.99), 4),
        "max": round(ordered[-1], 4),
        "mean": round(statistics.fmean(ordered), 4),
    }


def _span(times: list[ClaimTimes], field_name: str, origin: float) -> float | None:
    values = [getattr(t, field_name) for t in times]
    if not values or any(v is None for v in values):
        return None
    return float(max(values)) - origin


def _summarise(result: RunResult, recorder: Recorder, origin: float) -> None:
    times = list(recorder.claims.values())
    result.counts = dict(recorder.counts)
    result.all_pvs_s = _span(times, "pv_created", origin)
    result.all_bound_s = _span(times, "bound", origin)

    def lat(end: str, start: str = "create_call") -> list[float]:
        return [
            getattr(t, end) - getattr(t, start)
            for t in times
            if getattr(t, end) is not None and getattr(t, start) is not None
        ]

    result.latency = {
        "claim_to_pv": percentiles(lat("pv_created")),
        "claim_to_bound": percentiles(lat("bound")),
        "claim_to_annotated": percentiles(lat("annotated")),
        "annotated_to_pv": percentiles(lat("pv_created", "annotated")),
        "delete_to_pv_gone": percentiles(lat("pv_deleted", "delete_call")),
        "delete_to_released": percentiles(lat("pv_released", "delete_call")),
        "released_to_pv_gone": percentiles(lat("pv_deleted", "pv_released")),
    }

    def rel(value: float | None) -> float | None:
        return None if value is None else round(value - origin, 4)

    result.claims = [
        [
            rel(t.create_call),
            rel(t.annotated),
            rel(t.pv_created),
            rel(t.bound),
            rel(t.delete_call),
            rel(t.pv_deleted),
        ]
        for t in times
    ]


def _add_stages(
    result: RunResult,
    recorder: Recorder,
    stage_times: dict[str, list[float | None]],
    origin: float,
) -> None:
    """Per-stage percentiles, and per claim [create acked, seen, dequeued, made, saved] in
    seconds since the first create call (in the order of ``claims``)."""
    if not stage_times:
        return
    spans: dict[str, list[float]] = {name: [] for name, _, _ in STAGE_SPANS}
    rows = []
    for name, times in recorder.claims.items():
        own = stage_times.get(f"{recorder.namespace}/{name}") or [None] * len(SYSTEM_STAGES)
        moments: dict[str, float | None] = {
            "create_call": times.create_call,
            "create_acked": times.create_acked,
            "pv_created": times.pv_created,
            **dict(zip(SYSTEM_STAGES, own, strict=True)),
        }
        for span, start, end in STAGE_SPANS:
            begin, finish = moments[start], moments[end]
            if begin is not None and finish is not None:
                spans[span].append(finish - begin)
        rows.append([_since(moments[key], origin) for key in ("create_acked", *SYSTEM_STAGES)])
    result.stages = {name: percentiles(values) for name, values in spans.items() if values}
    result.claim_stages = rows


def _since(value: float | None, origin: float) -> float | None:
    return None if value is None else round(value - origin, 4)


def local_target(plane: ControlPlane, workdir: Path, provisioner_name: str) -> Target:
    """A system's run on ``plane`` with its export a plain directory in ``workdir``."""
    export = workdir / "export"
    export.mkdir(exist_ok=True)
    return Target(
        kubeconfig=plane.kubeconfig,
        provisioner_name=provisioner_name,
        nfs_server=NFS_SERVER,
        nfs_path=NFS_PATH,
        export=export,
        workdir=workdir,
    )


def _admin(kubeconfig: Path, threads: int) -> ApiClient:
    return connect(
        str(kubeconfig),
        qps=0,
        burst=1,
        pool_size=threads + 8,
        user_agent="nfs-provisioner-benchmark",
    )


def _seed(api: ApiClient, count: int, threads: int) -> float:
    """Create ``count`` pre-bound claim/PV pairs of another class: a big cluster's objects.

    The run does not wait for the binder to mark them Bound: the provisioner caches them
    either way, and peak RSS is what this run is for.
    """
    started = time.monotonic()
    create_namespace(api, SEED_NAMESPACE)
    create_storage_class(api, "bench-seed", "bench.local/seed")
    seed_bound_pairs(api, SEED_NAMESPACE, "bench-seed", count, threads=threads)
    return time.monotonic() - started


def run_one(
    spec: RunSpec, system: System, *, binaries: Binaries, threads: int, log_dir: Path
) -> RunResult:
    result = RunResult(spec=spec, label=system.label)
    deadline_slack = 120 + 2.0 * spec.n
    started = time.monotonic()

    def phase(name: str) -> None:
        # Where a run's wall time goes besides the burst: start-up and tear-down.
        result.phases[name] = round(time.monotonic() - started, 3)

    with (
        tempfile.TemporaryDirectory(prefix="nfs-provisioner-bench-") as scratch,
        start_control_plane(
            binaries=binaries,
            controller_manager_qps=spec.cm_qps,
            controller_manager_burst=spec.cm_burst,
        ) as plane,
    ):
        phase("control_plane_started")
        workdir = Path(scratch)
        api = _admin(plane.kubeconfig, threads)
        provisioner_name = f"bench.local/{spec.system}"
        storage_class = f"bench-{spec.system}"
        create_namespace(api, NAMESPACE)
        create_storage_class(api, storage_class, provisioner_name, {"archiveOnDelete": "true"})
        wait_for_binder(api, NAMESPACE)
        phase("binder_ready")
        if spec.seed_pairs:
            result.seed_s = _seed(api, spec.seed_pairs, threads)
            phase("seeded")
        target = local_target(plane, workdir, provisioner_name)
        recorder = Recorder(api, NAMESPACE, storage_class)
        origin = time.monotonic()
        try:
            system.start(target)
            recorder.start()
            before = system.usage()
            result.ready_rss_bytes = before.rss_bytes
            phase("system_ready")
            names = [f"claim-{i:05d}" for i in range(spec.n)]
            origin = time.monotonic()
            create_claims(
                api,
                recorder,
                names,
                threads=threads,
                provisioner=provisioner_name if spec.preannotate else None,
            )
            result.create_calls_s = time.monotonic() - origin
            deadline = origin + deadline_slack
            complete = recorder.wait_for(
                "pv_created", spec.n, stall_timeout=STALL_TIMEOUT, deadline=deadline
            )
            # In the memory run the binder is still busy with the seeded pairs, and Bound
            # would time that instead.
            if complete and not spec.seed_pairs:
                complete = recorder.wait_for(
                    "bound", spec.n, stall_timeout=STALL_TIMEOUT, deadline=deadline
                )
            phase("burst_done")
            after_burst = system.usage()
            result.cpu_burst_s = after_burst.cpu_seconds - before.cpu_seconds
            final: Usage = after_burst
            if complete and spec.measure_delete:
                delete_started = time.monotonic()
                delete_claims(api, recorder, names, threads=threads)
                complete = recorder.wait_for(
                    "pv_deleted",
                    spec.n,
                    stall_timeout=STALL_TIMEOUT,
                    deadline=delete_started + deadline_slack,
                )
                phase("delete_done")
                final = system.usage()
                result.cpu_delete_s = final.cpu_seconds - after_burst.cpu_seconds
                deleted = [t.pv_deleted for t in recorder.claims.values()]
                if complete and all(d is not None for d in deleted):
                    result.all_deleted_s = max(d for d in deleted if d is not None) - (
                        delete_started
                    )
            result.cpu_total_s = final.cpu_seconds
            result.peak_rss_bytes = final.peak_rss_bytes
            result.complete = complete
            _summarise(result, recorder, origin)
            if not complete:
                result.error = f"incomplete: {result.counts} of {spec.n}"
        except (SystemUnderTestError, ApiError) as error:
            # One failed run is a result too; the next ones still run.
            result.error = str(error)
        finally:
            recorder.stop()
            system.stop()
            phase("system_stopped")
            problems = system.problems()
            result.problem_count = len(problems)
            result.problems = problems[:20]
            if problems or not result.complete:
                _keep_log(system, log_dir, spec)
            system.cleanup(target)
        phase("cleaned_up")
        if result.claims:
            _add_stages(result, recorder, system.stage_times(), origin)
        if isinstance(system, Floor):
            acks = system.report().get("pv_acks", {})
            if len(acks) >= spec.n and result.claims:
                result.floor_all_acked_s = max(acks.values()) - origin
    phase("control_plane_stopped")
    return result


def _keep_log(system: System, log_dir: Path, spec: RunSpec) -> None:
    """Keep the log of an incomplete or noisy run next to the results, for the report."""
    text = system.log_text()
    if not text:
        return
    log_dir.mkdir(parents=True, exist_ok=True)
    name = f"{spec.system}-n{spec.n}-r{spec.round}-{spec.cm_limits}.log"
    # Only the tail: a Go log of a 500-claim burst is megabytes of per-claim info lines.
    (log_dir / name).write_text("\n".join(text.splitlines()[-2000:]) + "\n")
