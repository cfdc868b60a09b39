"""Reads the operator commands make through the API layer: versions and filtered lists."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from nfs_provisioner.kube import ApiClient, JsonObject

STORAGE_CLASSES = "/apis/storage.k8s.io/v1/storageclasses"
VOLUMES = "/api/v1/persistentvolumes"
_PAGE_SIZE = 500


def namespaced(resource: str, namespace: str | None) -> str:
    """The collection of a namespaced resource, cluster-wide when ``namespace`` is None."""
    if namespace is None:
        return f"/api/v1/{resource}"
    return f"/api/v1/namespaces/{quote(namespace, safe='')}/{resource}"


def claim_path(namespace: str, name: str) -> str:
    return f"{namespaced('persistentvolumeclaims', namespace)}/{quote(name, safe='')}"


def list_objects(
    api: ApiClient,
    path: str,
    *,
    label_selector: str | None = None,
    field_selector: str | None = None,
) -> list[JsonObject]:
    items: list[JsonObject] = []
    params: dict[str, Any] = {
        "limit": _PAGE_SIZE,
        "labelSelector": label_selector,
        "fieldSelector": field_selector,
    }
    while True:
        page = api.request("GET", path, params=params, timeout=120.0)
        items.extend(page.get("items") or [])
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return items
        params["continue"] = token


def server_version(api: ApiClient) -> tuple[int, int] | None:
    """(major, minor) of the API server; None when it reports something unparseable."""
    info = api.get("/version")
    # Some distributions report minor versions such as "28+".
    major = re.match(r"\d+", str(info.get("major", "")))
    minor = re.match(r"\d+", str(info.get("minor", "")))
    if major is None or minor is None:
        return None
    return int(major.group()), int(minor.group())
