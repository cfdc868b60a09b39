"""Claims whose data source is another claim: which sources may be cloned, and the copy pool.

Kubernetes' rules for a PersistentVolumeClaim data source (``spec.dataSource`` or
``spec.dataSourceRef``, kind PersistentVolumeClaim, core API group): the source is a claim of
the same namespace, Bound, and the new claim asks for at least the source's capacity. Here the
source's volume must also be one this provisioner made (any of its classes), or the backend
cannot know where its data is. Each refusal is a ProvisioningFailed event saying which rule.

Copies can take long, so they never run on a provisioning worker: a :class:`CopyPool` of its
own bounded size runs them, the worker only starts one (or finds it running, or collects its
result) and returns. When a copy ends, its claim is queued again at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import structlog

from nfs_provisioner.controller import metrics
from nfs_provisioner.controller.quantities import parse_quantity
from nfs_provisioner.controller.seam import Cluster
from nfs_provisioner.controller.settings import RetryLaterError
from nfs_provisioner.kube import NORMAL, JsonObject
from nfs_provisioner.objects import (
    claim_key,
    metadata_of,
    object_namespace,
    provisioned_by,
    spec_of,
    status_of,
)
from nfs_provisioner.storage import CloneCancelledError, CloneProgress, Cloner, ProvisionRequest

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SourceRef:
    name: str
    # Set only by dataSourceRef.namespace (the CrossNamespaceVolumeDataSource feature).
    namespace: str | None


class CloneRefusedError(Exception):
    """The claim's data source may not be cloned; the message says why."""


def claim_source(claim: JsonObject) -> SourceRef | None:
    """The claim this claim asks to be a copy of, None if its data source is no claim.

    dataSourceRef wins over dataSource (the API server keeps them equal when both are given
    without a namespace). A data source of another kind (a VolumeSnapshot, a populator's
    object) is not a clone; the caller refuses it.
    """
    spec = spec_of(claim)
    for field in ("dataSourceRef", "dataSource"):
        source = spec.get(field)
        if not source:
            continue
        if source.get("kind") == "PersistentVolumeClaim" and not source.get("apiGroup"):
            return SourceRef(str(source.get("name", "")), source.get("namespace") or None)
        return None
    return None


def foreign_data_source(claim: JsonObject) -> str | None:
    """The kind of a data source this provisioner cannot populate from, e.g. a snapshot."""
    spec = spec_of(claim)
    source = spec.get("dataSourceRef") or spec.get("dataSource")
    if not source or claim_source(claim) is not None:
        return None
    group = source.get("apiGroup")
    kind = str(source.get("kind", "?"))
    return f"{kind}.{group}" if group else kind


def check_source(
    cluster: Cluster, claim: JsonObject, source: SourceRef, provisioner_name: str
) -> JsonObject:
    """The source claim's PV if claim may be a copy of it; CloneRefusedError otherwise."""
    namespace = object_namespace(claim)
    if source.namespace is not None and source.namespace != namespace:
        raise CloneRefusedError(
            f"data source claim {source.namespace}/{source.name} is in another namespace; "
            f"only a claim of namespace {namespace} can be cloned"
        )
    key = f"{namespace}/{source.name}"
    source_claim = cluster.cached_claim(key)
    if source_claim is None or not metadata_of(source_claim).get("uid"):
        raise CloneRefusedError(f"data source claim {key} does not exist")
    volume_name = spec_of(source_claim).get("volumeName")
    if status_of(source_claim).get("phase") != "Bound" or not volume_name:
        raise CloneRefusedError(f"data source claim {key} is not Bound")
    volume = cluster.cached_volume(str(volume_name))
    if volume is None or provisioned_by(volume) != provisioner_name:
        raise CloneRefusedError(
            f"data source claim {key} is bound to PersistentVolume {volume_name}, which "
            f"{provisioner_name} did not provision; only its own volumes can be cloned"
        )
    _check_capacity(claim, volume, key)
    return volume


def _check_capacity(claim: JsonObject, volume: JsonObject, key: str) -> None:
    requested = _quantity((spec_of(claim).get("resources") or {}).get("requests", {}))
    capacity = _quantity(spec_of(volume).get("capacity") or {})
    if requested is None or capacity is None:
        return
    if requested < capacity:
        raise CloneRefusedError(
            f"the claim requests {_text(claim_requests(claim))}, less than the "
            f"{_text((spec_of(volume).get('capacity') or {}).get('storage'))} of its data "
            f"source claim {key}; a clone must be at least as large as its source"
        )


def claim_requests(claim: JsonObject) -> Any:
    return ((spec_of(claim).get("resources") or {}).get("requests") or {}).get("storage")


def _quantity(resources: Any) -> Decimal | None:
    try:
        return parse_quantity(str(resources["storage"]))
    except (KeyError, TypeError, ValueError):
        return None


def _text(value: Any) -> str:
    return str(value) if value is not None else "?"


class CopyPool:
    """At most `workers` clones at a time, each known by the PV name it makes.

    on_done(claim key) is called once a clone ends (in its thread), to queue the claim again.
    A PV name, unlike a claim key, is never reused by a claim of the same name made later.
    """

    def __init__(self, workers: int, on_done: Callable[[str], None]) -> None:
        self._executor = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="clone")
        self._on_done = on_done
        self._lock = threading.Lock()
        self._running: dict[str, Future[dict[str, Any]]] = {}

    def result_or_start(
        self, pv_name: str, claim: str, start: Callable[[], dict[str, Any]]
    ) -> tuple[bool, Future[dict[str, Any]]]:
        """(True, future) if a new clone was started; (False, future) if one exists."""
        with self._lock:
            future = self._running.get(pv_name)
            if future is not None:
                return False, future
            future = self._executor.submit(start)
            self._running[pv_name] = future
        future.add_done_callback(lambda _future: self._on_done(claim))
        return True, future

    def take(self, pv_name: str) -> None:
        """Forget a finished clone, so a later sync may start another."""
        with self._lock:
            future = self._running.get(pv_name)
            if future is not None and future.done():
                del self._running[pv_name]

    def forget(self, pv_name: str) -> None:
        """The claim is gone: drop its clone's result (a running copy still finishes)."""
        with self._lock:
            self._running.pop(pv_name, None)

    def is_known(self, pv_name: str) -> bool:
        """True while the PV has a clone running or finished but not yet taken."""
        with self._lock:
            return pv_name in self._running

    def running(self) -> int:
        with self._lock:
            return sum(1 for future in self._running.values() if not future.done())

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class CloneInProgressError(Exception):
    """The claim's copy is running; its claim is queued again when it ends."""


class CloneRestartedError(RetryLaterError):
    """A copy that failed before was started again: counted as a retry, so that a copy that
    keeps failing is retried with growing backoff, not at once after each failure."""


class Clones:
    """The clone side of the claim reconciler: starts copies and collects their volumes."""

    def __init__(
        self,
        cluster: Cluster,
        backend: Cloner,
        pool: CopyPool,
        *,
        progress_interval: float,
        stop: threading.Event | None = None,
    ) -> None:
        self.stop = stop or threading.Event()
        self.cluster = cluster
        self.backend = backend
        self.pool = pool
        self.progress_interval = progress_interval
        # Failed copies per PV name since its last success.
        self.failures: dict[str, int] = {}

    def volume_for(
        self, request: ProvisionRequest, source: JsonObject, class_name: str
    ) -> dict[str, Any]:
        """The PV body once the copy is done; CloneInProgressError while it runs.

        A failed copy raises its error (a BackendError), and the next sync starts it again.
        """
        claim = request.claim
        key = claim_key(claim)
        started, future = self.pool.result_or_start(
            request.pv_name, key, lambda: self._run(request, source, class_name)
        )
        if started:
            self.cluster.record_event(
                claim,
                NORMAL,
                "CloneStarted",
                f"copying the data of PersistentVolume {metadata_of(source).get('name')} "
                "into a new volume; the claim is bound once the copy is complete",
            )
        if started and self.failures.get(request.pv_name):
            raise CloneRestartedError(f"the copy for claim {key} was started again")
        if not future.done():
            raise CloneInProgressError(f"the copy for claim {key} is running")
        self.pool.take(request.pv_name)
        try:
            body = future.result()
        except BaseException:
            self.failures[request.pv_name] = self.failures.get(request.pv_name, 0) + 1
            raise
        self.failures.pop(request.pv_name, None)
        return body

    def _run(
        self, request: ProvisionRequest, source: JsonObject, class_name: str
    ) -> dict[str, Any]:
        claim = request.claim
        last = time.monotonic()
        counted = [0]

        def progress(copied: CloneProgress) -> None:
            nonlocal last
            if self.stop.is_set():
                raise CloneCancelledError("the provisioner is shutting down")
            metrics.CLONE_BYTES_TOTAL.labels(class_name).inc(copied.bytes - counted[0])
            counted[0] = copied.bytes
            now = time.monotonic()
            if now - last < self.progress_interval:
                return
            last = now
            self.cluster.record_event(
                claim,
                NORMAL,
                "CloneProgress",
                f"copied {copied.entries} entries ({copied.bytes} bytes) so far",
            )

        metrics.CLONES_RUNNING.inc()
        try:
            return self.backend.clone(request, source, progress)
        finally:
            metrics.CLONES_RUNNING.dec()
