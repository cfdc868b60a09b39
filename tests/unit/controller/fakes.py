"""In-memory stand-ins for the cluster seam and a storage backend, for reconciler unit tests."""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nfs_provisioner.kube import ApiError, JsonObject
from nfs_provisioner.objects import claim_key, object_name
from nfs_provisioner.storage import (
    BackendError,
    CloneProgress,
    CloneReport,
    DeleteOutcome,
    ProvisionRequest,
)

PROVISIONER = "example.com/nfs"


@dataclass(frozen=True)
class Event:
    involved: str
    type: str
    reason: str
    message: str


@dataclass
class FakeCluster:
    """Caches and API server in one: writes land in the store the reads come from.

    ``failures`` queues ApiErrors per call name ("create_volume", "delete_volume", ...): each
    call pops the next one and raises it; an empty queue means success.
    """

    claims: dict[str, JsonObject] = field(default_factory=dict)
    volumes: dict[str, JsonObject] = field(default_factory=dict)
    classes: dict[str, JsonObject] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    failures: dict[str, list[ApiError]] = field(default_factory=dict)

    def add(self, obj: JsonObject) -> JsonObject:
        kind = obj.get("kind")
        if kind == "PersistentVolumeClaim":
            self.claims[claim_key(obj)] = obj
        elif kind == "PersistentVolume":
            self.volumes[object_name(obj)] = obj
        else:
            self.classes[object_name(obj)] = obj
        return obj

    def _call(self, name: str) -> None:
        self.calls.append(name)
        queued = self.failures.get(name)
        if queued:
            raise queued.pop(0)

    def cached_claim(self, key: str) -> JsonObject | None:
        return self.claims.get(key)

    def cached_volume(self, name: str) -> JsonObject | None:
        return self.volumes.get(name)

    def cached_class(self, name: str) -> JsonObject | None:
        return self.classes.get(name)

    def get_volume(self, name: str) -> JsonObject:
        self._call("get_volume")
        if name not in self.volumes:
            raise ApiError(404, "NotFound", f"persistentvolumes {name!r} not found")
        return copy.deepcopy(self.volumes[name])

    def create_volume(self, body: JsonObject) -> JsonObject:
        self._call("create_volume")
        name = object_name(body)
        if name in self.volumes:
            raise ApiError(409, "AlreadyExists", f"persistentvolumes {name!r} already exists")
        self.volumes[name] = copy.deepcopy(body)
        return body

    def delete_volume(self, name: str, *, uid: str | None) -> None:
        self._call("delete_volume")
        if name not in self.volumes:
            raise ApiError(404, "NotFound", f"persistentvolumes {name!r} not found")
        del self.volumes[name]

    def patch_volume(self, name: str, patch: JsonObject) -> JsonObject:
        self._call("patch_volume")
        merged = _merge(self.volumes[name], patch)
        self.volumes[name] = merged
        return merged

    def patch_claim_status(self, namespace: str, name: str, patch: JsonObject) -> JsonObject:
        self._call("patch_claim_status")
        key = f"{namespace}/{name}"
        if key not in self.claims:
            raise ApiError(404, "NotFound", f"persistentvolumeclaims {name!r} not found")
        merged = _merge(self.claims[key], patch)
        self.claims[key] = merged
        return merged

    def record_event(
        self, involved: JsonObject, event_type: str, reason: str, message: str
    ) -> None:
        self.events.append(Event(object_name(involved), event_type, reason, message))

    def reasons(self) -> list[str]:
        return [event.reason for event in self.events]


def _merge(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386)."""
    merged = dict(copy.deepcopy(target))
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@dataclass
class FakeBackend:
    """Records what it was asked; raises what it is told to."""

    supports_block: bool = False
    provision_error: BackendError | None = None
    delete_error: BackendError | None = None
    delete_outcome: DeleteOutcome = DeleteOutcome.REMOVED
    discard_error: BackendError | None = None
    reports: list[tuple[str, str]] = field(default_factory=list)
    provisioned: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    discarded: list[str] = field(default_factory=list)

    def provision(self, request: ProvisionRequest) -> dict[str, Any]:
        if self.provision_error is not None:
            raise self.provision_error
        self.provisioned.append(request.pv_name)
        for reason, message in self.reports:
            request.report(reason, message)
        return {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": request.pv_name},
            "spec": {"nfs": {"server": "nfs", "path": f"/srv/{request.pv_name}"}},
        }

    def delete(
        self, pv: Mapping[str, Any], storage_class: Mapping[str, Any] | None
    ) -> DeleteOutcome:
        if self.delete_error is not None:
            raise self.delete_error
        self.deleted.append(object_name(pv))
        return self.delete_outcome

    def discard(self, pv: Mapping[str, Any]) -> DeleteOutcome:
        if self.discard_error is not None:
            raise self.discard_error
        self.discarded.append(object_name(pv))
        return DeleteOutcome.REMOVED


@dataclass
class ExpandingBackend(FakeBackend):
    expanded: list[tuple[str, str]] = field(default_factory=list)
    expand_error: BackendError | None = None

    def expand(self, pv: Mapping[str, Any], requested: str) -> str:
        if self.expand_error is not None:
            raise self.expand_error
        self.expanded.append((object_name(pv), requested))
        return requested


def storage_class(
    name: str = "nfs", provisioner: str = PROVISIONER, **fields: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name},
        "provisioner": provisioner,
        **fields,
    }


def claim(
    name: str = "data",
    *,
    uid: str = "0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9",
    class_name: str = "nfs",
    provisioner: str | None = PROVISIONER,
    annotations: Mapping[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A claim the PV binder has handed to provisioner (None: to nobody yet)."""
    metadata_annotations = dict(annotations or {})
    if provisioner is not None:
        metadata_annotations["volume.kubernetes.io/storage-provisioner"] = provisioner
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": uid,
            "resourceVersion": "7",
            "annotations": metadata_annotations,
        },
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "resources": {"requests": {"storage": "1Gi"}},
            "storageClassName": class_name,
            **spec,
        },
    }


def volume(
    name: str = "pvc-1",
    *,
    phase: str = "Released",
    policy: str = "Delete",
    provisioned_by: str = PROVISIONER,
    class_name: str = "nfs",
    **metadata: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "annotations": {"pv.kubernetes.io/provisioned-by": provisioned_by},
            **metadata,
        },
        "spec": {
            "persistentVolumeReclaimPolicy": policy,
            "storageClassName": class_name,
            "capacity": {"storage": "1Gi"},
            "nfs": {"server": "nfs", "path": f"/srv/{name}"},
        },
        "status": {"phase": phase},
    }


@dataclass
class CloningBackend(FakeBackend):
    """Copies nothing; each clone waits for `release` (set: at once) and reports progress."""

    release: threading.Event = field(default_factory=threading.Event)
    clone_error: BackendError | None = None
    cloned: list[tuple[str, str]] = field(default_factory=list)
    progress_steps: tuple[CloneProgress, ...] = ()

    def clone(
        self, request: ProvisionRequest, source: Mapping[str, Any], progress: CloneReport
    ) -> dict[str, Any]:
        for step in self.progress_steps:
            progress(step)
        if not self.release.wait(10):
            raise BackendError("the test never released the clone")
        if self.clone_error is not None:
            raise self.clone_error
        self.cloned.append((request.pv_name, object_name(source)))
        return {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": request.pv_name},
            "spec": {"nfs": {"server": "nfs", "path": f"/srv/{request.pv_name}"}},
        }


@dataclass
class FakeLeaseApi:
    """The few API calls leader election makes, on one in-memory Lease.

    While ``stalled`` is set, every call hangs as on a connection that stopped moving: for its
    ``timeout`` (then a transport error, as urllib3 gives), or, for a call that passes none, for
    the client's 30 s default. ``timeouts`` records what each call was given.
    """

    lease: JsonObject | None = None
    stalled: threading.Event = field(default_factory=threading.Event)
    timeouts: list[float] = field(default_factory=list)
    _version: int = 0
    _never: threading.Event = field(default_factory=threading.Event)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> JsonObject:
        self.timeouts.append(timeout)
        if self.stalled.is_set():
            self._never.wait(timeout)
            raise ApiError(0, "TransportError", f"{method} {path}: read timed out")
        if method == "GET":
            if self.lease is None:
                raise ApiError(404, "NotFound", "lease not found")
            return copy.deepcopy(self.lease)
        if method == "POST" and self.lease is not None:
            raise ApiError(409, "AlreadyExists", "lease exists")
        if method == "PUT":
            assert self.lease is not None
            current = self.lease["metadata"]["resourceVersion"]
            if body["metadata"].get("resourceVersion") != current:
                raise ApiError(409, "Conflict", "the object has been modified")
        self._version += 1
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = str(self._version)
        return copy.deepcopy(self.lease)

    def get(self, path: str) -> JsonObject:
        return self.request("GET", path)

    def create(self, path: str, body: JsonObject) -> JsonObject:
        return self.request("POST", path, body=body)

    def replace(self, path: str, body: JsonObject) -> JsonObject:
        return self.request("PUT", path, body=body)
