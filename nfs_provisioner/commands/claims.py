"""Which Pending claims adoption moves, and the manifest a moved claim is re-created from.

Pure functions over the JSON objects of the API server; ``adopt`` does the I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from nfs_provisioner.objects import (
    ANN_BETA_DEFAULT_CLASS,
    ANN_BETA_STORAGE_CLASS,
    ANN_BETA_STORAGE_PROVISIONER,
    ANN_DEFAULT_CLASS,
    ANN_SELECTED_NODE,
    ANN_STORAGE_PROVISIONER,
    JsonObject,
    annotations_of,
    claim_class,
    metadata_of,
    spec_of,
    status_of,
)

NO_PROVISIONER = "kubernetes.io/no-provisioner"
ANN_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# Recorded in backup files only: the class the claim was being moved to.
ANN_BACKUP_TARGET = "nfs-provisioner/adopt-storage-class"
# Set by the PV binder, the scheduler, the resizer or CSI migration for the old object; on a
# new object they would be stale or wrong (a provisioner or node chosen for another class).
_NOT_CARRIED_OVER = frozenset(
    {
        ANN_STORAGE_PROVISIONER,
        ANN_BETA_STORAGE_PROVISIONER,
        ANN_SELECTED_NODE,
        ANN_BETA_STORAGE_CLASS,
        ANN_LAST_APPLIED,
        ANN_BACKUP_TARGET,
        "pv.kubernetes.io/bind-completed",
        "pv.kubernetes.io/bound-by-controller",
        "pv.kubernetes.io/migrated-to",
        "volume.beta.kubernetes.io/migrated-to",
        "volume.kubernetes.io/storage-resizer",
    }
)
# KEP-3333: from 1.28 the PV binder gives claims without a class the default class later.
_RETROACTIVE_DEFAULT_SINCE = (1, 28)


class Action(StrEnum):
    RECREATE = "re-create"
    SET_CLASS = "set class"
    CLUSTER = "assigned by the cluster"
    SKIP = "skip"


@dataclass(frozen=True)
class ClusterView:
    classes: Mapping[str, JsonObject]
    retroactive_default: bool

    @property
    def default_class(self) -> str | None:
        """The class the cluster gives a claim without one: the newest default, like kube."""
        names = default_class_names(self.classes)
        return names[0] if names else None


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    new_class: str


def assigns_default_retroactively(version: tuple[int, int] | None) -> bool:
    # An unknown version counts as new: then adopt waits instead of deleting anything.
    return version is None or version >= _RETROACTIVE_DEFAULT_SINCE


def is_default_class(storage_class: JsonObject) -> bool:
    annotations = annotations_of(storage_class)
    return "true" in (annotations.get(ANN_DEFAULT_CLASS), annotations.get(ANN_BETA_DEFAULT_CLASS))


def default_class_names(classes: Mapping[str, JsonObject]) -> list[str]:
    """Default classes, newest first (ties by name): the first is the one Kubernetes uses."""
    defaults = [c for c in classes.values() if is_default_class(c)]
    defaults.sort(key=lambda c: str(metadata_of(c).get("name", "")))
    defaults.sort(key=lambda c: str(metadata_of(c).get("creationTimestamp", "")), reverse=True)
    return [str(c["metadata"]["name"]) for c in defaults]


def has_class(claim: JsonObject) -> bool:
    """False when neither ``spec.storageClassName`` nor the beta annotation is set."""
    spec = claim.get("spec") or {}
    return spec.get("storageClassName") is not None or ANN_BETA_STORAGE_CLASS in annotations_of(
        claim
    )


def class_label(claim: JsonObject) -> str:
    if not has_class(claim):
        return "<unset>"
    return claim_class(claim) or '""'


def is_waiting(claim: JsonObject) -> bool:
    """Pending, unbound and not being deleted: the only claims adoption may touch."""
    metadata = claim.get("metadata") or {}
    return (
        status_of(claim).get("phase") == "Pending"
        and not spec_of(claim).get("volumeName")
        and not metadata.get("deletionTimestamp")
    )


def is_bound(claim: JsonObject) -> bool:
    return status_of(claim).get("phase") == "Bound"


def users_of(claim: JsonObject, pods: Sequence[JsonObject]) -> list[JsonObject]:
    """Pods in the claim's namespace with a volume from it (directly or as an ephemeral one)."""
    metadata = claim.get("metadata") or {}
    users = []
    for pod in pods:
        pod_metadata = pod.get("metadata") or {}
        if pod_metadata.get("namespace") != metadata.get("namespace"):
            continue
        for volume in spec_of(pod).get("volumes") or []:
            source = volume.get("persistentVolumeClaim") or {}
            ephemeral = volume.get("ephemeral") is not None
            claim_name = (
                f"{pod_metadata.get('name')}-{volume.get('name')}"
                if ephemeral
                else source.get("claimName")
            )
            if claim_name == metadata.get("name"):
                users.append(pod)
                break
    return users


def decide(
    claim: JsonObject,
    view: ClusterView,
    target: str,
    from_classes: Collection[str],
    users: Sequence[JsonObject],
) -> Decision | None:
    """What adoption does with a claim; None when the claim is not one it looks at."""
    if not is_waiting(claim):
        return None
    action = Action.RECREATE
    if not has_class(claim):
        default = view.default_class
        if view.retroactive_default and default is not None:
            if default == target:
                return Decision(
                    Action.CLUSTER, "no class: the cluster gives it the default", target
                )
            return Decision(
                Action.CLUSTER,
                f"no class: the cluster gives it the default class {default}; "
                f"move it later with --from-class {default}",
                default,
            )
        if view.retroactive_default:
            action, reason = Action.SET_CLASS, "no class (can be set in place)"
        else:
            reason = "no class (this Kubernetes version cannot set it in place)"
    else:
        current = claim_class(claim)
        storage_class = view.classes.get(current)
        if current in from_classes:
            reason = f"class {current} (--from-class)"
        elif current == "":
            reason = 'class "": only pre-made volumes'
        elif storage_class is None:
            reason = f"class {current} does not exist"
        elif storage_class.get("provisioner") == NO_PROVISIONER:
            reason = f"class {current} has no provisioner"
        else:
            return None
    blocker = _blocker(claim, action, users)
    if blocker:
        return Decision(Action.SKIP, blocker, target)
    return Decision(action, reason, target)


def _blocker(claim: JsonObject, action: Action, users: Sequence[JsonObject]) -> str | None:
    spec = claim.get("spec") or {}
    if spec.get("selector"):
        return "has spec.selector: it waits for a matching pre-made volume"
    if spec.get("volumeMode") == "Block":
        return "volumeMode Block: NFS volumes are filesystems"
    scheduled = sorted(
        str(pod["metadata"]["name"]) for pod in users if spec_of(pod).get("nodeName")
    )
    if action is Action.RECREATE and scheduled:
        # The pvc-protection finalizer keeps a claim that scheduled pods use: deletion
        # would hang until they are gone.
        return f"used by scheduled pod(s) {', '.join(scheduled)}"
    return None


def claim_manifest(claim: JsonObject, target: str) -> dict[str, Any]:
    """The claim to create in place of ``claim``: same request, new class, no server state."""
    metadata = claim.get("metadata") or {}
    new_metadata: dict[str, Any] = {"name": metadata["name"], "namespace": metadata["namespace"]}
    if metadata.get("labels"):
        new_metadata["labels"] = dict(metadata["labels"])
    annotations = {
        key: value for key, value in annotations_of(claim).items() if key not in _NOT_CARRIED_OVER
    }
    if annotations:
        new_metadata["annotations"] = annotations
    if metadata.get("ownerReferences"):
        # Claims of ephemeral volumes and StatefulSets with a retention policy are owned.
        new_metadata["ownerReferences"] = copy.deepcopy(metadata["ownerReferences"])
    spec = {
        key: copy.deepcopy(value) for key, value in spec_of(claim).items() if key != "volumeName"
    }
    spec["storageClassName"] = target
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": new_metadata,
        "spec": spec,
    }
