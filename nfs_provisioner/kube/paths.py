"""Every API path the project calls, built in one place; names and namespaces always quoted."""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

CORE: Final = "/api/v1"
STORAGE: Final = "/apis/storage.k8s.io/v1"
COORDINATION: Final = "/apis/coordination.k8s.io/v1"

CLAIMS: Final = f"{CORE}/persistentvolumeclaims"
VOLUMES: Final = f"{CORE}/persistentvolumes"
PODS: Final = f"{CORE}/pods"
STORAGE_CLASSES: Final = f"{STORAGE}/storageclasses"
NAMESPACES: Final = f"{CORE}/namespaces"


def _segment(text: str) -> str:
    return quote(text, safe="")


def named(collection: str, name: str) -> str:
    """One object of a collection path."""
    return f"{collection}/{_segment(name)}"


def namespaced(resource: str, namespace: str | None, *, group: str = CORE) -> str:
    """The collection of a namespaced resource; cluster-wide when namespace is None."""
    if namespace is None:
        return f"{group}/{resource}"
    return f"{group}/namespaces/{_segment(namespace)}/{resource}"


def volume(name: str) -> str:
    return named(VOLUMES, name)


def storage_class(name: str) -> str:
    return named(STORAGE_CLASSES, name)


def claim(namespace: str, name: str) -> str:
    return named(namespaced("persistentvolumeclaims", namespace), name)


def claim_status(namespace: str, name: str) -> str:
    return f"{claim(namespace, name)}/status"


def leases(namespace: str) -> str:
    return namespaced("leases", namespace, group=COORDINATION)


def lease(namespace: str, name: str) -> str:
    return named(leases(namespace), name)


def events(namespace: str) -> str:
    return namespaced("events", namespace)


def event(namespace: str, name: str) -> str:
    return named(events(namespace), name)
