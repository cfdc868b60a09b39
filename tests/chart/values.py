"""Values for the chart tests: the keys the upstream charts define, and a non-default of each."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from tests.chart.helm import CHART

# Every values key of stable/nfs-client-provisioner 1.2.11 and nfs-subdir-external-provisioner
# 4.0.18 (their union; the issue lists them), which this chart must accept with the same meaning.
UPSTREAM_KEYS = frozenset(
    {
        "replicaCount",
        "strategyType",
        "image.repository",
        "image.tag",
        "image.pullPolicy",
        "imagePullSecrets",
        "nfs.server",
        "nfs.path",
        "nfs.mountOptions",
        "nfs.volumeName",
        "nfs.reclaimPolicy",
        "storageClass.create",
        "storageClass.provisionerName",
        "storageClass.defaultClass",
        "storageClass.name",
        "storageClass.allowVolumeExpansion",
        "storageClass.reclaimPolicy",
        "storageClass.archiveOnDelete",
        "storageClass.onDelete",
        "storageClass.pathPattern",
        "storageClass.accessModes",
        "storageClass.volumeBindingMode",
        "storageClass.annotations",
        "leaderElection.enabled",
        "rbac.create",
        "podSecurityPolicy.enabled",
        "priorityClassName",
        "serviceAccount.create",
        "serviceAccount.name",
        "serviceAccount.annotations",
        "resources",
        "nodeSelector",
        "tolerations",
        "affinity",
        "labels",
        "podAnnotations",
        "podSecurityContext",
        "securityContext",
        "podDisruptionBudget.enabled",
        "podDisruptionBudget.maxUnavailable",
        "nameOverride",
        "fullnameOverride",
    }
)

# The container securityContext and resources the chart renders by default.
HARDENED_SECURITY_CONTEXT: dict[str, Any] = {
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
HARDENED_RESOURCES: dict[str, Any] = {
    "requests": {"cpu": "25m", "memory": "80Mi"},
    "limits": {"memory": "256Mi"},
}

# The smallest values that render: nfs.server has no default.
MINIMAL: dict[str, Any] = {"nfs": {"server": "10.0.0.5"}}


def chart_defaults() -> dict[str, Any]:
    return dict(yaml.safe_load((CHART / "values.yaml").read_text()))


# Maps the chart copies verbatim into the pod spec: one key each, whatever their defaults hold.
VERBATIM = frozenset({"resources", "securityContext", "podSecurityContext"})


def leaf_keys(values: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Dotted keys of values.yaml; a map that is empty by default (labels) is a key, and so is
    each map of VERBATIM."""
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and dotted not in VERBATIM:
            yield from leaf_keys(value, f"{dotted}.")
        else:
            yield dotted


def merged(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge of values layers, later ones winning (as helm merges -f files)."""
    result: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
                result[key] = merged(result[key], value)
            else:
                result[key] = value
    return result


def nested(dotted: str, value: Any) -> dict[str, Any]:
    """{"a.b": v} as {"a": {"b": v}}."""
    head, _, rest = dotted.partition(".")
    return {head: nested(rest, value) if rest else value}


# One install that turns on every object the chart can render (the static export volume, the
# disruption budget, the metrics Service) and moves every other key off its default, for the
# test that the real API server accepts all of them.
EVERYTHING: dict[str, Any] = {
    "replicaCount": 2,
    "strategyType": "RollingUpdate",
    "image": {"repository": "registry.example/nfs", "tag": "v9.9.9", "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "regcred"}],
    "nfs": {
        "server": "nfs.example.test",
        "path": "/srv/export/",
        "mountOptions": ["nfsvers=4.1", "hard"],
        "volumeName": "export",
        "reclaimPolicy": "Delete",
        "extraExports": [
            {
                "server": "nfs2.example.test",
                "path": "/srv/second",
                "mountPath": "/mnt/second",
                "storageClass": {"name": "nfs-everything-second", "onDelete": "delete"},
            }
        ],
    },
    "storageClass": {
        "provisionerName": "example.com/nfs-everything",
        "defaultClass": False,
        "name": "nfs-everything",
        "allowVolumeExpansion": False,
        "reclaimPolicy": "Retain",
        "archiveOnDelete": False,
        "onDelete": "retain",
        "pathPattern": "${.PVC.namespace}/${.PVC.name}",
        "accessModes": "ReadWriteMany",
        "volumeBindingMode": "WaitForFirstConsumer",
        "annotations": {"example.com/owner": "storage-team"},
        "uid": 1000,
        "gid": 1000,
        "mode": "0770",
        "allowClaimOwnership": True,
        "archiveRetention": "30d",
    },
    "priorityClassName": "system-cluster-critical",
    "serviceAccount": {"name": "nfs-everything", "annotations": {"example.com/role": "nfs"}},
    "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "storage", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"app": "nfs-provisioner"}},
                    },
                }
            ]
        }
    },
    "labels": {"team": "storage"},
    "podAnnotations": {"example.com/scrape": "true"},
    "podSecurityContext": {"runAsUser": 65534, "runAsGroup": 65534, "fsGroup": 65534},
    "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True},
    "podDisruptionBudget": {"enabled": True, "maxUnavailable": "50%"},
    "nameOverride": "nfs-everything",
    "metrics": {
        "port": 9090,
        "service": {
            "type": "NodePort",
            "port": 9100,
            "annotations": {"prometheus.io/scrape": "true"},
        },
    },
    "log": {"format": "console", "level": "debug"},
    "workers": 4,
    "kubeApi": {"qps": 12.5, "burst": 50},
    "usage": {"scanInterval": "0", "scanRate": 500},
    "archiveSweepInterval": "15m",
    "extraEnv": [{"name": "NFS_PROVISIONER_RESYNC_PERIOD", "value": "5m"}],
}
