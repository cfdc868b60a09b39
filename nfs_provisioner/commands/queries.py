"""Reads the operator commands make through the API layer: versions and filtered lists."""

from __future__ import annotations

import re

from nfs_provisioner.kube import ApiClient, ApiError, JsonObject
from nfs_provisioner.kube.paths import NAMESPACES, STORAGE_CLASSES, VOLUMES, named, namespaced
from nfs_provisioner.kube.paths import claim as claim_path

__all__ = [
    "STORAGE_CLASSES",
    "VOLUMES",
    "claim_path",
    "list_objects",
    "namespace_exists",
    "namespaced",
    "server_version",
]


def list_objects(
    api: ApiClient,
    path: str,
    *,
    label_selector: str | None = None,
    field_selector: str | None = None,
) -> list[JsonObject]:
    items, _ = api.list_all(path, label_selector=label_selector, field_selector=field_selector)
    return list(items)


def server_version(api: ApiClient) -> tuple[int, int] | None:
    """(major, minor) of the API server; None when it reports something unparseable."""
    info = api.get("/version")
    # Some distributions report minor versions such as "28+".
    major = re.match(r"\d+", str(info.get("major", "")))
    minor = re.match(r"\d+", str(info.get("minor", "")))
    if major is None or minor is None:
        return None
    return int(major.group()), int(minor.group())


def namespace_exists(api: ApiClient, namespace: str) -> bool:
    """False only when the API server says the namespace is not there; a caller not allowed to
    read namespaces gets True (no evidence either way)."""
    try:
        api.get(named(NAMESPACES, namespace))
    except ApiError as error:
        if error.is_not_found:
            return False
        if error.status == 403:
            return True
        raise
    return True
