"""PersistentVolume bodies for NFS directories, and the way back from a PV to its directory."""

import posixpath
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from nfs_provisioner.nfs._paths import quote, split_components, unsafe_reason
from nfs_provisioner.nfs.errors import UnsafePathError, UnsupportedClaimError
from nfs_provisioner.objects import metadata_of, spec_of


def normalize_export_path(export_path: str) -> str:
    """Clean the export path the way Go's filepath.Join does: "/exports/" -> "/exports".

    Kubernetes rejects a relative nfs.path, so a relative export path is a configuration error.
    """
    if not export_path.startswith("/"):
        raise ValueError(f"the NFS export path {quote(export_path)} must be absolute")
    return "/" + "/".join(split_components(posixpath.normpath(export_path)))


def build_persistent_volume(
    *,
    pv_name: str,
    server: str,
    export_path: str,
    directory: PurePosixPath,
    claim: Mapping[str, Any],
    storage_class: Mapping[str, Any],
) -> dict[str, Any]:
    """The PV serving claim from directory; the controller adds claimRef, class and annotations."""
    claim_spec = claim.get("spec") or {}
    storage = ((claim_spec.get("resources") or {}).get("requests") or {}).get("storage")
    if storage is None:
        raise UnsupportedClaimError(
            "claim has no storage request (spec.resources.requests.storage)"
        )
    base = normalize_export_path(export_path).rstrip("/")
    spec: dict[str, Any] = {
        "persistentVolumeReclaimPolicy": storage_class.get("reclaimPolicy") or "Delete",
        "accessModes": list(claim_spec.get("accessModes") or []),
        "capacity": {"storage": storage},
        "nfs": {"server": server, "path": f"{base}/{directory}", "readOnly": False},
        "volumeMode": "Filesystem",
    }
    mount_options = storage_class.get("mountOptions")
    if mount_options:
        spec["mountOptions"] = list(mount_options)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": pv_name},
        "spec": spec,
    }


def local_directory_for(pv: Mapping[str, Any], *, export_path: str) -> PurePosixPath:
    """The PV's directory relative to the export root; refuses anything not strictly below it.

    ".." is refused, never resolved: resolving it lexically could turn a hand-edited PV into a
    path elsewhere on the export, and deletion must only touch what provisioning created.
    """
    name = metadata_of(pv).get("name", "")
    nfs = spec_of(pv).get("nfs") or {}
    path = nfs.get("path")
    export = normalize_export_path(export_path)
    if not isinstance(path, str):
        raise UnsafePathError(
            f"PersistentVolume {quote(name)} has no spec.nfs.path; refusing to touch it"
        )
    describe = f"PersistentVolume {quote(name)} has nfs.path {quote(path)}"
    components = split_components(path)
    export_components = split_components(export)
    if not path.startswith("/") or components[: len(export_components)] != export_components:
        raise UnsafePathError(
            f"{describe}, which is not under the export path {quote(export)}; refusing to touch it"
        )
    relative = components[len(export_components) :]
    if not relative:
        raise UnsafePathError(f"{describe}, which is the export root itself; refusing to touch it")
    reason = unsafe_reason(relative)
    if reason is not None:
        raise UnsafePathError(f"{describe}, which {reason}; refusing to touch it")
    return PurePosixPath(*relative)
