"""Cluster-side helpers shared by the e2e chart tests (tests/e2e/test_chart_*.py).

The tests in this package never call these: they only render. Here: creating rendered objects
through the admin API client, minting a token of the chart's ServiceAccount, and turning the
chart's Deployment into the environment of an out-of-cluster provisioner process.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any

from devcluster import ControlPlane

from nfs_provisioner.kube import ApiClient, ApiError
from tests.chart.helm import CHART, helm
from tests.e2e.harness import Provisioner

JsonObject = dict[str, Any]
# Set by the pod spec in a cluster; out of cluster the harness decides where the export is
# "mounted" and where health and metrics are served.
_POD_LOCAL = ("NFS_MOUNT_PATH", "NFS_PROVISIONER_METRICS_ADDRESS")

_RBAC = "/apis/rbac.authorization.k8s.io/v1"
# kind -> (API group/version prefix, resource, namespaced): every kind the chart renders.
_RESOURCES: Mapping[str, tuple[str, str, bool]] = {
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "Service": ("/api/v1", "services", True),
    "PersistentVolume": ("/api/v1", "persistentvolumes", False),
    "PersistentVolumeClaim": ("/api/v1", "persistentvolumeclaims", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets", True),
    "StorageClass": ("/apis/storage.k8s.io/v1", "storageclasses", False),
    "ClusterRole": (_RBAC, "clusterroles", False),
    "ClusterRoleBinding": (_RBAC, "clusterrolebindings", False),
    "Role": (_RBAC, "roles", True),
    "RoleBinding": (_RBAC, "rolebindings", True),
}


def collection_path(obj: Mapping[str, Any]) -> str:
    prefix, resource, namespaced = _RESOURCES[obj["kind"]]
    if namespaced:
        return f"{prefix}/namespaces/{obj['metadata']['namespace']}/{resource}"
    return f"{prefix}/{resource}"


def object_path(obj: Mapping[str, Any]) -> str:
    return f"{collection_path(obj)}/{obj['metadata']['name']}"


def create_all(api: ApiClient, objects: Iterable[Mapping[str, Any]]) -> list[JsonObject]:
    return [api.create(collection_path(obj), dict(obj)) for obj in objects]


def delete_all(api: ApiClient, objects: Iterable[Mapping[str, Any]]) -> None:
    for obj in objects:
        with suppress(ApiError):
            api.delete(object_path(obj))


def service_account_kubeconfig(
    api: ApiClient, plane: ControlPlane, namespace: str, name: str, path: Path
) -> Path:
    """A kubeconfig with a bound token of ServiceAccount namespace/name (TokenRequest API)."""
    request = api.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        },
    )
    token = request["status"]["token"]
    user = f"system:serviceaccount:{namespace}:{name}"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "local",
                        "cluster": {
                            "server": plane.server,
                            "certificate-authority": str(plane.ca_file),
                        },
                    }
                ],
                "users": [{"name": user, "user": {"token": token}}],
                "contexts": [{"name": "sa", "context": {"cluster": "local", "user": user}}],
                "current-context": "sa",
            }
        )
    )
    path.chmod(0o600)
    return path


def container_env(deployment: Mapping[str, Any], namespace: str) -> dict[str, str]:
    """The provisioner container's environment as the kubelet would set it."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for variable in container["env"]:
        if "value" in variable:
            env[variable["name"]] = str(variable["value"])
            continue
        # The downward API's pod namespace is the only reference the chart makes.
        assert variable["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace", variable
        env[variable["name"]] = namespace
    return env


def helm_install(
    plane: ControlPlane, release: str, namespace: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """`helm install` of the chart into the test control plane; returns helm's output."""
    return helm(
        "install",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--kubeconfig",
        str(plane.kubeconfig),
        *args,
    )


def helm_uninstall(plane: ControlPlane, release: str, namespace: str) -> None:
    helm(
        "uninstall",
        release,
        "--namespace",
        namespace,
        "--kubeconfig",
        str(plane.kubeconfig),
        check=False,
    )


def like_the_pod(
    plane: ControlPlane,
    env: Mapping[str, str],
    export: Path,
    *,
    kubeconfig: Path | None = None,
    tuning: Mapping[str, str] | None = None,
    kind: type[Provisioner] = Provisioner,
) -> Provisioner:
    """A provisioner process (not started) with the chart's environment ``env``.

    ``kubeconfig`` stands for the pod's service account (default: the harness's admin);
    ``tuning`` adds settings, e.g. short timings.
    """
    extra = {k: v for k, v in env.items() if k not in _POD_LOCAL}
    extra.update(tuning or {})
    if kubeconfig is not None:
        extra["KUBECONFIG"] = str(kubeconfig)
    return kind(
        plane=plane,
        name=env["PROVISIONER_NAME"],
        export=export,
        nfs_path=env["NFS_PATH"],
        server=env["NFS_SERVER"],
        leader_election=env["ENABLE_LEADER_ELECTION"] == "true",
        extra_env=extra,
    )
