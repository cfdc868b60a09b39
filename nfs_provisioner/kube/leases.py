"""coordination.k8s.io/v1 Lease calls used by leader election."""

from __future__ import annotations

from nfs_provisioner.kube import paths
from nfs_provisioner.kube.client import ApiClient
from nfs_provisioner.objects import JsonDict, JsonObject

# Each call takes a timeout: leader election bounds them by its renew deadline, so a call that
# hangs (a stalled connection) cannot keep a leader leading past it.
_DEFAULT_TIMEOUT = 30.0


def get_lease(
    api: ApiClient, namespace: str, name: str, *, timeout: float = _DEFAULT_TIMEOUT
) -> JsonDict:
    return api.request("GET", paths.lease(namespace, name), timeout=timeout)


def create_lease(
    api: ApiClient,
    namespace: str,
    name: str,
    spec: JsonObject,
    *,
    dry_run: bool = False,
    timeout: float = _DEFAULT_TIMEOUT,
) -> JsonDict:
    """Create the Lease; with dry_run the server validates and admits it but stores nothing."""
    return api.request(
        "POST",
        paths.leases(namespace),
        params={"dryRun": "All"} if dry_run else None,
        body={
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        },
        timeout=timeout,
    )


def update_lease(
    api: ApiClient, lease: JsonObject, *, timeout: float = _DEFAULT_TIMEOUT
) -> JsonDict:
    """Replace with the lease's resourceVersion: a concurrent writer gets a 409 Conflict."""
    metadata = lease["metadata"]
    return api.request(
        "PUT", paths.lease(metadata["namespace"], metadata["name"]), body=lease, timeout=timeout
    )
