"""Paths and calls for the resources the provisioner works on."""

from __future__ import annotations

from nfs_provisioner.kube.client import ApiClient, object_path
from nfs_provisioner.objects import JsonDict, JsonObject

CLAIMS = "/api/v1/persistentvolumeclaims"
VOLUMES = "/api/v1/persistentvolumes"
STORAGE_CLASSES = "/apis/storage.k8s.io/v1/storageclasses"


def get_volume(api: ApiClient, name: str) -> JsonDict:
    return api.get(object_path(VOLUMES, name))


def create_volume(api: ApiClient, volume: JsonObject) -> JsonDict:
    return api.create(VOLUMES, volume)


def delete_volume(api: ApiClient, name: str, uid: str | None = None) -> None:
    api.delete(object_path(VOLUMES, name), preconditions={"uid": uid} if uid else None)
