"""Reads the operator commands make through the API layer: versions and filtered lists."""

from __future__ import annotations

import re

from nfs_provisioner.kube import ApiClient, JsonObject
from nfs_provisioner.kube.paths import STORAGE_CLASSES, VOLUMES, namespaced
from nfs_provisioner.kube.paths import claim as claim_path

__all__ = [
    "STORAGE_CLASSES",
    "VOLUMES",
    "claim_path",
    "list_objects",
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
