"""The provisioning controller's wiring: caches, queues, workers, background work.

The decisions are the reconcilers': :mod:`provisioning` (claims), :mod:`deletion` (released
volumes) and :mod:`expansion` (resizes), each behind the :class:`~seam.Cluster` seam. It knows
nothing about NFS: storage work goes through a :class:`Provisioner` backend.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from nfs_provisioner.controller import metrics
from nfs_provisioner.controller.archive_sweeps import run_sweeps
from nfs_provisioner.controller.cloning import CopyPool
from nfs_provisioner.controller.deletion import VolumeReconciler
from nfs_provisioner.controller.expansion import ResizeReconciler
from nfs_provisioner.controller.predicates import (
    compact_claim,
    compact_volume,
    should_delete_volume,
)
from nfs_provisioner.controller.provisioning import ClaimReconciler
from nfs_provisioner.controller.resizing import needs_resize
from nfs_provisioner.controller.seam import KubeCluster
from nfs_provisioner.controller.settings import ControllerSettings, RetryLaterError
from nfs_provisioner.controller.stages import StageLog
from nfs_provisioner.controller.usage_reports import UsageReporter
from nfs_provisioner.controller.watchdog import OperationWatch
from nfs_provisioner.controller.workqueue import ItemBackoff, WorkQueue
from nfs_provisioner.kube import (
    WARNING,
    ApiClient,
    ApiError,
    EventRecorder,
    Handlers,
    Informer,
    JsonObject,
    paths,
)
from nfs_provisioner.objects import (
    claim_class,
    claim_key,
    is_claim_for,
    metadata_of,
    object_name,
    volume_name_for,
)
from nfs_provisioner.storage import (
    BackendError,
    Provisioner,
    StorageSweeper,
    UsageMeter,
    VolumeTracker,
)

__all__ = ["ControllerSettings", "ProvisionController", "RetryLaterError"]

log = structlog.get_logger(__name__)


class ProvisionController:
    def __init__(
        self,
        api: ApiClient,
        backend: Provisioner,
        settings: ControllerSettings,
        *,
        events: EventRecorder,
        stop: threading.Event,
        stages: StageLog | None = None,
    ) -> None:
        self.api = api
        # Per-claim stage times (--stage-log); None, and free, unless asked for.
        self.stages = stages
        self.backend = backend
        self.settings = settings
        self.events = events
        self.stop = stop
        # Called before every operation and every write; with leader election, it ends the
        # process once this instance's lease is past its renew deadline (see daemon.py).
        self.fence: Callable[[], None] = lambda: None
        name = settings.provisioner_name
        self.claims = Informer(
            api,
            paths.CLAIMS,
            kind="PersistentVolumeClaim",
            resync_period=settings.resync_period,
            stop=stop,
            transform=lambda claim: compact_claim(claim, name),
        )
        self.volumes = Informer(
            api,
            paths.VOLUMES,
            kind="PersistentVolume",
            resync_period=settings.resync_period,
            stop=stop,
            transform=lambda volume: compact_volume(volume, name),
        )
        self.classes = Informer(
            api, paths.STORAGE_CLASSES, kind="StorageClass", resync_period=0, stop=stop
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
                on_delete=self._volume_deleted,
            )
        )
        self.classes.add_handlers(
            Handlers(
                on_add=self._class_changed,
                on_update=lambda _old, new: self._class_changed(new),
                on_delete=lambda _sc: None,
            )
        )
        cluster = KubeCluster(
            api,
            events,
            claims=self.claims,
            volumes=self.volumes,
            classes=self.classes,
            # Late-bound: the daemon sets fence after construction.
            fence=self._fence,
        )
        self.copies = CopyPool(settings.clone_workers, self.claim_queue.add)
        self.claim_reconciler = ClaimReconciler(
            cluster, backend, settings, stop=stop, copies=self.copies, stages=stages
        )
        self.volume_reconciler = VolumeReconciler(cluster, backend, settings)
        self.resize_reconciler = ResizeReconciler(cluster, backend, settings)
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
        self.copies.shutdown()

    def workers_alive(self) -> bool:
        return all(worker.is_alive() for worker in self._workers) or self.stop.is_set()

    def _claim_changed(self, claim: JsonObject) -> None:
        if is_claim_for(claim, self.settings.provisioner_name):
            key = claim_key(claim)
            if self.stages is not None:
                self.stages.seen(key)
            self.claim_queue.add(key)
        elif needs_resize(claim):
            self.resize_queue.add(claim_key(claim))

    def _claim_deleted(self, claim: JsonObject) -> None:
        self.claim_queue.forget(claim_key(claim))
        self.resize_queue.forget(claim_key(claim))
        if metadata_of(claim).get("uid"):
            self.copies.forget(volume_name_for(claim))
        if isinstance(self.backend, VolumeTracker) and metadata_of(claim).get("uid"):
            # Storage reserved for a PV that was never saved is free again; a saved PV that
            # the cache has not seen yet is tracked again when it arrives.
            pv_name = volume_name_for(claim)
            if self.volumes.get(pv_name) is None:
                self.backend.forget_volume(pv_name)

    def _volume_changed(self, volume: JsonObject) -> None:
        # Before any worker runs: the initial list adds every PV of the cluster.
        if isinstance(self.backend, VolumeTracker):
            self.backend.track_volume(volume)
        if should_delete_volume(volume, self.settings.provisioner_name):
            self.volume_queue.add(object_name(volume))

    def _volume_deleted(self, volume: JsonObject) -> None:
        self.volume_queue.forget(object_name(volume))
        if isinstance(self.backend, VolumeTracker):
            self.backend.forget_volume(object_name(volume))

    def _class_changed(self, storage_class: JsonObject) -> None:
        # Claims that waited for this class to reach the cache need not wait for their backoff.
        if storage_class.get("provisioner") != self.settings.provisioner_name:
            return
        name = object_name(storage_class)
        for claim in self.claims.items():
            if claim_class(claim) != name:
                continue
            if is_claim_for(claim, self.settings.provisioner_name):
                self.claim_queue.add(claim_key(claim))
            elif needs_resize(claim):
                # The class may just have been allowed to expand volumes.
                self.resize_queue.add(claim_key(claim))

    def _fence(self) -> None:
        self.fence()

    def _work(self, queue: WorkQueue, sync: Callable[[str], None]) -> None:
        while True:
            key = queue.get()
            if key is None:
                return
            try:
                self.fence()
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

    # -- reconcilers ----------------------------------------------------------------------

    def sync_claim(self, key: str) -> None:
        if self.stages is not None:
            self.stages.dequeued(key)
        self.claim_reconciler.sync(key)

    def sync_volume(self, name: str) -> None:
        self.volume_reconciler.sync(name)

    def sync_resize(self, key: str) -> None:
        self.resize_reconciler.sync(key)
