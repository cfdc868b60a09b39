"""The volume reconciler: a released PV of ours loses its storage as its class says, then goes."""

from __future__ import annotations

import time

import structlog

from nfs_provisioner.controller import metrics
from nfs_provisioner.controller.predicates import should_delete_volume
from nfs_provisioner.controller.seam import Cluster
from nfs_provisioner.controller.settings import ControllerSettings
from nfs_provisioner.kube import NORMAL, WARNING, ApiError
from nfs_provisioner.objects import object_uid, spec_of
from nfs_provisioner.storage import BackendError, DeleteOutcome, Provisioner

log = structlog.get_logger(__name__)


class VolumeReconciler:
    """Decides, for one PV name, whether to delete, and does it.

    Ignored: not in the cache, or (in the cache or re-read from the API server) not Released,
    not reclaim policy Delete, being deleted, or provisioned by somebody else. Deleted: storage
    removed, archived, kept or already gone, then the PV object. Retried with a
    VolumeFailedDelete event: the backend refused or failed, or the PV could not be deleted.
    """

    def __init__(
        self, cluster: Cluster, backend: Provisioner, settings: ControllerSettings
    ) -> None:
        self.cluster = cluster
        self.backend = backend
        self.settings = settings

    def sync(self, name: str) -> None:
        provisioner = self.settings.provisioner_name
        cluster = self.cluster
        cached = cluster.cached_volume(name)
        if cached is None or not should_delete_volume(cached, provisioner):
            return
        try:
            volume = cluster.get_volume(name)
        except ApiError as error:
            if error.is_not_found:
                return
            raise
        if not should_delete_volume(volume, provisioner):
            return
        class_name = str(spec_of(volume).get("storageClassName") or "")
        storage_class = cluster.cached_class(class_name) if class_name else None
        logger = log.bind(pv=name, storage_class=class_name)
        started = time.monotonic()
        try:
            outcome = self.backend.delete(volume, storage_class)
        except BackendError as error:
            metrics.DELETE_FAILED_TOTAL.labels(class_name).inc()
            logger.warning("deleting the volume's storage failed", error=str(error))
            cluster.record_event(volume, WARNING, "VolumeFailedDelete", str(error))
            raise
        try:
            cluster.delete_volume(name, uid=object_uid(volume))
        except ApiError as error:
            if not error.is_not_found:
                metrics.DELETE_FAILED_TOTAL.labels(class_name).inc()
                cluster.record_event(
                    volume,
                    WARNING,
                    "VolumeFailedDelete",
                    f"failed to delete PersistentVolume {name}: {error}",
                )
                raise
        if outcome is DeleteOutcome.SHARED:
            cluster.record_event(
                volume,
                NORMAL,
                "VolumeStorageKept",
                "the volume's storage is kept: other PersistentVolumes still use it",
            )
        if outcome is DeleteOutcome.ALREADY_GONE:
            cluster.record_event(
                volume,
                WARNING,
                "VolumeStorageMissing",
                "the volume's storage was already gone from the export when it was released; "
                "nothing was archived or removed: check who deletes directories on the export",
            )
        metrics.DELETE_TOTAL.labels(class_name).inc()
        metrics.DELETE_DURATION.labels(class_name).observe(time.monotonic() - started)
        logger.info("volume deleted", storage=outcome.value)
