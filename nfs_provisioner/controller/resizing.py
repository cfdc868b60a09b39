"""Pure decisions and patches of volume expansion, as the CSI external-resizer makes them.

kube-controller-manager's expand controller leaves in-tree NFS volumes alone ("waiting for an
external controller to expand this PVC"), and no external-resizer serves them either: this
controller is that resizer. For a volume that needs no expansion on the node it does what the
external-resizer does: mark the claim's status in progress (``allocatedResources``, a
``Resizing`` condition), grow the PV's capacity, then record the new capacity in the claim's
status and clear the resize conditions.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from nfs_provisioner.controller.quantities import parse_quantity
from nfs_provisioner.objects import JsonObject, api_time, metadata_of, spec_of

CONTROLLER_RESIZE_IN_PROGRESS: Final = "ControllerResizeInProgress"
RESIZING: Final = "Resizing"
# Conditions a resizer or kubelet sets while a resize is under way; none survives its end.
_RESIZE_CONDITIONS: Final = frozenset(
    {RESIZING, "FileSystemResizePending", "ControllerResizeError", "NodeResizeError"}
)


class ResizeAction(enum.Enum):
    NONE = "none"
    # Grow the volume to ResizePlan.size, then record it in the claim.
    EXPAND = "expand"
    # The volume already has ResizePlan.size; only the claim's status is behind.
    FINISH = "finish"
    # The claim asks for less than the volume has: volumes never shrink.
    REFUSE_SHRINK = "refuse shrink"


@dataclass(frozen=True)
class ResizePlan:
    action: ResizeAction
    size: str | None = None


def storage_request(claim: JsonObject) -> str | None:
    spec = claim.get("spec") or {}
    value = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    return str(value) if value is not None else None


def _status(claim: JsonObject) -> Mapping[str, Any]:
    return claim.get("status") or {}


def status_capacity(claim: JsonObject) -> str | None:
    value = (_status(claim).get("capacity") or {}).get("storage")
    return str(value) if value is not None else None


def volume_capacity(volume: JsonObject) -> str | None:
    value = (spec_of(volume).get("capacity") or {}).get("storage")
    return str(value) if value is not None else None


def _size(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        return parse_quantity(text)
    except ValueError:
        return None


def needs_resize(claim: JsonObject) -> bool:
    """A bound claim, not being deleted, that asks for more than its status records."""
    if not spec_of(claim).get("volumeName"):
        return False
    if metadata_of(claim).get("deletionTimestamp"):
        return False
    request, recorded = _size(storage_request(claim)), _size(status_capacity(claim))
    return request is not None and recorded is not None and request > recorded


def plan_resize(claim: JsonObject, volume: JsonObject) -> ResizePlan:
    """What to do for a claim bound to volume; the caller has checked that they belong together.

    The API server lets a request fall back only to above status.capacity (to recover from a
    failed expansion), so a request below the volume's capacity reaches here only when the PV
    grew without the claim's status following; then the claim is refused, not the volume shrunk.
    """
    if not needs_resize(claim):
        return ResizePlan(ResizeAction.NONE)
    request = _size(storage_request(claim))
    capacity_text = volume_capacity(volume)
    capacity = _size(capacity_text)
    if request is None or capacity is None:
        return ResizePlan(ResizeAction.NONE)
    status = _status(claim)
    allocated = _size((status.get("allocatedResources") or {}).get("storage"))
    in_progress = (status.get("allocatedResourceStatuses") or {}).get(
        "storage"
    ) == CONTROLLER_RESIZE_IN_PROGRESS
    if in_progress and allocated is not None and allocated <= capacity:
        # An expansion of ours reached the PV but not the claim (a crash, a lost response):
        # finish it as the external-resizer does, whatever the request became since.
        return ResizePlan(ResizeAction.FINISH, capacity_text)
    if request < capacity:
        return ResizePlan(ResizeAction.REFUSE_SHRINK, capacity_text)
    if request == capacity:
        return ResizePlan(ResizeAction.FINISH, capacity_text)
    return ResizePlan(ResizeAction.EXPAND, storage_request(claim))


def _other_conditions(claim: JsonObject) -> list[Any]:
    return [
        condition
        for condition in _status(claim).get("conditions") or []
        if condition.get("type") not in _RESIZE_CONDITIONS
    ]


def _guarded(claim: JsonObject, status: dict[str, Any]) -> dict[str, Any]:
    # The resourceVersion makes the patch fail with a conflict if the claim changed meanwhile.
    version = metadata_of(claim).get("resourceVersion")
    return {"metadata": {"resourceVersion": version}, "status": status}


def resize_started_patch(claim: JsonObject, size: str) -> dict[str, Any]:
    """Merge patch of the claim's status: an expansion to size is under way."""
    conditions = [
        *_other_conditions(claim),
        {"type": RESIZING, "status": "True", "lastTransitionTime": api_time()},
    ]
    return _guarded(
        claim,
        {
            "conditions": conditions,
            "allocatedResources": {"storage": size},
            "allocatedResourceStatuses": {"storage": CONTROLLER_RESIZE_IN_PROGRESS},
        },
    )


def resize_finished_patch(claim: JsonObject, capacity: str) -> dict[str, Any]:
    """Merge patch of the claim's status: the volume has capacity, no resize is under way."""
    return _guarded(
        claim,
        {
            "capacity": {"storage": capacity},
            # A merge patch replaces a list whole; null removes the field when nothing is left.
            "conditions": _other_conditions(claim) or None,
            "allocatedResourceStatuses": {"storage": None},
        },
    )


def volume_capacity_patch(capacity: str) -> dict[str, Any]:
    return {"spec": {"capacity": {"storage": capacity}}}
