"""The resize reconciler: a bound claim of ours that asks for more gets it, as a resizer would."""

from __future__ import annotations

import structlog

from nfs_provisioner.controller import metrics
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
from nfs_provisioner.controller.seam import Cluster
from nfs_provisioner.controller.settings import ControllerSettings, RetryLaterError
from nfs_provisioner.kube import NORMAL, WARNING, ApiError
from nfs_provisioner.objects import ANN_PROVISIONED_BY, annotations_of, metadata_of, spec_of
from nfs_provisioner.storage import BackendError, Expander, Provisioner

log = structlog.get_logger(__name__)


class ResizeReconciler:
    """Decides, for one claim key, whether to resize its volume, and does it.

    Ignored: no resize asked, the volume is not ours or not bound to this claim, nothing to
    do. Refused with a VolumeResizeFailed event: a shrink, a class without
    allowVolumeExpansion, a backend that cannot expand. Finished: the claim's status (and the
    PV's capacity) say the new size. Retried: the claim changed meanwhile, or a failure.
    """

    def __init__(
        self, cluster: Cluster, backend: Provisioner, settings: ControllerSettings
    ) -> None:
        self.cluster = cluster
        self.backend = backend
        self.settings = settings

    def sync(self, key: str) -> None:
        cluster = self.cluster
        claim = cluster.cached_claim(key)
        if claim is None or not needs_resize(claim):
            return
        pv_name = str(spec_of(claim).get("volumeName"))
        volume = cluster.cached_volume(pv_name)
        if volume is None or annotations_of(volume).get(ANN_PROVISIONED_BY) != (
            self.settings.provisioner_name
        ):
            return
        claim_ref = spec_of(volume).get("claimRef") or {}
        if claim_ref.get("uid") != metadata_of(claim).get("uid"):
            return
        plan = plan_resize(claim, volume)
        if plan.action is ResizeAction.NONE or plan.size is None:
            return
        class_name = str(spec_of(volume).get("storageClassName") or "")
        logger = log.bind(claim=key, pv=pv_name, storage_class=class_name)
        requested = storage_request(claim)
        refusal = self._refusal(plan.action, plan.size, requested, class_name)
        if refusal is not None:
            metrics.VOLUME_RESIZES_TOTAL.labels("refused").inc()
            logger.warning("resize refused", reason=refusal)
            cluster.record_event(claim, WARNING, "VolumeResizeFailed", refusal)
            return
        namespace, name = key.split("/", 1)
        capacity = plan.size
        try:
            if plan.action is ResizeAction.EXPAND:
                assert isinstance(self.backend, Expander)  # _refusal checked it
                claim = cluster.patch_claim_status(
                    namespace, name, resize_started_patch(claim, plan.size)
                )
                cluster.record_event(
                    claim, NORMAL, "Resizing", f"External resizer is resizing volume {pv_name}"
                )
                capacity = self.backend.expand(volume, plan.size)
                if capacity != volume_capacity(volume):
                    cluster.patch_volume(pv_name, volume_capacity_patch(capacity))
            cluster.patch_claim_status(namespace, name, resize_finished_patch(claim, capacity))
        except BackendError as error:
            metrics.VOLUME_RESIZES_TOTAL.labels("failed").inc()
            logger.warning("resize failed", error=str(error))
            cluster.record_event(claim, WARNING, "VolumeResizeFailed", str(error))
            raise
        except ApiError as error:
            if error.is_conflict or error.is_not_found:
                # The claim changed (or went) meanwhile; the cache has or will have the news.
                raise RetryLaterError(f"claim {key} changed during its resize: {error}") from error
            metrics.VOLUME_RESIZES_TOTAL.labels("failed").inc()
            cluster.record_event(
                claim, WARNING, "VolumeResizeFailed", f"resizing volume {pv_name} failed: {error}"
            )
            raise
        metrics.VOLUME_RESIZES_TOTAL.labels("completed").inc()
        logger.info("volume resized", capacity=capacity, requested=requested)
        cluster.record_event(claim, NORMAL, "VolumeResizeSuccessful", "Resize volume succeeded")

    def _refusal(
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
        storage_class = self.cluster.cached_class(class_name) if class_name else None
        if storage_class is None or storage_class.get("allowVolumeExpansion") is not True:
            return (
                f'StorageClass "{class_name}" does not allow volume expansion: set '
                "allowVolumeExpansion: true in the class to grow its volumes"
            )
        if not isinstance(self.backend, Expander):
            return f"{self.settings.provisioner_name} cannot expand volumes"
        return None
