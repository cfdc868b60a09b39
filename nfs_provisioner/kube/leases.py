"""coordination.k8s.io/v1 Lease calls used by leader election."""

from __future__ import annotations

from nfs_provisioner.kube import paths
from nfs_provisioner.kube.client import ApiClient
from nfs_provisioner.objects import JsonDict, JsonObject


def get_lease(api: ApiClient, namespace: str, name: str) -> JsonDict:
    return api.get(paths.lease(namespace, name))


def create_lease(
    api: ApiClient, namespace: str, name: str, spec: JsonObject, *, dry_run: bool = False
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
    )


def update_lease(api: ApiClient, lease: JsonObject) -> JsonDict:
    """Replace with the lease's resourceVersion: a concurrent writer gets a 409 Conflict."""
    metadata = lease["metadata"]
    return api.replace(paths.lease(metadata["namespace"], metadata["name"]), lease)
