"""The claim reconciler: a claim of ours without a PV gets storage and a PV, exactly once."""

from __future__ import annotations

import threading
import time
from typing import Any

import structlog

from nfs_provisioner.controller import metrics
from nfs_provisioner.controller.predicates import complete_volume
from nfs_provisioner.controller.seam import Cluster
from nfs_provisioner.controller.settings import ControllerSettings, RetryLaterError
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
from nfs_provisioner.storage import BackendError, Provisioner, ProvisionRequest

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
    ) -> None:
        self.cluster = cluster
        self.backend = backend
        self.settings = settings
        self.stop = stop

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
        started = time.monotonic()
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
            body = self.backend.provision(request)
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
        volume = complete_volume(body, claim, class_name=class_name, provisioner_name=name)
        self._save_volume(volume, claim, class_name, logger)
        metrics.PROVISION_TOTAL.labels(class_name).inc()
        metrics.PROVISION_DURATION.labels(class_name).observe(time.monotonic() - started)
        logger.info("volume provisioned", path=(volume["spec"].get("nfs") or {}).get("path"))
        cluster.record_event(
            claim, NORMAL, "ProvisioningSucceeded", f"Successfully provisioned volume {pv_name}"
        )

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
