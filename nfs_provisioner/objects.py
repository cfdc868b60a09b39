"""The vocabulary of the Kubernetes objects every layer reads: names, keys, annotations, classes.

Objects stay the API server's plain JSON dicts (fast to decode, nothing to convert); these are
the typed ways to read them, so that no layer needs another layer to know what a claim's class
or a volume's provisioner is. Nothing here does I/O.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any, Final

# An object as read: never changed in place.
JsonObject = Mapping[str, Any]
# An object being built or returned by the API server, free to change.
JsonDict = dict[str, Any]

ANN_STORAGE_PROVISIONER: Final = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER: Final = "volume.beta.kubernetes.io/storage-provisioner"
ANN_SELECTED_NODE: Final = "volume.kubernetes.io/selected-node"
ANN_PROVISIONED_BY: Final = "pv.kubernetes.io/provisioned-by"
ANN_BETA_STORAGE_CLASS: Final = "volume.beta.kubernetes.io/storage-class"
ANN_DEFAULT_CLASS: Final = "storageclass.kubernetes.io/is-default-class"
ANN_BETA_DEFAULT_CLASS: Final = "storageclass.beta.kubernetes.io/is-default-class"
WAIT_FOR_FIRST_CONSUMER: Final = "WaitForFirstConsumer"


def metadata_of(obj: JsonObject) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def spec_of(obj: JsonObject) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def status_of(obj: JsonObject) -> Mapping[str, Any]:
    return obj.get("status") or {}


def annotations_of(obj: JsonObject) -> Mapping[str, str]:
    return metadata_of(obj).get("annotations") or {}


def labels_of(obj: JsonObject) -> Mapping[str, str]:
    return metadata_of(obj).get("labels") or {}


def object_name(obj: JsonObject) -> str:
    return str(metadata_of(obj).get("name", ""))


def object_namespace(obj: JsonObject) -> str:
    return str(metadata_of(obj).get("namespace", ""))


def object_uid(obj: JsonObject) -> str | None:
    uid = metadata_of(obj).get("uid")
    return str(uid) if uid else None


def is_being_deleted(obj: JsonObject) -> bool:
    return bool(metadata_of(obj).get("deletionTimestamp"))


def claim_key(claim: JsonObject) -> str:
    metadata = metadata_of(claim)
    return f"{metadata.get('namespace')}/{metadata.get('name')}"


def volume_name_for(claim: JsonObject) -> str:
    """Deterministic, so a restart or a second instance can never create a second PV."""
    return f"pvc-{metadata_of(claim)['uid']}"


def claim_class(claim: JsonObject) -> str:
    name = spec_of(claim).get("storageClassName")
    if name is None:
        name = annotations_of(claim).get(ANN_BETA_STORAGE_CLASS, "")
    return str(name or "")


def is_claim_for(claim: JsonObject, provisioner_name: str) -> bool:
    """Unbound, not being deleted, and the PV binder assigned it to this provisioner."""
    if spec_of(claim).get("volumeName") or is_being_deleted(claim):
        return False
    annotations = annotations_of(claim)
    assigned = annotations.get(ANN_STORAGE_PROVISIONER) or annotations.get(
        ANN_BETA_STORAGE_PROVISIONER
    )
    return assigned == provisioner_name


def is_block_claim(claim: JsonObject) -> bool:
    return spec_of(claim).get("volumeMode") == "Block"


def waits_for_consumer(claim: JsonObject, storage_class: JsonObject) -> bool:
    return storage_class.get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER and not (
        annotations_of(claim).get(ANN_SELECTED_NODE)
    )


def provisioned_by(volume: JsonObject) -> str | None:
    return annotations_of(volume).get(ANN_PROVISIONED_BY)


def api_time(when: datetime.datetime | None = None, *, micro: bool = False) -> str:
    """A metav1.Time ("2026-01-02T03:04:05Z"), or with micro a metav1.MicroTime; now by default."""
    moment = (when or datetime.datetime.now(datetime.UTC)).astimezone(datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def new_claim(
    name: str,
    *,
    storage_class: str | None = None,
    size: str = "1Mi",
    access_modes: Sequence[str] = ("ReadWriteMany",),
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    extra_spec: Mapping[str, Any] | None = None,
) -> JsonDict:
    """The manifest of a new claim; without storage_class the cluster's default class applies."""
    spec: JsonDict = {
        "accessModes": list(access_modes),
        "resources": {"requests": {"storage": size}},
    }
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    spec.update(extra_spec or {})
    metadata: JsonDict = {"name": name}
    if labels:
        metadata["labels"] = dict(labels)
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata, "spec": spec}
