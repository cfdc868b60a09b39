"""One soak run: the workload, the writer, the faults and the checker, each in its thread."""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from devcluster.harness import JsonObject

from nfs_provisioner.kube import ApiError
from nfs_provisioner.nfs.archives import REGISTRY
from nfs_provisioner.nfs.patterns import ARCHIVE_PREFIX
from nfs_provisioner.nfs.retention import decode_marker
from soak.invariants import (
    ACTIONS,
    BECAME_LEADER,
    CONVERGENCE_BOUND,
    ApiView,
    ClaimRecord,
    ClaimView,
    ExportView,
    Finding,
    LogRecord,
    Monitor,
    VolumeView,
    acts_outside_own_term,
    check,
    unregistered_archives,
    unsettled,
)
from soak.schedule import CLASSES, LATE_CLASS, NAMESPACES, PATTERN_CLASS, Fault, Operation, Schedule
from soak.world import PROVISIONER, SoakWorld

SELECTED_NODE = "volume.kubernetes.io/selected-node"
# An API call of the workload that meets an outage is retried this long, then counted failed.
OPERATION_PATIENCE = 30.0
CHECK_INTERVAL = 1.0
PROGRESS_EVERY = 30.0


def content_for(uid: str) -> bytes:
    """What the simulated pod writes into a volume: 4 KiB that only this claim would write."""
    return hashlib.sha256(uid.encode()).digest() * 128


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def mebibytes(quantity: str | None) -> int | None:
    if not quantity:
        return None
    for suffix, factor in (("Gi", 1024), ("Mi", 1)):
        if quantity.endswith(suffix):
            return int(float(quantity[: -len(suffix)]) * factor)
    return int(quantity) // (1024 * 1024)


@dataclass
class FaultRun:
    fault: Fault
    hit: str = ""
    started_at: float = 0.0
    healed_at: float | None = None
    converged_after: float | None = None
    error: str = ""


@dataclass
class Soak:
    world: SoakWorld
    schedule: Schedule
    records: dict[str, ClaimRecord] = field(default_factory=dict)
    operations: Counter[str] = field(default_factory=Counter)
    faults: list[FaultRun] = field(default_factory=list)
    pending: list[tuple[float, int]] = field(default_factory=list)
    violations: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    final_convergence: float | None = None
    snapshots: int = 0
    # Archives the registry has no marker for (written while the export was full), last seen.
    archives_without_marker: list[str] = field(default_factory=list)
    started: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Claims the writer is writing: a pod uses them, so the workload does not delete them.
    busy: set[str] = field(default_factory=set)
    nodes_selected: set[str] = field(default_factory=set)
    monitor: Monitor = field(default_factory=Monitor)
    log_records: list[LogRecord] = field(default_factory=list)
    _log_offsets: dict[Path, int] = field(default_factory=dict)
    _sentinel: str = ""
    _counter: int = 0

    def offset(self) -> float:
        return time.monotonic() - self.started

    # --- the run -----------------------------------------------------------------------------

    def run(self) -> None:
        self._sentinel = self._sentinel_digest()
        self.started = time.monotonic()
        threads = [
            threading.Thread(target=self._guard, args=(f,), name=f.__name__, daemon=True)
            for f in (self._workload, self._writer, self._supervisor, self._checker)
        ]
        for thread in threads:
            thread.start()
        try:
            # Faults run on this thread: the servers they restart die with the thread that
            # started them (PR_SET_PDEATHSIG), and this one lives as long as the run.
            self._guard(self._faults)
            self._sleep_until(self.schedule.duration)
            self.stop.set()
            for thread in threads:
                thread.join(timeout=60)
            if not self.violations and not self.errors:
                self._converge()
        finally:
            self.stop.set()
            self.world.heal_everything()

    def _checker(self) -> None:
        last_told = 0.0
        while not self.stop.is_set():
            self._check_once()
            if self.offset() - last_told >= PROGRESS_EVERY:
                last_told = self.offset()
                print(
                    f"[soak] {last_told:6.0f}s: {len(self.records)} claims created, "
                    f"{len(self.faults)} faults, {self.pending[-1][1] if self.pending else 0} "
                    f"pending, {len(self.violations)} violations",
                    flush=True,
                )
            self.stop.wait(CHECK_INTERVAL)

    def _guard(self, target: Any) -> None:
        try:
            target()
        except Exception:
            self.errors.append(f"{target.__name__}: {traceback.format_exc()}")
            self.stop.set()

    def _sleep_until(self, at: float) -> bool:
        while not self.stop.is_set():
            left = at - self.offset()
            if left <= 0:
                return True
            self.stop.wait(min(left, 0.5))
        return False

    # --- workload ------------------------------------------------------------------------------

    def _workload(self) -> None:
        for operation in self.schedule.operations:
            if not self._sleep_until(operation.at):
                return
            result = self._operate(operation)
            self.operations[f"{operation.kind}:{result}"] += 1

    def _operate(self, operation: Operation) -> str:
        if operation.kind == "create":
            return self._create(operation)
        with self.lock:
            candidates = sorted(
                key
                for key, r in self.records.items()
                if r.deleted_at is None
                and key not in self.busy
                # Claims a pod has used: a delete then ends a whole lifecycle.
                and r.bound
            )
            if not candidates:
                return "skipped"
            record = self.records[candidates[int(operation.pick * len(candidates))]]
            if operation.kind == "delete":
                record.deleted_at = self.offset()
        if operation.kind == "delete":
            result = self._retry(
                lambda: self.world.cluster.delete_claim(record.namespace, record.name)
            )
            if result == "failed":
                with self.lock:
                    record.deleted_at = None
            return result
        size = record.requested_mi + 1
        result = self._retry(
            lambda: self.world.cluster.patch_claim(
                record.namespace,
                record.name,
                {"spec": {"resources": {"requests": {"storage": f"{size}Mi"}}}},
            )
        )
        if result == "done":
            with self.lock:
                record.requested_mi = size
                record.resize_at = self.offset()
        return result

    def _create(self, operation: Operation) -> str:
        self._counter += 1
        name = f"c{self._counter:05d}"
        created_at = self.offset()
        holder: list[JsonObject] = []
        result = self._retry(
            lambda: holder.append(
                self.world.cluster.create_claim(
                    operation.namespace, name, storage_class=operation.storage_class, size="1Mi"
                )
            )
        )
        if result != "done":
            return result
        uid = holder[0]["metadata"]["uid"]
        volume = f"pvc-{uid}"
        directory = (
            f"{operation.namespace}/{name}"
            if operation.storage_class == PATTERN_CLASS
            else f"{operation.namespace}-{name}-{volume}"
        )
        with self.lock:
            self.records[f"{operation.namespace}/{name}"] = ClaimRecord(
                namespace=operation.namespace,
                name=name,
                storage_class=operation.storage_class,
                fate=CLASSES[operation.storage_class],
                created_at=created_at,
                uid=uid,
                volume=volume,
                directory=directory,
            )
        return "done"

    def _retry(self, call: Any) -> str:
        deadline = time.monotonic() + OPERATION_PATIENCE
        while True:
            try:
                call()
                return "done"
            except ApiError as error:
                if error.is_not_found:
                    return "gone"
                if error.status == 422:
                    return "refused"
                if 400 <= error.status < 500 and error.status not in (408, 409, 429):
                    raise
            except OSError:
                pass
            if time.monotonic() > deadline or self.stop.is_set():
                return "failed"
            time.sleep(0.5)

    # --- the pods: a writer --------------------------------------------------------------------

    def _writer(self) -> None:
        while not self.stop.wait(0.3):
            with self.lock:
                late = [
                    r
                    for r in self.records.values()
                    if r.storage_class == LATE_CLASS
                    and r.deleted_at is None
                    and r.key not in self.nodes_selected
                ]
                todo = [
                    r
                    for r in self.records.values()
                    if r.provisioned and r.deleted_at is None and r.content in ("", "?")
                ]
                for record in todo:
                    self.busy.add(record.key)
            for record in late:
                # The scheduler's choice for the claim's first pod.
                with contextlib.suppress(ApiError, OSError):
                    self.world.cluster.patch_claim(
                        record.namespace,
                        record.name,
                        {"metadata": {"annotations": {SELECTED_NODE: "soak-node"}}},
                    )
                    self.nodes_selected.add(record.key)
            for record in todo:
                try:
                    self._write(record)
                finally:
                    with self.lock:
                        self.busy.discard(record.key)
                if self.stop.is_set():
                    return

    def _write(self, record: ClaimRecord) -> None:
        """Put the claim's content into its volume through the mount, as a pod would."""
        path = self.world.mount.path / record.directory / "data"
        data = content_for(record.uid)
        try:
            with path.open("wb") as file:
                file.write(data)
        except OSError:
            # A fault in the way (full, read-only): nothing or part of it may be there.
            with contextlib.suppress(OSError):
                path.unlink()
            with self.lock:
                record.content = "" if not path.exists() else "?"
            return
        with self.lock:
            record.content = digest(data)

    # --- faults ---------------------------------------------------------------------------------

    def _faults(self) -> None:
        for fault in self.schedule.faults:
            if not self._sleep_until(fault.at):
                return
            run = FaultRun(fault, started_at=self.offset())
            self.faults.append(run)
            try:
                run.hit = self.world.inject(fault)
            except Exception as error:
                run.error = f"inject: {error}"
            # Held for its time even when it started late (a slow heal of the one before).
            self._sleep_until(run.started_at + fault.hold)
            try:
                self.world.heal(fault, run.hit)
            except Exception as error:
                run.error += f" heal: {error}"
                self.errors.append(f"healing {fault.kind} failed: {error}")
                self.stop.set()
                return
            run.healed_at = self.offset()

    def _supervisor(self) -> None:
        while not self.stop.wait(1.0):
            self.world.supervise()

    # --- the checker --------------------------------------------------------------------------

    def _api_view(self) -> ApiView:
        api = self.world.cluster.api
        claims = {}
        for namespace in NAMESPACES:
            for item in api.get(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims").get(
                "items", []
            ):
                spec = item.get("spec") or {}
                status = item.get("status") or {}
                view = ClaimView(
                    namespace=namespace,
                    name=item["metadata"]["name"],
                    uid=item["metadata"]["uid"],
                    phase=status.get("phase", ""),
                    volume_name=spec.get("volumeName", ""),
                    requested_mi=mebibytes(
                        ((spec.get("resources") or {}).get("requests") or {}).get("storage")
                    )
                    or 0,
                    capacity_mi=mebibytes((status.get("capacity") or {}).get("storage")),
                )
                claims[view.key] = view
        volumes = {}
        prefix = self.world.nfs_path + "/"
        for item in api.get("/api/v1/persistentvolumes").get("items", []):
            spec = item.get("spec") or {}
            annotations = item["metadata"].get("annotations") or {}
            path = (spec.get("nfs") or {}).get("path", "")
            volumes[item["metadata"]["name"]] = VolumeView(
                name=item["metadata"]["name"],
                phase=(item.get("status") or {}).get("phase", ""),
                claim_uid=(spec.get("claimRef") or {}).get("uid", ""),
                directory=path.removeprefix(prefix) if path.startswith(prefix) else None,
                capacity_mi=mebibytes((spec.get("capacity") or {}).get("storage")) or 0,
                ours=annotations.get("pv.kubernetes.io/provisioned-by") == PROVISIONER,
            )
        return ApiView(claims, volumes)

    def _export_view(self) -> ExportView:
        backing = self.world.backing
        directories: dict[str, str] = {}
        archives: dict[str, str] = {}
        markers: dict[str, str] = {}
        for entry in backing.iterdir():
            if not entry.is_dir() or entry.is_symlink():
                continue
            if entry.name == str(REGISTRY):
                for marker_file in entry.iterdir():
                    with contextlib.suppress(OSError, ValueError):
                        marker = decode_marker(marker_file.read_bytes())
                        markers[marker.archive] = marker.volume or ""
            elif entry.name.startswith(ARCHIVE_PREFIX):
                archives[entry.name] = _data_digest(entry)
            elif entry.name in NAMESPACES:
                for child in entry.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        directories[f"{entry.name}/{child.name}"] = _data_digest(child)
            else:
                directories[entry.name] = _data_digest(entry)
        return ExportView(directories, archives, markers, self._sentinel_digest())

    def _sentinel_digest(self) -> str:
        hashed = hashlib.sha256()
        for root in self.world.sentinels:
            for path in sorted(root.rglob("*")):
                stat = path.lstat()
                hashed.update(f"{path}:{stat.st_mode}:{stat.st_size}:{stat.st_mtime_ns}".encode())
                if path.is_file():
                    hashed.update(path.read_bytes())
        return hashed.hexdigest()

    def _read_logs(self) -> None:
        for index, replica in enumerate(self.world.replicas):
            path = replica.provisioner.log_path
            if path is None or not path.exists():
                continue
            with path.open("rb") as file:
                file.seek(self._log_offsets.get(path, 0))
                data = file.read()
            end = data.rfind(b"\n") + 1
            self._log_offsets[path] = self._log_offsets.get(path, 0) + end
            for line in data[:end].splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                event = record.get("event", "")
                if event in ACTIONS or event == BECAME_LEADER:
                    self.log_records.append(
                        LogRecord(
                            at=datetime.fromisoformat(record["timestamp"]),
                            replica=f"replica-{index}",
                            event=event,
                            detail=str(record.get("pv") or record.get("claim") or ""),
                        )
                    )

    def _check_once(self, *, final: bool = False) -> list[str]:
        """One snapshot: record progress, turn lasting findings into violations."""
        try:
            before = self._api_view()
            export = self._export_view()
            after = self._api_view()
        except (ApiError, OSError):
            return ["the API or the export could not be read"]
        now = self.offset()
        self.snapshots += 1
        with self.lock:
            for record in self.records.values():
                if record.volume in before.volumes or record.volume in after.volumes:
                    record.provisioned = True
                claim = after.claims.get(record.key)
                if claim is not None and claim.phase == "Bound":
                    record.bound = True
            records = [ClaimRecord(**asdict(r)) for r in self.records.values()]
        self.pending.append(
            (round(now, 2), sum(1 for c in after.claims.values() if c.phase == "Pending"))
        )
        self._read_logs()
        self.archives_without_marker = unregistered_archives(export)
        findings = check(before, after, export, records, self._sentinel)
        findings += acts_outside_own_term(self.log_records)
        if final:
            violations = [f for f in findings if f.key not in self.monitor.reported]
        else:
            violations = self.monitor.observe(now, findings)
        if violations:
            self.violations += violations
            self.stop.set()
        for run in self.faults:
            if run.healed_at is not None and run.converged_after is None:
                if not unsettled(after, records, run.healed_at):
                    run.converged_after = round(now - run.healed_at, 2)
                elif now - run.healed_at > CONVERGENCE_BOUND:
                    self.violations.append(
                        Finding(
                            f"converge/{run.fault.at}",
                            "no-convergence",
                            f"{CONVERGENCE_BOUND:.0f}s after {run.fault.kind} (at "
                            f"{run.fault.at}s) healed, still: "
                            + "; ".join(unsettled(after, records, run.healed_at)[:5]),
                        )
                    )
                    self.stop.set()
        return unsettled(after, records, float("inf"))

    def _converge(self) -> None:
        """After the last operation: everything settles within the bound, and holds."""
        began = self.offset()
        while self.offset() - began < CONVERGENCE_BOUND:
            self.stop.clear()
            left = self._check_once()
            if self.violations:
                return
            if not left:
                self.final_convergence = round(self.offset() - began, 2)
                break
            time.sleep(CHECK_INTERVAL)
        else:
            self.violations.append(
                Finding(
                    "converge/final",
                    "no-convergence",
                    f"{CONVERGENCE_BOUND:.0f}s after the last operation, still: "
                    + "; ".join(self._check_once()[:5]),
                )
            )
            return
        self._check_once(final=True)

    # --- results --------------------------------------------------------------------------------

    def lifecycles(self) -> int:
        """Claims created, provisioned, deleted and released to the end (their PV gone)."""
        return (
            sum(1 for r in self.records.values() if r.bound and r.deleted_at is not None)
            - self._unreleased()
        )

    def _unreleased(self) -> int:
        with contextlib.suppress(ApiError, OSError):
            names = set(self._api_view().volumes)
            return sum(
                1
                for r in self.records.values()
                if r.bound and r.deleted_at is not None and r.volume in names
            )
        return 0


def _data_digest(directory: Path) -> str:
    try:
        return digest((directory / "data").read_bytes())
    except FileNotFoundError:
        return ""
    except OSError:
        return "?"
