"""Calls on the resources the provisioner works on: volumes, and the status of claims."""

from __future__ import annotations

from nfs_provisioner.kube import paths
from nfs_provisioner.kube.client import ApiClient
from nfs_provisioner.objects import JsonDict, JsonObject


def get_volume(api: ApiClient, name: str) -> JsonDict:
    return api.get(paths.volume(name))


def create_volume(api: ApiClient, volume: JsonObject) -> JsonDict:
    return api.create(paths.VOLUMES, volume)


def delete_volume(api: ApiClient, name: str, uid: str | None = None) -> None:
    api.delete(paths.volume(name), preconditions={"uid": uid} if uid else None)


def patch_volume(api: ApiClient, name: str, patch: JsonObject) -> JsonDict:
    return api.merge_patch(paths.volume(name), patch)


def patch_claim_status(api: ApiClient, namespace: str, name: str, patch: JsonObject) -> JsonDict:
    """Merge-patch the status subresource, the only way to change a claim's status."""
    return api.merge_patch(paths.claim_status(namespace, name), patch)
