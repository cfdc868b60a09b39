"""The soak's report: a JSON file of figures and a plot of claims pending with the faults."""

from __future__ import annotations

import json
import socket
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from soak.invariants import CONVERGENCE_BOUND
from soak.run import Soak


def replay_command(seed: int, duration: float) -> str:
    return f"make soak SOAK_SEED={seed} SOAK_DURATION={duration:g}s"


def summary(soak: Soak) -> dict[str, Any]:
    schedule = soak.schedule
    convergence = [r.converged_after for r in soak.faults if r.converged_after is not None]
    return {
        "seed": schedule.seed,
        "duration_s": schedule.duration,
        "schedule_fingerprint": schedule.fingerprint(),
        "replay": replay_command(schedule.seed, schedule.duration),
        "operations": dict(sorted(soak.operations.items())),
        "claims_created": len(soak.records),
        "claim_lifecycles": soak.lifecycles(),
        "faults_injected": len(soak.faults),
        "faults_by_kind": dict(sorted(Counter(r.fault.kind for r in soak.faults).items())),
        "convergence_bound_s": CONVERGENCE_BOUND,
        "convergence_after_fault_s": {
            "max": max(convergence, default=None),
            "mean": round(sum(convergence) / len(convergence), 2) if convergence else None,
        },
        "final_convergence_s": soak.final_convergence,
        "faults": [
            {
                **asdict(r.fault),
                "hit": r.hit,
                "started_at": round(r.started_at, 2),
                "healed_at": None if r.healed_at is None else round(r.healed_at, 2),
                "converged_after_s": r.converged_after,
                "error": r.error,
            }
            for r in soak.faults
        ],
        "replica_restarts": [r.restarts for r in soak.world.replicas],
        "snapshots_checked": soak.snapshots,
        "archives_without_marker": soak.archives_without_marker,
        # What the lease-term check read from the replicas' logs: it is not vacuous.
        "log_records_checked": dict(sorted(Counter(r.event for r in soak.log_records).items())),
        "violations": [asdict(v) for v in soak.violations],
        "errors": soak.errors,
        "pending_claims": soak.pending,
    }


def write_report(soak: Soak, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{socket.gethostname()}-seed{soak.schedule.seed}"
    data = summary(soak)
    json_path = directory / f"{stem}.json"
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    png_path = directory / f"{stem}.png"
    _plot(data, png_path)
    return json_path, png_path


def _plot(data: dict[str, Any], path: Path) -> None:
    # The `bench` extra's dependency, imported on use: `make soak` installs it.
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib.patches import Rectangle  # noqa: PLC0415

    figure, axes = plt.subplots(figsize=(14, 5))
    times = [t for t, _ in data["pending_claims"]]
    counts = [n for _, n in data["pending_claims"]]
    axes.plot(times, counts, color="black", linewidth=0.8, label="claims Pending")
    kinds = sorted(data["faults_by_kind"])
    colours = plt.get_cmap("tab20")
    for fault in data["faults"]:
        colour = colours(kinds.index(fault["kind"]) % 20)
        end = fault["healed_at"] if fault["healed_at"] is not None else fault["started_at"]
        if end - fault["started_at"] < 0.2:
            axes.axvline(fault["started_at"], color=colour, linewidth=1.0)
        else:
            axes.axvspan(fault["started_at"], end, color=colour, alpha=0.35, linewidth=0)
    handles = [Rectangle((0, 0), 1, 1, color=colours(i % 20), alpha=0.5) for i in range(len(kinds))]
    axes.legend(
        [axes.lines[0], *handles],
        ["claims Pending", *kinds],
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        fontsize=8,
    )
    axes.set_xlabel("seconds since the start")
    axes.set_ylabel("claims Pending")
    axes.set_title(
        f"soak seed {data['seed']}: {data['claim_lifecycles']} claim lifecycles, "
        f"{data['faults_injected']} faults, {len(data['violations'])} violations"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
