"""A test control plane's clients: API calls as admin, waiting, and provisioner processes.

Shared by the e2e tests, the NFS tier and the soak (``hack/soak``), so it lives next to the
control plane it drives.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from devcluster.controlplane import ControlPlane, free_port
from nfs_provisioner.kube import ApiClient, ApiError, connect, paths
from nfs_provisioner.objects import new_claim

T = TypeVar("T")
JsonObject = dict[str, Any]


def wait_for(
    condition: Callable[[], T | None],
    *,
    timeout: float = 60.0,
    interval: float = 0.2,
    what: str = "condition",
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Cluster:
    """Admin access to the test control plane, with the calls tests need."""

    plane: ControlPlane
    api: ApiClient
    # Cluster-scoped, so not cleaned up with a test's namespace: removed after each test.
    created_classes: list[str] = field(default_factory=list)

    @classmethod
    def connect(cls, plane: ControlPlane) -> Cluster:
        api = connect(
            str(plane.kubeconfig), qps=0, burst=1, pool_size=32, user_agent="nfs-provisioner-tests"
        )
        return cls(plane, api)

    def create_namespace(self, prefix: str = "test") -> str:
        name = unique(prefix)
        self.api.create(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        )
        return name

    def create_storage_class(
        self,
        provisioner: str,
        *,
        name: str | None = None,
        parameters: Mapping[str, str] | None = None,
        reclaim_policy: str = "Delete",
        binding_mode: str = "Immediate",
        mount_options: list[str] | None = None,
        default: bool = False,
    ) -> str:
        name = name or unique("sc")
        body: JsonObject = {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": name,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}
                if default
                else {},
            },
            "provisioner": provisioner,
            "reclaimPolicy": reclaim_policy,
            "volumeBindingMode": binding_mode,
        }
        if parameters is not None:
            body["parameters"] = dict(parameters)
        if mount_options:
            body["mountOptions"] = mount_options
        self.api.create("/apis/storage.k8s.io/v1/storageclasses", body)
        self.created_classes.append(name)
        return name

    def delete_storage_class(self, name: str) -> None:
        with suppress(ApiError):
            self.api.delete(f"/apis/storage.k8s.io/v1/storageclasses/{name}")

    def create_claim(
        self,
        namespace: str,
        name: str,
        *,
        storage_class: str | None,
        size: str = "1Mi",
        access_modes: list[str] | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        extra_spec: Mapping[str, Any] | None = None,
    ) -> JsonObject:
        return self.api.create(
            paths.namespaced("persistentvolumeclaims", namespace),
            new_claim(
                name,
                storage_class=storage_class,
                size=size,
                access_modes=access_modes or ("ReadWriteMany",),
                labels=labels,
                annotations=annotations,
                extra_spec=extra_spec,
            ),
        )

    def claim(self, namespace: str, name: str) -> JsonObject | None:
        try:
            return self.api.get(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}")
        except ApiError as error:
            if error.is_not_found:
                return None
            raise

    def patch_claim(self, namespace: str, name: str, patch: JsonObject) -> JsonObject:
        return self.api.merge_patch(
            f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}", patch
        )

    def delete_claim(self, namespace: str, name: str) -> None:
        self.api.delete(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}")

    def volume(self, name: str) -> JsonObject | None:
        try:
            return self.api.get(f"/api/v1/persistentvolumes/{name}")
        except ApiError as error:
            if error.is_not_found:
                return None
            raise

    def volumes(self) -> list[JsonObject]:
        return list(self.api.get("/api/v1/persistentvolumes").get("items", []))

    def create_volume(self, body: JsonObject) -> JsonObject:
        return self.api.create("/api/v1/persistentvolumes", body)

    def create_nfs_volume(
        self,
        name: str,
        *,
        server: str,
        path: str,
        storage_class: str = "",
        provisioned_by: str | None = None,
        reclaim_policy: str = "Delete",
        size: str = "1Mi",
        claim_ref: JsonObject | None = None,
    ) -> JsonObject:
        """A PV made by hand, as if another provisioner (or an operator) had created it."""
        metadata: JsonObject = {"name": name}
        if provisioned_by is not None:
            metadata["annotations"] = {"pv.kubernetes.io/provisioned-by": provisioned_by}
        spec: JsonObject = {
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteMany"],
            "persistentVolumeReclaimPolicy": reclaim_policy,
            "storageClassName": storage_class,
            "nfs": {"server": server, "path": path},
        }
        if claim_ref is not None:
            spec["claimRef"] = claim_ref
        return self.create_volume(
            {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": metadata, "spec": spec}
        )

    def delete_volume(self, name: str) -> None:
        with suppress(ApiError):
            self.api.delete(f"/api/v1/persistentvolumes/{name}")

    def wait_bound(self, namespace: str, name: str, timeout: float = 60.0) -> JsonObject:
        def bound() -> JsonObject | None:
            claim = self.claim(namespace, name)
            if claim and (claim.get("status") or {}).get("phase") == "Bound":
                return claim
            return None

        return wait_for(bound, timeout=timeout, what=f"claim {namespace}/{name} to be Bound")

    def events(
        self,
        namespace: str,
        *,
        name: str | None = None,
        reason: str | None = None,
        source: str | None = None,
    ) -> list[JsonObject]:
        """Events in a namespace; ``source`` keeps those one component reported.

        The controller-manager reports some reasons too (ProvisioningFailed while its class
        cache lags), so a test about the provisioner's own event names the provisioner.
        """
        items = self.api.get(f"/api/v1/namespaces/{namespace}/events").get("items", [])
        return [
            e
            for e in items
            if (name is None or e["involvedObject"].get("name") == name)
            and (reason is None or e.get("reason") == reason)
            and (source is None or (e.get("source") or {}).get("component") == source)
        ]

    def wait_event(
        self,
        namespace: str,
        name: str,
        reason: str,
        timeout: float = 60.0,
        *,
        source: str | None = None,
    ) -> JsonObject:
        return wait_for(
            lambda: next(
                iter(self.events(namespace, name=name, reason=reason, source=source)), None
            ),
            timeout=timeout,
            what=f"event {reason} on {namespace}/{name}",
        )


@dataclass
class Provisioner:
    """A real ``nfs-provisioner run`` process against the test control plane."""

    plane: ControlPlane
    name: str
    export: Path
    nfs_path: str = "/exports/volumes"
    server: str = "nfs.example.test"
    leader_election: bool = False
    extra_args: list[str] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    metrics_port: int = field(default_factory=free_port)
    log_path: Path | None = None
    kubeconfig: Path | None = None
    # Run as this uid/gid (root only): how a provisioner meets a root-squashed export.
    user: int | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Provisioner:
        env = {
            **os.environ,
            "NFS_SERVER": self.server,
            "NFS_PATH": self.nfs_path,
            "PROVISIONER_NAME": self.name,
            "KUBECONFIG": str(self.kubeconfig or self.plane.kubeconfig),
            "ENABLE_LEADER_ELECTION": "true" if self.leader_election else "false",
            "POD_NAMESPACE": "default",
            "NFS_MOUNT_PATH": str(self.export),
            "NFS_PROVISIONER_METRICS_ADDRESS": f"127.0.0.1:{self.metrics_port}",
            "NFS_PROVISIONER_LOG_FORMAT": "json",
            "NFS_PROVISIONER_RETRY_BASE_DELAY": "0.5s",
            "NFS_PROVISIONER_RETRY_MAX_DELAY": "5s",
            **self.extra_env,
        }
        if self.log_path is None:
            self.log_path = self.export.parent / f"provisioner-{self.metrics_port}.log"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *self._as_user(),
                    sys.executable,
                    "-m",
                    "nfs_provisioner",
                    "run",
                    *self.extra_args,
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        wait_for(self._ready, timeout=30, what=f"provisioner {self.name} to be ready")
        return self

    def _as_user(self) -> list[str]:
        if self.user is None:
            return []
        return ["setpriv", f"--reuid={self.user}", f"--regid={self.user}", "--clear-groups"]

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(
                f"provisioner exited with {self.process.returncode}:\n{self.logs()[-3000:]}"
            )
        return self.http_status("/readyz") == 200

    def http_status(self, path: str) -> int:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}{path}", timeout=2
            ) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except OSError:
            return 0

    def metrics(self) -> str:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as response:
            return str(response.read().decode())

    def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        """Sum of a metric's samples whose labels include ``labels``."""
        total = 0.0
        for line in self.metrics().splitlines():
            if not line.startswith(name):
                continue
            head, _, value = line.rpartition(" ")
            metric_name, _, label_text = head.partition("{")
            if metric_name != name:
                continue
            if labels and not all(f'{k}="{v}"' in label_text for k, v in labels.items()):
                continue
            total += float(value)
        return total

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def log_records(self) -> list[JsonObject]:
        records = []
        for line in self.logs().splitlines():
            with suppress(ValueError):
                records.append(json.loads(line))
        return records

    def stop(self, *, kill: bool = False) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


# Short lease timings so leader tests take seconds, not the production 15 s.
FAST_LEADER_ELECTION: dict[str, Any] = {
    "leader_election": True,
    "extra_env": {
        "NFS_PROVISIONER_LEASE_DURATION": "4s",
        "NFS_PROVISIONER_RENEW_DEADLINE": "3s",
        "NFS_PROVISIONER_RETRY_PERIOD": "0.5s",
    },
}


def elect(first: Provisioner, second: Provisioner) -> tuple[Provisioner, Provisioner]:
    """Wait until exactly one of two instances leads; return (leader, standby)."""

    def leaders() -> list[Provisioner]:
        return [p for p in (first, second) if p.metric("nfs_provisioner_leader") == 1]

    (leader,) = wait_for(lambda: leaders() if len(leaders()) == 1 else None, what="one leader")
    return leader, second if leader is first else first


def world_readable_kubeconfig(plane: ControlPlane, directory: Path) -> Path:
    """A copy of the admin kubeconfig that an unprivileged provisioner process can read."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    ca = directory / "ca.crt"
    ca.write_bytes(plane.ca_file.read_bytes())
    config = json.loads(plane.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["certificate-authority"] = str(ca)
    kubeconfig = directory / "kubeconfig"
    kubeconfig.write_text(json.dumps(config))
    for path in (ca, kubeconfig):
        path.chmod(0o644)
    return kubeconfig


@contextmanager
def running(provisioner: Provisioner) -> Iterator[Provisioner]:
    provisioner.start()
    try:
        yield provisioner
    finally:
        provisioner.stop()
