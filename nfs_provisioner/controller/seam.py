"""What the reconcilers need of the cluster, as one small protocol, and its real implementation.

Reconcilers read claims, volumes and classes from the caches, write through a handful of calls
and record events; nothing else. Unit tests pass an in-memory fake of :class:`Cluster`
(``tests/unit/controller/fakes.py``); the daemon passes :class:`KubeCluster`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from nfs_provisioner.kube import ApiClient, EventRecorder, Informer, JsonObject, resources


class Cluster(Protocol):
    def cached_claim(self, key: str) -> JsonObject | None:
        """The claim "namespace/name" as the cache has it."""

    def cached_volume(self, name: str) -> JsonObject | None: ...

    def cached_class(self, name: str) -> JsonObject | None: ...

    def get_volume(self, name: str) -> JsonObject:
        """The PV as the API server has it now (ApiError 404 if it is gone)."""

    def create_volume(self, body: JsonObject) -> JsonObject: ...

    def delete_volume(self, name: str, *, uid: str | None) -> None:
        """Delete the PV, only if it still has this uid."""

    def patch_volume(self, name: str, patch: JsonObject) -> JsonObject: ...

    def patch_claim_status(self, namespace: str, name: str, patch: JsonObject) -> JsonObject: ...

    def record_event(
        self, involved: JsonObject, event_type: str, reason: str, message: str
    ) -> None:
        """Queue an event; never raises."""


class KubeCluster:
    """The cluster through the controller's informers, the API client and the event recorder."""

    def __init__(
        self,
        api: ApiClient,
        events: EventRecorder,
        *,
        claims: Informer,
        volumes: Informer,
        classes: Informer,
        fence: Callable[[], None] = lambda: None,
    ) -> None:
        self.api = api
        self.events = events
        self.claims = claims
        self.volumes = volumes
        self.classes = classes
        # Called before and after every write: does not return once this instance may no
        # longer act. After: a write the process was stopped in (SIGSTOP) while another
        # instance took the lease ends the process before it goes on to act on its result.
        self.fence = fence

    def cached_claim(self, key: str) -> JsonObject | None:
        return self.claims.get(key)

    def cached_volume(self, name: str) -> JsonObject | None:
        return self.volumes.get(name)

    def cached_class(self, name: str) -> JsonObject | None:
        return self.classes.get(name)

    def get_volume(self, name: str) -> JsonObject:
        return resources.get_volume(self.api, name)

    def create_volume(self, body: JsonObject) -> JsonObject:
        self.fence()
        created = resources.create_volume(self.api, body)
        self.fence()
        return created

    def delete_volume(self, name: str, *, uid: str | None) -> None:
        self.fence()
        resources.delete_volume(self.api, name, uid=uid)
        self.fence()

    def patch_volume(self, name: str, patch: JsonObject) -> JsonObject:
        self.fence()
        patched = resources.patch_volume(self.api, name, patch)
        self.fence()
        return patched

    def patch_claim_status(self, namespace: str, name: str, patch: JsonObject) -> JsonObject:
        self.fence()
        patched = resources.patch_claim_status(self.api, namespace, name, patch)
        self.fence()
        return patched

    def record_event(
        self, involved: JsonObject, event_type: str, reason: str, message: str
    ) -> None:
        self.events.record(involved, event_type, reason, message)
