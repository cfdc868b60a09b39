"""The claim reconciler: a claim of ours without a PV gets storage and a PV, exactly once."""

from __future__ import annotations

import threading
import time
from typing import Any

import structlog

from nfs_provisioner.controller import metrics
from nfs_provisioner.controller.cloning import (
    CloneInProgressError,
    CloneRefusedError,
    Clones,
    CopyPool,
    check_source,
    claim_source,
    foreign_data_source,
)
from nfs_provisioner.controller.predicates import complete_volume
from nfs_provisioner.controller.seam import Cluster
from nfs_provisioner.controller.settings import ControllerSettings, RetryLaterError
from nfs_provisioner.controller.stages import StageLog
from nfs_provisioner.kube import NORMAL, WARNING, ApiError, JsonObject
from nfs_provisioner.objects import (
    ANN_SELECTED_NODE,
    annotations_of,
    claim_class,
    is_block_claim,
    is_claim_for,
    object_name,
    volume_name_for,
    waits_for_consumer,
)
from nfs_provisioner.storage import BackendError, Cloner, Provisioner, ProvisionRequest

log = structlog.get_logger(__name__)


class ClaimReconciler:
    """Decides, for one claim key, whether to provision, and does it.

    Ignored: not in the cache, not ours, already has its PV, class of another provisioner,
    waiting for its first consumer. Refused with an event: block volumes. Retried: class not
    in the cache yet, backend failures (with an event), a PV the API server would not save.
    """

    def __init__(
        self,
        cluster: Cluster,
        backend: Provisioner,
        settings: ControllerSettings,
        *,
        stop: threading.Event,
        copies: CopyPool | None = None,
        stages: StageLog | None = None,
    ) -> None:
        self.cluster = cluster
        self.stages = stages
        self.backend = backend
        self.settings = settings
        self.stop = stop
        # Clones need a backend that can copy and a pool to copy on; see cloning.
        self.clones = (
            Clones(
                cluster,
                backend,
                copies,
                progress_interval=settings.clone_progress_interval,
                stop=stop,
            )
            if copies is not None and isinstance(backend, Cloner)
            else None
        )

    def sync(self, key: str) -> None:
        name = self.settings.provisioner_name
        cluster = self.cluster
        claim = cluster.cached_claim(key)
        if claim is None or not is_claim_for(claim, name):
            return
        pv_name = volume_name_for(claim)
        if cluster.cached_volume(pv_name) is not None:
            return
        class_name = claim_class(claim)
        storage_class = cluster.cached_class(class_name)
        if storage_class is None:
            raise RetryLaterError(f"StorageClass {class_name!r} not found (yet)")
        if storage_class.get("provisioner") != name:
            return
        if waits_for_consumer(claim, storage_class):
            return
        logger = log.bind(claim=key, pv=pv_name, storage_class=class_name)
        if is_block_claim(claim) and not self.backend.supports_block:
            cluster.record_event(
                claim,
                WARNING,
                "ProvisioningFailed",
                f"{name} does not support block volume provisioning",
            )
            return
        source = self._clone_source(claim, class_name)
        started = time.monotonic()
        if source is None or self.clones is None or not self._copy_running(pv_name):
            cluster.record_event(
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
            report=lambda reason, message: cluster.record_event(claim, NORMAL, reason, message),
        )
        try:
            if source is not None and self.clones is not None:
                body = self.clones.volume_for(request, source, class_name)
            else:
                body = self.backend.provision(request)
        except CloneInProgressError:
            # Queued again by the copy pool once the copy ends; no backoff meanwhile.
            return
        except BackendError as error:
            metrics.PROVISION_FAILED_TOTAL.labels(class_name).inc()
            logger.warning("provisioning failed", error=str(error))
            cluster.record_event(
                claim,
                WARNING,
                "ProvisioningFailed",
                f'failed to provision volume with StorageClass "{class_name}": {error}',
            )
            raise
        if self.stages is not None:
            self.stages.made(key)
        volume = complete_volume(body, claim, class_name=class_name, provisioner_name=name)
        self._save_volume(volume, claim, class_name, logger)
        if self.stages is not None:
            self.stages.saved(key)
        metrics.PROVISION_TOTAL.labels(class_name).inc()
        metrics.PROVISION_DURATION.labels(class_name).observe(time.monotonic() - started)
        logger.info("volume provisioned", path=(volume["spec"].get("nfs") or {}).get("path"))
        cluster.record_event(
            claim, NORMAL, "ProvisioningSucceeded", f"Successfully provisioned volume {pv_name}"
        )

    def _clone_source(self, claim: JsonObject, class_name: str) -> JsonObject | None:
        """The PV to copy if the claim is a clone; refusals are events and retried later."""
        foreign = foreign_data_source(claim)
        wanted = claim_source(claim)
        problem: str | None = None
        volume: JsonObject | None = None
        if foreign is not None:
            problem = f"data source of kind {foreign} is not supported; only PersistentVolumeClaim"
        elif wanted is not None:
            try:
                volume = check_source(self.cluster, claim, wanted, self.settings.provisioner_name)
            except CloneRefusedError as error:
                problem = str(error)
            if problem is None and self.clones is None:
                problem = "this storage backend cannot clone volumes"
        if problem is None:
            return volume
        metrics.PROVISION_FAILED_TOTAL.labels(class_name).inc()
        self.cluster.record_event(
            claim,
            WARNING,
            "ProvisioningFailed",
            f'failed to provision volume with StorageClass "{class_name}": {problem}',
        )
        raise RetryLaterError(problem)

    def _copy_running(self, pv_name: str) -> bool:
        return self.clones is not None and self.clones.pool.is_known(pv_name)

    def _save_volume(
        self, volume: JsonObject, claim: JsonObject, class_name: str, logger: Any
    ) -> None:
        delay = self.settings.save_retry_delay
        last_error: ApiError | None = None
        for attempt in range(1, self.settings.save_attempts + 1):
            try:
                self.cluster.create_volume(volume)
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
        pv_name = object_name(volume)
        prefix = (
            f'failed to provision volume with StorageClass "{class_name}": '
            f'error saving PersistentVolume "{pv_name}": {last_error}'
        )
        if last_error is not None and last_error.is_transient:
            # The API server is unreachable or overloaded, not refusing this PV: keep the
            # storage, and the next attempt reuses it under the same deterministic name.
            self.cluster.record_event(claim, WARNING, "ProvisioningFailed", f"{prefix}; will retry")
            raise RetryLaterError(f"could not save PersistentVolume {pv_name}: {last_error}")
        self.cluster.record_event(
            claim, WARNING, "ProvisioningFailed", f"{prefix}. Deleting the volume."
        )
        try:
            self.backend.discard(volume)
        except BackendError as cleanup_error:
            self.cluster.record_event(
                claim,
                WARNING,
                "ProvisioningCleanupFailed",
                f'failed to clean up the storage of volume "{pv_name}": {cleanup_error}',
            )
        raise RetryLaterError(f"could not save PersistentVolume {pv_name}: {last_error}")
