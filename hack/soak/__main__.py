"""``python hack/soak`` (or ``python -m soak``): one seeded chaos soak; see ``soak``."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from nfs_provisioner.kube import ApiError
from soak.invariants import Finding
from soak.report import replay_command, write_report
from soak.run import Soak
from soak.schedule import Schedule, build_schedule, parse_duration
from soak.world import SoakWorld, soak_world

DEFAULT_SEED = 147
DEFAULT_DURATION = "3m"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="soak", description="A seeded chaos soak of the provisioner; needs root."
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--duration", default=DEFAULT_DURATION, help="e.g. 180, 180s, 3m, 30m (default 3m)"
    )
    parser.add_argument("--results", type=Path, default=Path(".soak-results"))
    parser.add_argument("--print-schedule", action="store_true", help="print the schedule and exit")
    args = parser.parse_args(argv)
    try:
        duration = parse_duration(args.duration)
    except ValueError as error:
        parser.error(str(error))
    schedule = build_schedule(args.seed, duration)
    if args.print_schedule:
        _print_schedule(schedule, until=duration)
        return 0
    print(
        f"[soak] seed {schedule.seed}, {duration:g}s: {len(schedule.operations)} operations, "
        f"{len(schedule.faults)} faults (schedule {schedule.fingerprint()})",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="nfs-provisioner-soak-") as workdir:
        with soak_world(Path(workdir)) as world:
            soak = Soak(world, schedule)
            soak.run()
            if soak.violations or soak.errors:
                _keep_logs(world, Path(workdir), args.results)
        json_path, png_path = write_report(soak, args.results)
    print(f"[soak] report: {json_path}, plot: {png_path}", flush=True)
    print(
        f"[soak] {soak.lifecycles()} claim lifecycles, {len(soak.faults)} faults, "
        f"{len(soak.violations)} violations, converged after the end in "
        f"{soak.final_convergence if soak.final_convergence is not None else '-'}s",
        flush=True,
    )
    if soak.violations or soak.errors:
        _print_failure(soak, soak.violations)
        return 1
    return 0


def _keep_logs(world: SoakWorld, workdir: Path, results: Path) -> None:
    """The replicas' and the control plane's logs, and the API's claims and PVs, for a look."""
    target = results / "last-failure-logs"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for log in [*(workdir / "logs").glob("*.log"), *world.plane.log_dir.glob("*.log")]:
        shutil.copyfile(log, target / log.name)
    with contextlib.suppress(ApiError, OSError):
        api = world.cluster.api
        state = {
            "persistentvolumes": api.get("/api/v1/persistentvolumes"),
            "persistentvolumeclaims": api.get("/api/v1/persistentvolumeclaims"),
        }
        (target / "api.json").write_text(json.dumps(state, indent=1))


def _print_failure(soak: Soak, violations: list[Finding]) -> None:
    offset = max((r.started_at for r in soak.faults), default=0.0)
    print("[soak] FAILED", file=sys.stderr)
    for violation in violations:
        print(f"[soak] violation {violation.kind}: {violation.message}", file=sys.stderr)
    for error in soak.errors:
        print(f"[soak] error: {error}", file=sys.stderr)
    print(f"[soak] seed {soak.schedule.seed}; the schedule so far:", file=sys.stderr)
    _print_schedule(soak.schedule, until=offset, file=sys.stderr)
    print(
        f"[soak] replay: {replay_command(soak.schedule.seed, soak.schedule.duration)}",
        file=sys.stderr,
    )


def _print_schedule(schedule: Schedule, *, until: float, file: TextIO | None = None) -> None:
    out = file or sys.stdout
    kinds: dict[str, int] = {}
    for operation in schedule.operations:
        if operation.at <= until:
            kinds[operation.kind] = kinds.get(operation.kind, 0) + 1
    print(f"  operations up to {until:g}s: {kinds}", file=out)
    for fault in schedule.faults_until(until):
        extra = f" {fault.target}" if fault.target else ""
        extra += f" {fault.delay_ms}ms" if fault.delay_ms else ""
        print(f"  {fault.at:9.3f}s {fault.kind}{extra} for {fault.hold:g}s", file=out)


if __name__ == "__main__":
    sys.exit(main())
