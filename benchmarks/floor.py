"""The floor: the API writes a provisioner must issue, and nothing else.

For every claim that kube-controller-manager assigns to ``--provisioner-name`` it creates the
pre-bound PV (same body shape as the provisioner's) and posts the two events a provisioner
posts; for every such PV that becomes ``Released`` it deletes the PV. No caches, no queues,
no retries, no directories, no client-side throttling: thread pools on the same HTTP stack
as ours (``nfs_provisioner.kube.ApiClient``), so the gap between ours and the floor is the
provisioner's own logic, and the floor itself is what the API server allows on this machine.

Runs as its own process (``python -m benchmarks.floor``), so its CPU time can be measured
like the others'. On SIGTERM it writes when each write was acknowledged (``time.monotonic``,
which is one clock for all processes of the machine) to ``--report-file``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import secrets
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from nfs_provisioner.kube import ApiClient, ApiError, JsonObject, connect

CLAIMS = "/api/v1/persistentvolumeclaims"
VOLUMES = "/api/v1/persistentvolumes"
STORAGE_CLASSES = "/apis/storage.k8s.io/v1/storageclasses"
ANN_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
ANN_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Floor:
    def __init__(self, api: ApiClient, args: argparse.Namespace) -> None:
        self.api = api
        self.name: str = args.provisioner_name
        self.server: str = args.nfs_server
        self.base: str = args.nfs_path.rstrip("/")
        self.pool = ThreadPoolExecutor(args.threads, thread_name_prefix="floor")
        # Events go through a pool of their own so they never hold up a PV: nothing waits
        # for them, and every provisioner is free to send them later.
        self.event_pool = ThreadPoolExecutor(
            max(args.threads // 4, 1), thread_name_prefix="floor-events"
        )
        self.lock = threading.Lock()
        self.seen_claims: set[str] = set()
        self.seen_volumes: set[str] = set()
        # Per claim key: when its event was handled, its PV create started, and was acked.
        self.seen_at: dict[str, float] = {}
        self.started_at: dict[str, float] = {}
        self.pv_acks: dict[str, float] = {}
        self.delete_acks: dict[str, float] = {}
        self.errors = 0
        self.reclaim: dict[str, str] = {}

    def load_classes(self) -> None:
        items, _ = self.api.list_all(STORAGE_CLASSES)
        for item in items:
            name = item["metadata"]["name"]
            self.reclaim[name] = item.get("reclaimPolicy") or "Delete"

    # -- claims ----------------------------------------------------------------------------

    def on_claim(self, claim: JsonObject) -> None:
        metadata = claim.get("metadata") or {}
        annotations = metadata.get("annotations") or {}
        assigned = annotations.get(ANN_PROVISIONER) or annotations.get(ANN_BETA_PROVISIONER)
        if assigned != self.name or (claim.get("spec") or {}).get("volumeName"):
            return
        uid = metadata["uid"]
        now = time.monotonic()
        with self.lock:
            if uid in self.seen_claims:
                return
            self.seen_claims.add(uid)
            self.seen_at[f"{metadata.get('namespace')}/{metadata.get('name')}"] = now
        self.pool.submit(self._guard, self.provision, claim)

    def provision(self, claim: JsonObject) -> None:
        metadata = claim["metadata"]
        spec = claim.get("spec") or {}
        namespace, claim_name = metadata["namespace"], metadata["name"]
        started = time.monotonic()
        with self.lock:
            self.started_at[f"{namespace}/{claim_name}"] = started
        pv_name = f"pvc-{metadata['uid']}"
        class_name = spec.get("storageClassName") or ""
        volume = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": pv_name, "annotations": {ANN_PROVISIONED_BY: self.name}},
            "spec": {
                "persistentVolumeReclaimPolicy": self.reclaim.get(class_name, "Delete"),
                "accessModes": list(spec.get("accessModes") or []),
                "capacity": {"storage": spec["resources"]["requests"]["storage"]},
                "nfs": {
                    "server": self.server,
                    "path": f"{self.base}/{namespace}-{claim_name}-{pv_name}",
                    "readOnly": False,
                },
                "volumeMode": "Filesystem",
                "claimRef": {
                    "kind": "PersistentVolumeClaim",
                    "apiVersion": "v1",
                    "namespace": namespace,
                    "name": claim_name,
                    "uid": metadata["uid"],
                    "resourceVersion": metadata.get("resourceVersion"),
                },
                "storageClassName": class_name,
            },
        }
        try:
            self.api.create(VOLUMES, volume)
        except ApiError as error:
            if not error.is_already_exists:
                raise
        with self.lock:
            self.pv_acks[f"{namespace}/{claim_name}"] = time.monotonic()
        key = f"{namespace}/{claim_name}"
        for reason, message in (
            ("Provisioning", f'External provisioner is provisioning volume for claim "{key}"'),
            ("ProvisioningSucceeded", f"Successfully provisioned volume {pv_name}"),
        ):
            self.event_pool.submit(self._guard, self.event, claim, reason, message)

    def event(self, claim: JsonObject, reason: str, message: str) -> None:
        metadata = claim["metadata"]
        namespace = metadata["namespace"]
        timestamp = _now()
        self.api.create(
            f"/api/v1/namespaces/{namespace}/events",
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {
                    "name": f"{metadata['name']}.{secrets.token_hex(8)}",
                    "namespace": namespace,
                },
                "involvedObject": {
                    "kind": "PersistentVolumeClaim",
                    "apiVersion": "v1",
                    "name": metadata["name"],
                    "namespace": namespace,
                    "uid": metadata["uid"],
                    "resourceVersion": metadata.get("resourceVersion"),
                },
                "reason": reason,
                "message": message,
                "type": "Normal",
                "source": {"component": "floor"},
                "reportingComponent": "floor",
                "reportingInstance": "floor",
                "firstTimestamp": timestamp,
                "lastTimestamp": timestamp,
                "count": 1,
            },
        )

    # -- volumes ---------------------------------------------------------------------------

    def on_volume(self, volume: JsonObject) -> None:
        metadata = volume.get("metadata") or {}
        if (metadata.get("annotations") or {}).get(ANN_PROVISIONED_BY) != self.name:
            return
        if (volume.get("status") or {}).get("phase") != "Released":
            return
        with self.lock:
            if metadata["uid"] in self.seen_volumes:
                return
            self.seen_volumes.add(metadata["uid"])
        self.pool.submit(self._guard, self.delete, volume)

    def delete(self, volume: JsonObject) -> None:
        name = volume["metadata"]["name"]
        try:
            self.api.delete(f"{VOLUMES}/{name}")
        except ApiError as error:
            if not error.is_not_found:
                raise
        with self.lock:
            self.delete_acks[name] = time.monotonic()

    # -- plumbing --------------------------------------------------------------------------

    def _guard(self, work: Any, obj: JsonObject, *args: str) -> None:
        try:
            work(obj, *args)
        except Exception as error:
            with self.lock:
                self.errors += 1
            print(f"error: {work.__name__} {obj['metadata'].get('name')}: {error}", flush=True)

    def follow(self, path: str, handle: Any) -> str:
        """List, hand every item to ``handle``, and return the resourceVersion to watch from."""
        items, version = self.api.list_all(path)
        for item in items:
            handle(item)
        return version

    def watch_forever(self, path: str, handle: Any, version: str) -> None:
        while True:
            try:
                for event in self.api.watch(path, resource_version=version, timeout_seconds=300):
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        version = self.follow(path, handle)
                        break
                    version = (obj.get("metadata") or {}).get("resourceVersion", version)
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        handle(obj)
            except ApiError as error:
                if error.is_gone:
                    version = self.follow(path, handle)
                else:
                    time.sleep(0.2)

    def report(self) -> dict[str, Any]:
        with self.lock:
            return {
                "seen": dict(self.seen_at),
                "started": dict(self.started_at),
                "pv_acks": dict(self.pv_acks),
                "delete_acks": dict(self.delete_acks),
                "errors": self.errors,
            }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.floor", description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--provisioner-name", required=True)
    parser.add_argument("--nfs-server", required=True)
    parser.add_argument("--nfs-path", required=True)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--report-file", type=Path, required=True)
    args = parser.parse_args()

    api = connect(
        args.kubeconfig,
        qps=0,
        burst=1,
        pool_size=args.threads + 4,
        user_agent="nfs-provisioner-benchmark-floor",
    )
    floor = Floor(api, args)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stopping.set())
    signal.signal(signal.SIGINT, lambda _signum, _frame: stopping.set())

    floor.load_classes()
    for path, handle in ((CLAIMS, floor.on_claim), (VOLUMES, floor.on_volume)):
        version = floor.follow(path, handle)
        threading.Thread(
            target=floor.watch_forever, args=(path, handle, version), daemon=True
        ).start()
    args.ready_file.write_text("ready\n")
    while not stopping.wait(0.5):
        pass
    args.report_file.write_text(json.dumps(floor.report()))


if __name__ == "__main__":
    main()
