"""Pure decisions of the generic controller: which claims and volumes are ours to act on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

JsonObject = Mapping[str, Any]

ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
ANN_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
ANN_BETA_STORAGE_CLASS = "volume.beta.kubernetes.io/storage-class"
WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"


def _metadata(obj: JsonObject) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def object_name(obj: JsonObject) -> str:
    return str(_metadata(obj).get("name", ""))


def object_uid(obj: JsonObject) -> str | None:
    uid = _metadata(obj).get("uid")
    return str(uid) if uid else None


def annotations_of(obj: JsonObject) -> Mapping[str, str]:
    return _metadata(obj).get("annotations") or {}


def volume_name_for(claim: JsonObject) -> str:
    """Deterministic, so a restart or a second instance can never create a second PV."""
    return f"pvc-{_metadata(claim)['uid']}"


def claim_key(claim: JsonObject) -> str:
    metadata = _metadata(claim)
    return f"{metadata.get('namespace')}/{metadata.get('name')}"


def claim_class(claim: JsonObject) -> str:
    spec = claim.get("spec") or {}
    name = spec.get("storageClassName")
    if name is None:
        name = annotations_of(claim).get(ANN_BETA_STORAGE_CLASS, "")
    return str(name or "")


def is_claim_for(claim: JsonObject, provisioner_name: str) -> bool:
    """Unbound, not being deleted, and the PV binder assigned it to this provisioner."""
    if (claim.get("spec") or {}).get("volumeName"):
        return False
    if _metadata(claim).get("deletionTimestamp"):
        return False
    annotations = annotations_of(claim)
    assigned = annotations.get(ANN_STORAGE_PROVISIONER) or annotations.get(
        ANN_BETA_STORAGE_PROVISIONER
    )
    return assigned == provisioner_name


def waits_for_consumer(claim: JsonObject, storage_class: JsonObject) -> bool:
    return storage_class.get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER and not annotations_of(
        claim
    ).get(ANN_SELECTED_NODE)


def is_block_claim(claim: JsonObject) -> bool:
    return (claim.get("spec") or {}).get("volumeMode") == "Block"


def should_delete_volume(volume: JsonObject, provisioner_name: str) -> bool:
    if _metadata(volume).get("deletionTimestamp"):
        return False
    if (volume.get("status") or {}).get("phase") != "Released":
        return False
    if (volume.get("spec") or {}).get("persistentVolumeReclaimPolicy") != "Delete":
        return False
    return annotations_of(volume).get(ANN_PROVISIONED_BY) == provisioner_name


def complete_volume(
    body: Mapping[str, Any], claim: JsonObject, *, class_name: str, provisioner_name: str
) -> dict[str, Any]:
    """Add what every provisioned PV carries: its claim, its class, who provisioned it."""
    volume = dict(body)
    metadata = dict(volume.get("metadata") or {})
    metadata["annotations"] = {
        **(metadata.get("annotations") or {}),
        ANN_PROVISIONED_BY: provisioner_name,
    }
    volume["metadata"] = metadata
    claim_metadata = _metadata(claim)
    spec = dict(volume.get("spec") or {})
    spec["claimRef"] = {
        "kind": "PersistentVolumeClaim",
        "apiVersion": "v1",
        "namespace": claim_metadata.get("namespace"),
        "name": claim_metadata.get("name"),
        "uid": claim_metadata.get("uid"),
        "resourceVersion": claim_metadata.get("resourceVersion"),
    }
    spec["storageClassName"] = class_name
    volume["spec"] = spec
    return volume


_CLAIM_METADATA = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "labels",
    "annotations",
    "deletionTimestamp",
)
_VOLUME_METADATA = ("name", "uid", "resourceVersion", "annotations", "deletionTimestamp")


def _pick(section: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: section[key] for key in keys if key in section}


def compact_claim(claim: JsonObject, provisioner_name: str) -> dict[str, Any]:
    """What the cache keeps of a claim: enough to provision or resize it and to reference it.

    Unbound claims that are not (yet) ours keep only their identity; the update that makes one
    ours carries the whole object again. Bound claims keep their size and status, which is
    all a resize needs: whether their volume is ours is the volume cache's to say.
    """
    metadata = _metadata(claim)
    compact: dict[str, Any] = {"kind": "PersistentVolumeClaim", "apiVersion": "v1"}
    spec = claim.get("spec") or {}
    if is_claim_for(claim, provisioner_name):
        compact["metadata"] = _pick(metadata, _CLAIM_METADATA)
        compact["spec"] = spec
    elif spec.get("volumeName"):
        compact["metadata"] = _pick(
            metadata, ("name", "namespace", "uid", "resourceVersion", "deletionTimestamp")
        )
        compact["spec"] = _pick(spec, ("volumeName", "storageClassName", "resources"))
        compact["status"] = claim.get("status") or {}
    else:
        compact["metadata"] = _pick(metadata, ("name", "namespace", "uid", "resourceVersion"))
        compact["spec"] = {}
    return compact


def compact_volume(volume: JsonObject, provisioner_name: str) -> dict[str, Any]:
    """What the cache keeps of a PV: all of ours, the name and NFS source of anybody else's.

    The name answers "does pvc-<uid> exist", which is all the claim side asks; the NFS source
    tells which directory the PV owns, so that no claim is given it.
    """
    metadata = _metadata(volume)
    compact: dict[str, Any] = {"kind": "PersistentVolume", "apiVersion": "v1"}
    if annotations_of(volume).get(ANN_PROVISIONED_BY) != provisioner_name:
        compact["metadata"] = _pick(metadata, ("name", "uid", "resourceVersion"))
        nfs = (volume.get("spec") or {}).get("nfs")
        if nfs:
            compact["spec"] = {"nfs": _pick(nfs, ("server", "path"))}
        return compact
    compact["metadata"] = _pick(metadata, _VOLUME_METADATA)
    compact["spec"] = volume.get("spec") or {}
    compact["status"] = {"phase": (volume.get("status") or {}).get("phase")}
    return compact
