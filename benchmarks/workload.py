"""The burst itself: create N claims at once, time each from watch events, delete them again.

Times are ``time.monotonic()`` when the harness receives a watch event (never polling), so a
claim's latency is "its create call started" -> "the event saying it happened arrived".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from nfs_provisioner.kube import ApiClient, ApiError, JsonObject
from nfs_provisioner.objects import new_claim

CLAIMS = "/api/v1/persistentvolumeclaims"
VOLUMES = "/api/v1/persistentvolumes"
STORAGE_CLASSES = "/apis/storage.k8s.io/v1/storageclasses"
ANN_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
WATCH_SECONDS = 1


@dataclass
class ClaimTimes:
    """Monotonic timestamps of one claim's life; None where it did not happen (yet)."""

    create_call: float
    create_acked: float | None = None
    annotated: float | None = None
    pv_created: float | None = None
    bound: float | None = None
    delete_call: float | None = None
    pv_released: float | None = None
    pv_deleted: float | None = None


class BinderNotReadyError(RuntimeError):
    pass


class Recorder:
    """Watches the claims of one namespace and the PVs of one StorageClass."""

    def __init__(self, api: ApiClient, namespace: str, storage_class: str) -> None:
        self.api = api
        self.namespace = namespace
        self.storage_class = storage_class
        self.claims: dict[str, ClaimTimes] = {}
        self.counts = {
            "annotated": 0,
            "pv_created": 0,
            "bound": 0,
            "pv_released": 0,
            "pv_deleted": 0,
        }
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        claims_path = f"/api/v1/namespaces/{self.namespace}/persistentvolumeclaims"
        for path, handle in ((claims_path, self._on_claim), (VOLUMES, self._on_volume)):
            _, version = self.api.list_all(path)
            thread = threading.Thread(target=self._watch, args=(path, handle, version), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        # kube-apiserver waits for open watches when it is stopped (15 s, then it is killed),
        # so the watches are short and end here, before the control plane is stopped.
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=WATCH_SECONDS + 3)

    def register(self, name: str) -> None:
        with self._changed:
            self.claims[name] = ClaimTimes(create_call=time.monotonic())

    def created(self, name: str) -> None:
        now = time.monotonic()
        with self._changed:
            self.claims[name].create_acked = now

    def deleting(self, name: str) -> None:
        with self._changed:
            self.claims[name].delete_call = time.monotonic()

    def _mark(self, times: ClaimTimes, field: str, now: float) -> None:
        if getattr(times, field) is None:
            setattr(times, field, now)
            self.counts[field] += 1
            self._changed.notify_all()

    def _on_claim(self, kind: str, claim: JsonObject, now: float) -> None:
        metadata = claim.get("metadata") or {}
        with self._changed:
            times = self.claims.get(metadata.get("name", ""))
            if times is None or kind == "DELETED":
                return
            if (metadata.get("annotations") or {}).get(ANN_PROVISIONER):
                self._mark(times, "annotated", now)
            if (claim.get("status") or {}).get("phase") == "Bound":
                self._mark(times, "bound", now)

    def _on_volume(self, kind: str, volume: JsonObject, now: float) -> None:
        spec = volume.get("spec") or {}
        reference = spec.get("claimRef") or {}
        if (
            spec.get("storageClassName") != self.storage_class
            or reference.get("namespace") != self.namespace
        ):
            return
        with self._changed:
            times = self.claims.get(reference.get("name", ""))
            if times is None:
                return
            self._mark(times, "pv_deleted" if kind == "DELETED" else "pv_created", now)
            # The binder marks the PV Released once its claim is gone: from then on, deleting
            # it is the provisioner's work.
            if kind != "DELETED" and (volume.get("status") or {}).get("phase") == "Released":
                self._mark(times, "pv_released", now)

    def _watch(
        self, path: str, handle: Callable[[str, JsonObject, float], None], version: str
    ) -> None:
        while not self._stop.is_set():
            try:
                events = self.api.watch(
                    path, resource_version=version, timeout_seconds=WATCH_SECONDS
                )
                for event in events:
                    now = time.monotonic()
                    kind = str(event.get("type"))
                    obj = event.get("object") or {}
                    if kind == "ERROR":
                        raise ApiError(int(obj.get("code", 0)), str(obj.get("reason")), "")
                    version = (obj.get("metadata") or {}).get("resourceVersion", version)
                    if kind != "BOOKMARK":
                        handle(kind, obj, now)
            except ApiError as error:
                if self._stop.is_set():
                    return
                if error.is_gone:
                    # Missed events cannot be timed; what the list shows is stamped now.
                    items, version = self.api.list_all(path)
                    now = time.monotonic()
                    for item in items:
                        handle("ADDED", item, now)
                else:
                    time.sleep(0.2)

    def wait_for(self, field: str, total: int, *, stall_timeout: float, deadline: float) -> bool:
        """Until ``total`` claims reached ``field``; False when progress stalls or time is up."""
        with self._changed:
            last_count = self.counts[field]
            last_progress = time.monotonic()
            while self.counts[field] < total:
                now = time.monotonic()
                if now - last_progress > stall_timeout or now > deadline:
                    return False
                self._changed.wait(timeout=1.0)
                if self.counts[field] != last_count:
                    last_count = self.counts[field]
                    last_progress = time.monotonic()
            return True


def claim_body(name: str, storage_class: str, size: str = "1Mi") -> JsonObject:
    return new_claim(name, storage_class=storage_class, size=size)


def run_parallel(threads: int, work: Callable[[Any], None], items: Iterable[Any]) -> None:
    """Run ``work`` on every item with ``threads`` workers; re-raise the first failure."""
    with ThreadPoolExecutor(threads, thread_name_prefix="bench") as pool:
        for future in [pool.submit(work, item) for item in items]:
            future.result()


def create_claims(
    api: ApiClient,
    recorder: Recorder,
    names: list[str],
    *,
    threads: int,
    provisioner: str | None = None,
) -> None:
    """Create the claims; with ``provisioner``, carrying the annotations kube-controller-
    manager's PV binder would add (both, since the Go library reads the beta one). The binder
    leaves an equal annotation alone, so its single claim worker is no longer the first
    step of every claim, and the time to "all PVs created" is the provisioner's own."""
    path = f"/api/v1/namespaces/{recorder.namespace}/persistentvolumeclaims"

    def create(name: str) -> None:
        body = claim_body(name, recorder.storage_class)
        if provisioner:
            body["metadata"]["annotations"] = {
                ANN_PROVISIONER: provisioner,
                ANN_BETA_PROVISIONER: provisioner,
            }
        recorder.register(name)
        api.create(path, body)
        recorder.created(name)

    run_parallel(threads, create, names)


def delete_claims(api: ApiClient, recorder: Recorder, names: list[str], *, threads: int) -> None:
    path = f"/api/v1/namespaces/{recorder.namespace}/persistentvolumeclaims"

    def delete(name: str) -> None:
        recorder.deleting(name)
        api.delete(f"{path}/{name}")

    run_parallel(threads, delete, names)


def create_namespace(api: ApiClient, name: str) -> None:
    api.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )


def create_storage_class(
    api: ApiClient, name: str, provisioner: str, parameters: dict[str, str] | None = None
) -> None:
    api.create(
        STORAGE_CLASSES,
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": name},
            "provisioner": provisioner,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
            "parameters": parameters or {},
        },
    )


def wait_for_binder(api: ApiClient, namespace: str, *, timeout: float = 60.0) -> None:
    """kube-controller-manager starts after the API server is ready; wait until its PV
    binder assigns a claim to a provisioner, so the burst does not time its start-up."""
    create_storage_class(api, "bench-warmup", "bench.local/warmup")
    path = f"/api/v1/namespaces/{namespace}/persistentvolumeclaims"
    api.create(path, claim_body("warmup", "bench-warmup"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        claim = api.get(f"{path}/warmup")
        if ((claim.get("metadata") or {}).get("annotations") or {}).get(ANN_PROVISIONER):
            api.delete(f"{path}/warmup")
            return
        time.sleep(0.1)
    raise BinderNotReadyError(
        f"kube-controller-manager did not pick up a claim within {timeout:.0f}s"
    )


def seed_bound_pairs(
    api: ApiClient, namespace: str, storage_class: str, count: int, *, threads: int
) -> None:
    """``count`` pre-bound PV/claim pairs of another class: a big cluster's background."""

    def create(index: int) -> None:
        name = f"seed-{index:05d}"
        api.create(
            VOLUMES,
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": f"{namespace}-{name}"},
                "spec": {
                    "capacity": {"storage": "1Mi"},
                    "accessModes": ["ReadWriteMany"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": storage_class,
                    "nfs": {"server": "seed.example.test", "path": f"/seed/{name}"},
                    "claimRef": {"namespace": namespace, "name": name},
                },
            },
        )
        body = claim_body(name, storage_class)
        body["spec"]["volumeName"] = f"{namespace}-{name}"
        api.create(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims", body)

    run_parallel(threads, create, range(count))
