"""Changes to existing claims and volumes: a PV's capacity and a claim's status after a resize."""

from __future__ import annotations

from urllib.parse import quote

from nfs_provisioner.kube.client import ApiClient, object_path
from nfs_provisioner.kube.resources import VOLUMES
from nfs_provisioner.objects import JsonDict, JsonObject


def patch_volume(api: ApiClient, name: str, patch: JsonObject) -> JsonDict:
    return api.merge_patch(object_path(VOLUMES, name), patch)


def patch_claim_status(api: ApiClient, namespace: str, name: str, patch: JsonObject) -> JsonDict:
    """Merge-patch the status subresource, the only way to change a claim's status."""
    path = (
        f"/api/v1/namespaces/{quote(namespace, safe='')}/persistentvolumeclaims/"
        f"{quote(name, safe='')}/status"
    )
    return api.merge_patch(path, patch)
