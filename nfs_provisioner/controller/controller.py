"""The generic provisioning controller: watches, queues, workers, events, metrics.

It knows nothing about NFS: storage work goes through a :class:`Provisioner` backend.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from nfs_provisioner.controller import metrics
from nfs_provisioner.controller.predicates import (
    ANN_PROVISIONED_BY,
    ANN_SELECTED_NODE,
    annotations_of,
    claim_class,
    claim_key,
    compact_claim,
    compact_volume,
    complete_volume,
    is_block_claim,
    is_claim_for,
    should_delete_volume,
    volume_name_for,
    waits_for_consumer,
)
from nfs_provisioner.controller.resizing import (
    ResizeAction,
    needs_resize,
    plan_resize,
    resize_finished_patch,
    resize_started_patch,
    storage_request,
    volume_capacity,
    volume_capacity_patch,
)
from nfs_provisioner.controller.retention import run_sweeps
from nfs_provisioner.controller.usage import UsageReporter
from nfs_provisioner.controller.watchdog import OperationWatch
from nfs_provisioner.controller.workqueue import ItemBackoff, WorkQueue
from nfs_provisioner.kube import (
    NORMAL,
    WARNING,
    ApiClient,
    ApiError,
    EventRecorder,
    Handlers,
    Informer,
    JsonObject,
    resources,
)
from nfs_provisioner.kube.updates import patch_claim_status, patch_volume
from nfs_provisioner.volumeplugin import (
    BackendError,
    DeleteOutcome,
    Expander,
    Provisioner,
    ProvisionRequest,
    StorageSweeper,
    UsageMeter,
)

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ControllerSettings:
    provisioner_name: str
    workers: int = 16
    resync_period: float = 900.0
    retry_base_delay: float = 15.0
    retry_max_delay: float = 1000.0
    # The Go library gives up after this many failures; we keep retrying at the cap and say so.
    failure_threshold: int = 15
    save_attempts: int = 5
    save_retry_delay: float = 0.5
    # Background work of the leader; 0 turns it off.
    usage_scan_interval: float = 600.0
    usage_scan_rate: float = 2000.0
    archive_sweep_interval: float = 3600.0
    # An operation running this long is reported stuck (readiness, metrics): see watchdog.
    stuck_operation_after: float = 60.0

    @property
    def resize_workers(self) -> int:
        # Resizes are rare and take three API calls each: a few workers keep up with bursts.
        return max(1, self.workers // 4)


class RetryLaterError(Exception):
    """Not an error the user must act on (e.g. the class is not in the cache yet)."""


class ProvisionController:
    def __init__(
        self,
        api: ApiClient,
        backend: Provisioner,
        settings: ControllerSettings,
        *,
        events: EventRecorder,
        stop: threading.Event,
    ) -> None:
        self.api = api
        self.backend = backend
        self.settings = settings
        self.events = events
        self.stop = stop
        name = settings.provisioner_name
        self.claims = Informer(
            api,
            resources.CLAIMS,
            kind="PersistentVolumeClaim",
            resync_period=settings.resync_period,
            stop=stop,
            transform=lambda claim: compact_claim(claim, name),
        )
        self.volumes = Informer(
            api,
            resources.VOLUMES,
            kind="PersistentVolume",
            resync_period=settings.resync_period,
            stop=stop,
            transform=lambda volume: compact_volume(volume, name),
        )
        self.classes = Informer(
            api, resources.STORAGE_CLASSES, kind="StorageClass", resync_period=0, stop=stop
        )
        self.claim_queue = WorkQueue(
            "claims", ItemBackoff(settings.retry_base_delay, settings.retry_max_delay)
        )
        self.volume_queue = WorkQueue(
            "volumes", ItemBackoff(settings.retry_base_delay, settings.retry_max_delay)
        )
        self.resize_queue = WorkQueue(
            "resizes", ItemBackoff(settings.retry_base_delay, settings.retry_max_delay)
        )
        self.claims.add_handlers(
            Handlers(
                on_add=self._claim_changed,
                on_update=lambda _old, new: self._claim_changed(new),
                on_delete=self._claim_deleted,
            )
        )
        self.volumes.add_handlers(
            Handlers(
                on_add=self._volume_changed,
                on_update=lambda _old, new: self._volume_changed(new),
                on_delete=lambda volume: self.volume_queue.forget(_name(volume)),
            )
        )
        self.classes.add_handlers(
            Handlers(
                on_add=self._class_changed,
                on_update=lambda _old, new: self._class_changed(new),
                on_delete=lambda _sc: None,
            )
        )
        self._workers: list[threading.Thread] = []
        self.watch = OperationWatch(settings.stuck_operation_after)
        self.watch.publish(queue.name for queue in self.queues)
        log.debug("controller created", provisioner=name)

    # -- wiring --------------------------------------------------------------------------

    @property
    def informers(self) -> list[Informer]:
        return [self.claims, self.volumes, self.classes]

    def start_informers(self) -> None:
        for informer in self.informers:
            informer.start()

    @property
    def queues(self) -> list[WorkQueue]:
        return [self.claim_queue, self.volume_queue, self.resize_queue]

    def start_workers(self) -> None:
        """Start processing; called once this instance leads (or runs alone)."""
        for informer in self.informers:
            informer.synced.wait()
        for queue, sync, count in (
            (self.claim_queue, self.sync_claim, self.settings.workers),
            (self.volume_queue, self.sync_volume, self.settings.workers),
            (self.resize_queue, self.sync_resize, self.settings.resize_workers),
        ):
            for index in range(count):
                thread = threading.Thread(
                    target=self._work,
                    args=(queue, sync),
                    name=f"{queue.name}-worker-{index}",
                    daemon=True,
                )
                thread.start()
                self._workers.append(thread)
        threading.Thread(
            target=self._publish_queue_metrics, name="queue-metrics", daemon=True
        ).start()
        self._start_background_work()
        log.info("workers started", workers=self.settings.workers)

    def _start_background_work(self) -> None:
        """Usage scans and archive sweeps: leader-only, so one pod walks the export, not each."""
        settings = self.settings
        if isinstance(self.backend, UsageMeter) and settings.usage_scan_interval > 0:
            reporter = UsageReporter(
                self.volumes,
                self.backend,
                self.events,
                provisioner_name=settings.provisioner_name,
                interval=settings.usage_scan_interval,
                rate=settings.usage_scan_rate,
                stop=self.stop,
            )
            threading.Thread(target=reporter.run, name="usage-scan", daemon=True).start()
        if isinstance(self.backend, StorageSweeper) and settings.archive_sweep_interval > 0:
            threading.Thread(
                target=run_sweeps,
                args=(self.backend,),
                kwargs={"interval": settings.archive_sweep_interval, "stop": self.stop},
                name="archive-sweep",
                daemon=True,
            ).start()

    def shutdown(self) -> None:
        for queue in self.queues:
            queue.shutdown()

    def workers_alive(self) -> bool:
        return all(worker.is_alive() for worker in self._workers) or self.stop.is_set()

    def _claim_changed(self, claim: JsonObject) -> None:
        if is_claim_for(claim, self.settings.provisioner_name):
            self.claim_queue.add(claim_key(claim))
        elif needs_resize(claim):
            self.resize_queue.add(claim_key(claim))

    def _claim_deleted(self, claim: JsonObject) -> None:
        self.claim_queue.forget(claim_key(claim))
        self.resize_queue.forget(claim_key(claim))

    def _volume_changed(self, volume: JsonObject) -> None:
        if should_delete_volume(volume, self.settings.provisioner_name):
            self.volume_queue.add(_name(volume))

    def _class_changed(self, storage_class: JsonObject) -> None:
        # Claims that waited for this class to reach the cache need not wait for their backoff.
        if storage_class.get("provisioner") != self.settings.provisioner_name:
            return
        name = _name(storage_class)
        for claim in self.claims.items():
            if claim_class(claim) != name:
                continue
            if is_claim_for(claim, self.settings.provisioner_name):
                self.claim_queue.add(claim_key(claim))
            elif needs_resize(claim):
                # The class may just have been allowed to expand volumes.
                self.resize_queue.add(claim_key(claim))

    def _work(self, queue: WorkQueue, sync: Any) -> None:
        while True:
            key = queue.get()
            if key is None:
                return
            try:
                with self.watch.track(queue.name, key):
                    sync(key)
                queue.forget(key)
            except Exception as error:
                self._requeue(queue, key, error)
            finally:
                queue.done(key)

    def _requeue(self, queue: WorkQueue, key: str, error: Exception) -> None:
        delay = queue.add_rate_limited(key)
        failures = queue.backoff.failures(key)
        metrics.RETRIES_TOTAL.labels(queue.name).inc()
        if not isinstance(error, (BackendError, ApiError, RetryLaterError)):
            log.exception("unexpected error, will retry", key=key, queue=queue.name, exc_info=error)
        log.info(
            "will retry",
            key=key,
            queue=queue.name,
            failures=failures,
            retry_in=round(delay, 1),
            error=str(error),
        )
        if failures == self.settings.failure_threshold:
            self._announce_capped(queue, key, failures)

    def _announce_capped(self, queue: WorkQueue, key: str, failures: int) -> None:
        obj = self.volumes.get(key) if queue is self.volume_queue else self.claims.get(key)
        if obj is None:
            return
        what = {"claims": "provisioning", "volumes": "deletion", "resizes": "expansion"}[queue.name]
        self.events.record(
            obj,
            WARNING,
            "RetryBackoffCapped",
            f"{what} has failed {failures} times in a row; it is retried at most "
            f"every {self.settings.retry_max_delay:.0f}s until it succeeds",
        )

    def _publish_queue_metrics(self) -> None:
        while not self.stop.wait(1.0):
            for queue in self.queues:
                metrics.QUEUE_DEPTH.labels(queue.name).set(queue.depth())
                metrics.QUEUE_WAITING.labels(queue.name).set(queue.waiting())
                metrics.AT_MAX_BACKOFF.labels(queue.name).set(queue.backoff.at_cap())

    # -- claims --------------------------------------------------------------------------

    def sync_claim(self, key: str) -> None:
        name = self.settings.provisioner_name
        claim = self.claims.get(key)
        if claim is None or not is_claim_for(claim, name):
            return
        pv_name = volume_name_for(claim)
        if self.volumes.get(pv_name) is not None:
            return
        class_name = claim_class(claim)
        storage_class = self.classes.get(class_name)
        if storage_class is None:
            raise RetryLaterError(f"StorageClass {class_name!r} not found (yet)")
        if storage_class.get("provisioner") != name:
            return
        if waits_for_consumer(claim, storage_class):
            return
        logger = log.bind(claim=key, pv=pv_name, storage_class=class_name)
        if is_block_claim(claim) and not self.backend.supports_block:
            self.events.record(
                claim,
                WARNING,
                "ProvisioningFailed",
                f"{name} does not support block volume provisioning",
            )
            return
        started = time.monotonic()
        self.events.record(
            claim,
            NORMAL,
            "Provisioning",
            f'External provisioner is provisioning volume for claim "{key}"',
        )
        request = ProvisionRequest(
            pv_name=pv_name,
            claim=claim,
            storage_class=storage_class,
            selected_node=annotations_of(claim).get(ANN_SELECTED_NODE),
        )
        try:
            body = self.backend.provision(request)
        except BackendError as error:
            metrics.PROVISION_FAILED_TOTAL.labels(class_name).inc()
            logger.warning("provisioning failed", error=str(error))
            self.events.record(
                claim,
                WARNING,
                "ProvisioningFailed",
                f'failed to provision volume with StorageClass "{class_name}": {error}',
            )
            raise
        volume = complete_volume(body, claim, class_name=class_name, provisioner_name=name)
        self._save_volume(volume, claim, storage_class, logger)
        metrics.PROVISION_TOTAL.labels(class_name).inc()
        metrics.PROVISION_DURATION.labels(class_name).observe(time.monotonic() - started)
        logger.info("volume provisioned", path=(volume["spec"].get("nfs") or {}).get("path"))
        self.events.record(
            claim, NORMAL, "ProvisioningSucceeded", f"Successfully provisioned volume {pv_name}"
        )

    def _save_volume(
        self, volume: JsonObject, claim: JsonObject, storage_class: JsonObject, logger: Any
    ) -> None:
        class_name = _name(storage_class)
        delay = self.settings.save_retry_delay
        last_error: ApiError | None = None
        for attempt in range(1, self.settings.save_attempts + 1):
            try:
                resources.create_volume(self.api, volume)
                return
            except ApiError as error:
                if error.is_already_exists:
                    return
                last_error = error
                logger.warning("saving the PV failed", attempt=attempt, error=str(error))
            if attempt < self.settings.save_attempts and self.stop.wait(delay):
                break
            delay *= 2
        metrics.PROVISION_FAILED_TOTAL.labels(class_name).inc()
        pv_name = _name(volume)
        prefix = (
            f'failed to provision volume with StorageClass "{class_name}": '
            f'error saving PersistentVolume "{pv_name}": {last_error}'
        )
        if last_error is not None and last_error.is_transient:
            # The API server is unreachable or overloaded, not refusing this PV: keep the
            # storage, and the next attempt reuses it under the same deterministic name.
            self.events.record(claim, WARNING, "ProvisioningFailed", f"{prefix}; will retry")
            raise RetryLaterError(f"could not save PersistentVolume {pv_name}: {last_error}")
        self.events.record(claim, WARNING, "ProvisioningFailed", f"{prefix}. Deleting the volume.")
        try:
            self.backend.discard(volume)
        except BackendError as cleanup_error:
            self.events.record(
                claim,
                WARNING,
                "ProvisioningCleanupFailed",
                f'failed to clean up the storage of volume "{pv_name}": {cleanup_error}',
            )
        raise RetryLaterError(f"could not save PersistentVolume {pv_name}: {last_error}")

    # -- volumes -------------------------------------------------------------------------

    def sync_volume(self, name: str) -> None:
        provisioner = self.settings.provisioner_name
        cached = self.volumes.get(name)
        if cached is None or not should_delete_volume(cached, provisioner):
            return
        try:
            volume = resources.get_volume(self.api, name)
        except ApiError as error:
            if error.is_not_found:
                return
            raise
        if not should_delete_volume(volume, provisioner):
            return
        class_name = str((volume.get("spec") or {}).get("storageClassName") or "")
        storage_class = self.classes.get(class_name) if class_name else None
        logger = log.bind(pv=name, storage_class=class_name)
        started = time.monotonic()
        try:
            outcome = self.backend.delete(volume, storage_class)
        except BackendError as error:
            metrics.DELETE_FAILED_TOTAL.labels(class_name).inc()
            logger.warning("deleting the volume's storage failed", error=str(error))
            self.events.record(volume, WARNING, "VolumeFailedDelete", str(error))
            raise
        try:
            resources.delete_volume(self.api, name, uid=_uid(volume))
        except ApiError as error:
            if not error.is_not_found:
                metrics.DELETE_FAILED_TOTAL.labels(class_name).inc()
                self.events.record(
                    volume,
                    WARNING,
                    "VolumeFailedDelete",
                    f"failed to delete PersistentVolume {name}: {error}",
                )
                raise
        if outcome is DeleteOutcome.ALREADY_GONE:
            self.events.record(
                volume,
                WARNING,
                "VolumeStorageMissing",
                "the volume's storage was already gone from the export when it was released; "
                "nothing was archived or removed: check who deletes directories on the export",
            )
        metrics.DELETE_TOTAL.labels(class_name).inc()
        metrics.DELETE_DURATION.labels(class_name).observe(time.monotonic() - started)
        logger.info("volume deleted", storage=outcome.value)

    # -- resizes -------------------------------------------------------------------------

    def sync_resize(self, key: str) -> None:
        """Grow the volume of a bound claim that asks for more, as an external resizer would."""
        claim = self.claims.get(key)
        if claim is None or not needs_resize(claim):
            return
        pv_name = str((claim.get("spec") or {}).get("volumeName"))
        volume = self.volumes.get(pv_name)
        if volume is None or annotations_of(volume).get(ANN_PROVISIONED_BY) != (
            self.settings.provisioner_name
        ):
            return
        claim_ref = (volume.get("spec") or {}).get("claimRef") or {}
        if claim_ref.get("uid") != (claim.get("metadata") or {}).get("uid"):
            return
        plan = plan_resize(claim, volume)
        if plan.action is ResizeAction.NONE or plan.size is None:
            return
        class_name = str((volume.get("spec") or {}).get("storageClassName") or "")
        logger = log.bind(claim=key, pv=pv_name, storage_class=class_name)
        requested = storage_request(claim)
        refusal = self._resize_refusal(plan.action, plan.size, requested, class_name)
        if refusal is not None:
            metrics.VOLUME_RESIZES_TOTAL.labels("refused").inc()
            logger.warning("resize refused", reason=refusal)
            self.events.record(claim, WARNING, "VolumeResizeFailed", refusal)
            return
        namespace, name = key.split("/", 1)
        capacity = plan.size
        try:
            if plan.action is ResizeAction.EXPAND:
                assert isinstance(self.backend, Expander)  # _resize_refusal checked it
                claim = patch_claim_status(
                    self.api, namespace, name, resize_started_patch(claim, plan.size)
                )
                self.events.record(
                    claim, NORMAL, "Resizing", f"External resizer is resizing volume {pv_name}"
                )
                capacity = self.backend.expand(volume, plan.size)
                if capacity != volume_capacity(volume):
                    patch_volume(self.api, pv_name, volume_capacity_patch(capacity))
            patch_claim_status(self.api, namespace, name, resize_finished_patch(claim, capacity))
        except BackendError as error:
            metrics.VOLUME_RESIZES_TOTAL.labels("failed").inc()
            logger.warning("resize failed", error=str(error))
            self.events.record(claim, WARNING, "VolumeResizeFailed", str(error))
            raise
        except ApiError as error:
            if error.is_conflict or error.is_not_found:
                # The claim changed (or went) meanwhile; the cache has or will have the news.
                raise RetryLaterError(f"claim {key} changed during its resize: {error}") from error
            metrics.VOLUME_RESIZES_TOTAL.labels("failed").inc()
            self.events.record(
                claim, WARNING, "VolumeResizeFailed", f"resizing volume {pv_name} failed: {error}"
            )
            raise
        metrics.VOLUME_RESIZES_TOTAL.labels("completed").inc()
        logger.info("volume resized", capacity=capacity, requested=requested)
        self.events.record(claim, NORMAL, "VolumeResizeSuccessful", "Resize volume succeeded")

    def _resize_refusal(
        self, action: ResizeAction, size: str, requested: str | None, class_name: str
    ) -> str | None:
        """Why the claim cannot be resized, or None if it can."""
        if action is ResizeAction.REFUSE_SHRINK:
            return (
                f"the claim requests {requested}, less than the volume's capacity of {size}: "
                f"volumes cannot shrink; set the claim's request to at least {size}"
            )
        if action is not ResizeAction.EXPAND:
            return None
        storage_class = self.classes.get(class_name) if class_name else None
        if storage_class is None or storage_class.get("allowVolumeExpansion") is not True:
            return (
                f'StorageClass "{class_name}" does not allow volume expansion: set '
                "allowVolumeExpansion: true in the class to grow its volumes"
            )
        if not isinstance(self.backend, Expander):
            return f"{self.settings.provisioner_name} cannot expand volumes"
        return None


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _uid(obj: Mapping[str, Any]) -> str | None:
    uid = (obj.get("metadata") or {}).get("uid")
    return str(uid) if uid else None
