"""Each values key, set to something other than its default, changes the rendered objects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from nfs_provisioner.config import KNOBS, parse_extra_exports
from nfs_provisioner.nfs import Export
from nfs_provisioner.nfs.params import parse_class_parameters
from tests.chart.helm import Rendered, render, render_error
from tests.chart.values import (
    EVERYTHING,
    HARDENED_RESOURCES,
    MINIMAL,
    UPSTREAM_KEYS,
    chart_defaults,
    leaf_keys,
    merged,
    nested,
)

Check = Callable[[Rendered], None]


@dataclass(frozen=True)
class KeyCase:
    key: str
    value: Any
    check: Check
    # Keys that must be set too for this one to matter (e.g. nfs.reclaimPolicy needs mountOptions).
    also: dict[str, Any] | None = None


def _labels_everywhere(rendered: Rendered) -> None:
    for obj in rendered:
        assert obj["metadata"]["labels"]["team"] == "storage", obj["kind"]
    template_labels = rendered.deployment["spec"]["template"]["metadata"]["labels"]
    assert template_labels["team"] == "storage"
    # Extra labels must stay out of the selector, which is immutable.
    assert "team" not in rendered.deployment["spec"]["selector"]["matchLabels"]


def _static_export_volume(rendered: Rendered) -> None:
    volume, claim = rendered.one("PersistentVolume"), rendered.one("PersistentVolumeClaim")
    assert volume["spec"]["mountOptions"] == ["nfsvers=4.1", "hard"]
    assert volume["spec"]["nfs"] == {"server": "10.0.0.5", "path": "/nfs-storage"}
    assert volume["spec"]["storageClassName"] == ""
    assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert volume["spec"]["claimRef"] == {
        "namespace": "default",
        "name": claim["metadata"]["name"],
    }
    assert claim["spec"]["volumeName"] == volume["metadata"]["name"]
    assert claim["spec"]["storageClassName"] == ""
    assert claim["metadata"]["namespace"] == "default"
    (pod_volume,) = rendered.pod["volumes"]
    assert pod_volume == {
        "name": "nfs-subdir-external-provisioner-root",
        "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]},
    }
    # Provisioned volumes get the same options through their class.
    assert rendered.one("StorageClass")["mountOptions"] == ["nfsvers=4.1", "hard"]


def _no_rbac(rendered: Rendered) -> None:
    assert not {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"} & set(rendered.kinds())
    assert "ServiceAccount" in rendered.kinds()


def _no_service_account(rendered: Rendered) -> None:
    assert "ServiceAccount" not in rendered.kinds()
    assert rendered.pod["serviceAccountName"] == "default"
    for binding in rendered.all("ClusterRoleBinding") + rendered.all("RoleBinding"):
        assert binding["subjects"][0]["name"] == "default"


def _named_service_account(rendered: Rendered) -> None:
    assert rendered.one("ServiceAccount")["metadata"]["name"] == "nfs-sa"
    assert rendered.pod["serviceAccountName"] == "nfs-sa"
    for binding in rendered.all("ClusterRoleBinding") + rendered.all("RoleBinding"):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "nfs-sa", "namespace": "default"}
        ]


def _provisioner_name(rendered: Rendered) -> None:
    assert rendered.provisioner_name == "example.com/nfs"
    assert rendered.one("StorageClass")["provisioner"] == "example.com/nfs"
    # The Role may read and renew only the Lease the provisioner derives from its name.
    names = [r.get("resourceNames") for r in rendered.one("Role")["rules"]]
    assert ["example.com-nfs"] in names


def _leader_election_off(rendered: Rendered) -> None:
    assert rendered.env["ENABLE_LEADER_ELECTION"] == "false"
    assert not {"Role", "RoleBinding"} & set(rendered.kinds())
    assert "ClusterRole" in rendered.kinds()


def _name_override(rendered: Rendered) -> None:
    # Release "nfs-provisioner" does not contain "nfs-client-provisioner": prefixed, as upstream.
    assert rendered.deployment["metadata"]["name"] == "nfs-provisioner-nfs-client-provisioner"
    assert rendered.provisioner_name == "cluster.local/nfs-provisioner-nfs-client-provisioner"
    assert rendered.deployment["spec"]["selector"]["matchLabels"]["app"] == (
        "nfs-client-provisioner"
    )


def _fullname_override(rendered: Rendered) -> None:
    for kind in ("Deployment", "ServiceAccount"):
        assert rendered.one(kind)["metadata"]["name"] == "storage"
    assert rendered.one("ClusterRole")["metadata"]["name"] == "storage-runner"
    assert rendered.one("Service")["metadata"]["name"] == "storage-metrics"
    assert rendered.provisioner_name == "cluster.local/storage"


def _metrics_port(rendered: Rendered) -> None:
    container = rendered.container
    assert rendered.env["NFS_PROVISIONER_METRICS_ADDRESS"] == "0.0.0.0:9090"
    assert container["ports"] == [{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert rendered.one("Service")["spec"]["ports"][0]["targetPort"] == "metrics"


def _pdb(max_unavailable: int | str) -> Check:
    def check(rendered: Rendered) -> None:
        budget = rendered.one("PodDisruptionBudget")
        assert budget["apiVersion"] == "policy/v1"
        assert budget["spec"]["maxUnavailable"] == max_unavailable
        selector = rendered.deployment["spec"]["selector"]["matchLabels"]
        assert budget["spec"]["selector"]["matchLabels"] == selector

    return check


def _dig(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    return obj


def _is(kind: str, path: str, expected: Any) -> Check:
    """The one rendered ``kind`` holds ``expected`` at ``path`` (dotted; digits index lists)."""

    def check(rendered: Rendered) -> None:
        assert _dig(rendered.one(kind), path) == expected

    return check


def _both(*checks: Check) -> Check:
    def check(rendered: Rendered) -> None:
        for each in checks:
            each(rendered)

    return check


_POD = "spec.template.spec"
_CONTAINER = f"{_POD}.containers.0"


def _env(name: str, expected: str) -> Check:
    def check(rendered: Rendered) -> None:
        assert rendered.env[name] == expected

    return check


def _nfs_everywhere(server: str, path: str) -> Check:
    def check(rendered: Rendered) -> None:
        assert rendered.env["NFS_SERVER"] == server
        assert rendered.env["NFS_PATH"] == path
        (volume,) = rendered.pod["volumes"]
        assert volume["nfs"] == {"server": server, "path": path}

    return check


def _volume_name(rendered: Rendered) -> None:
    (volume,) = rendered.pod["volumes"]
    (mount,) = rendered.container["volumeMounts"]
    assert volume["name"] == mount["name"] == "export"
    assert mount["mountPath"] == "/persistentvolumes"


_EXTRA_EXPORTS = [
    {
        "server": "nfs2.example.test",
        "path": "/srv/fast",
        "mountPath": "/mnt/fast",
        "storageClass": {"name": "nfs-fast", "reclaimPolicy": "Retain"},
    },
    {"server": "192.0.2.20", "path": "/data"},
]


def _extra_exports(rendered: Rendered) -> None:
    main_volume = {
        "name": "nfs-subdir-external-provisioner-root",
        "nfs": {"server": "10.0.0.5", "path": "/nfs-storage"},
    }
    assert rendered.pod["volumes"] == [
        main_volume,
        {"name": "extra-export-0", "nfs": {"server": "nfs2.example.test", "path": "/srv/fast"}},
        {"name": "extra-export-1", "nfs": {"server": "192.0.2.20", "path": "/data"}},
    ]
    assert rendered.container["volumeMounts"] == [
        {"name": "nfs-subdir-external-provisioner-root", "mountPath": "/persistentvolumes"},
        {"name": "extra-export-0", "mountPath": "/mnt/fast"},
        {"name": "extra-export-1", "mountPath": "/persistentvolumes-1"},
    ]
    value = rendered.env["NFS_PROVISIONER_EXTRA_EXPORTS"]
    assert value == "nfs2.example.test:/srv/fast=/mnt/fast,192.0.2.20:/data=/persistentvolumes-1"
    # Parsed as the provisioner parses it: each export where the pod mounts it.
    assert parse_extra_exports(value) == (
        Export("nfs2.example.test", "/srv/fast", "/mnt/fast"),
        Export("192.0.2.20", "/data", "/persistentvolumes-1"),
    )
    # One more class, for the entry that asks for one: the main class's settings, its own
    # override, and the parameters that select the export.
    main, extra = rendered.all("StorageClass")
    assert main["metadata"]["name"] == "nfs-client"
    assert main["parameters"] == {"archiveOnDelete": "true"}
    assert main["reclaimPolicy"] == "Delete"
    assert extra["metadata"]["name"] == "nfs-fast"
    assert "annotations" not in extra["metadata"]
    assert extra["metadata"]["labels"] == main["metadata"]["labels"]
    assert extra["provisioner"] == main["provisioner"] == rendered.provisioner_name
    assert extra["parameters"] == {
        "server": "nfs2.example.test",
        "share": "/srv/fast",
        "archiveOnDelete": "true",
    }
    assert extra["reclaimPolicy"] == "Retain"
    assert extra["allowVolumeExpansion"] is True
    assert extra["volumeBindingMode"] == "Immediate"
    options = parse_class_parameters(extra["parameters"])
    assert (options.server, options.share) == ("nfs2.example.test", "/srv/fast")


def _class_parameter(name: str, expected: str) -> Check:
    """The class gets parameter ``name`` (besides the default archiveOnDelete), and the
    provisioner accepts it."""

    def check(rendered: Rendered) -> None:
        parameters = rendered.one("StorageClass")["parameters"]
        assert parameters == {"archiveOnDelete": "true", name: expected}
        parse_class_parameters(parameters)

    return check


def _absent(kind: str) -> Check:
    def check(rendered: Rendered) -> None:
        assert kind not in rendered.kinds()

    return check


def _upstream_names(rendered: Rendered) -> None:
    selector = rendered.deployment["spec"]["selector"]["matchLabels"]
    assert selector == {"app": "nfs-client-provisioner", "release": "nfs-provisioner"}
    assert rendered.provisioner_name == "cluster.local/nfs-provisioner-nfs-client-provisioner"
    # stable/nfs-client-provisioner's default export path.
    assert rendered.env["NFS_PATH"] == "/ifs/kubernetes"


# Keys whose every non-default value the chart refuses, with what its message says.
REFUSED = {
    "podSecurityPolicy.enabled": (True, "PodSecurityPolicy was removed in Kubernetes 1.25"),
    # Marks this chart's own values (templates/_helpers.tpl); nothing else is valid.
    "valuesOf": ("nfs-client-provisioner", "valuesOf"),
}


_MOUNT_OPTIONS = {"nfs": {"mountOptions": ["nfsvers=4.1", "hard"]}}
_SM_ON = {"metrics": {"serviceMonitor": {"enabled": True}}}
_SM_FORCED = {"metrics": {"serviceMonitor": {"force": True}}}
_SM_ON_FORCED = merged(_SM_ON, _SM_FORCED)
_RULE_ON = {"metrics": {"prometheusRule": {"enabled": True}}}
_RULE_FORCED = {"metrics": {"prometheusRule": {"force": True}}}
_RULE_ON_FORCED = merged(_RULE_ON, _RULE_FORCED)
_DASHBOARD_ON = {"metrics": {"dashboard": {"enabled": True}}}
_PDB_ON = {"podDisruptionBudget": {"enabled": True}}

CASES = [
    KeyCase("replicaCount", 3, _is("Deployment", "spec.replicas", 3)),
    KeyCase(
        "strategyType", "RollingUpdate", _is("Deployment", "spec.strategy.type", "RollingUpdate")
    ),
    KeyCase(
        "image.repository",
        "registry.example/nfs",
        _is("Deployment", f"{_CONTAINER}.image", "registry.example/nfs:0.1.0"),
    ),
    KeyCase(
        "image.tag",
        "v9.9.9",
        _is("Deployment", f"{_CONTAINER}.image", "ghcr.io/nfs-provisioner/nfs-provisioner:v9.9.9"),
    ),
    KeyCase(
        "image.pullPolicy", "Always", _is("Deployment", f"{_CONTAINER}.imagePullPolicy", "Always")
    ),
    KeyCase(
        "imagePullSecrets",
        [{"name": "regcred"}],
        _is("Deployment", f"{_POD}.imagePullSecrets", [{"name": "regcred"}]),
    ),
    KeyCase("nfs.server", "nfs.example.test", _nfs_everywhere("nfs.example.test", "/nfs-storage")),
    KeyCase("nfs.path", "/srv/export", _nfs_everywhere("10.0.0.5", "/srv/export")),
    KeyCase("nfs.mountOptions", ["nfsvers=4.1", "hard"], _static_export_volume),
    KeyCase("nfs.volumeName", "export", _volume_name),
    KeyCase("nfs.extraExports", _EXTRA_EXPORTS, _extra_exports),
    KeyCase(
        "nfs.reclaimPolicy",
        "Delete",
        _is("PersistentVolume", "spec.persistentVolumeReclaimPolicy", "Delete"),
        also=_MOUNT_OPTIONS,
    ),
    KeyCase("storageClass.create", False, _absent("StorageClass")),
    KeyCase("storageClass.provisionerName", "example.com/nfs", _provisioner_name),
    KeyCase(
        "storageClass.defaultClass",
        True,
        _is(
            "StorageClass",
            "metadata.annotations",
            {"storageclass.kubernetes.io/is-default-class": "true"},
        ),
    ),
    KeyCase("storageClass.name", "fast", _is("StorageClass", "metadata.name", "fast")),
    KeyCase(
        "storageClass.allowVolumeExpansion",
        False,
        _is("StorageClass", "allowVolumeExpansion", False),
    ),
    KeyCase("storageClass.reclaimPolicy", "Retain", _is("StorageClass", "reclaimPolicy", "Retain")),
    KeyCase(
        "storageClass.archiveOnDelete",
        False,
        _is("StorageClass", "parameters", {"archiveOnDelete": "false"}),
    ),
    KeyCase(
        "storageClass.onDelete",
        "retain",
        _is("StorageClass", "parameters", {"archiveOnDelete": "true", "onDelete": "retain"}),
    ),
    KeyCase(
        "storageClass.pathPattern",
        "${.PVC.namespace}/${.PVC.name}",
        _is(
            "StorageClass",
            "parameters",
            {"archiveOnDelete": "true", "pathPattern": "${.PVC.namespace}/${.PVC.name}"},
        ),
    ),
    KeyCase("storageClass.uid", 1000, _class_parameter("uid", "1000")),
    KeyCase("storageClass.gid", 2000, _class_parameter("gid", "2000")),
    KeyCase("storageClass.mode", "0770", _class_parameter("mode", "0770")),
    KeyCase(
        "storageClass.allowClaimOwnership", True, _class_parameter("allowClaimOwnership", "true")
    ),
    KeyCase("storageClass.archiveRetention", "30d", _class_parameter("archiveRetention", "30d")),
    KeyCase(
        "storageClass.accessModes",
        "ReadWriteMany",
        _both(
            _is("PersistentVolume", "spec.accessModes", ["ReadWriteMany"]),
            _is("PersistentVolumeClaim", "spec.accessModes", ["ReadWriteMany"]),
        ),
        also=_MOUNT_OPTIONS,
    ),
    KeyCase(
        "storageClass.volumeBindingMode",
        "WaitForFirstConsumer",
        _is("StorageClass", "volumeBindingMode", "WaitForFirstConsumer"),
    ),
    KeyCase(
        "storageClass.annotations",
        {"example.com/owner": "storage-team"},
        _is("StorageClass", "metadata.annotations", {"example.com/owner": "storage-team"}),
    ),
    KeyCase("leaderElection.enabled", False, _leader_election_off),
    # Refused unless rbac.externalRulesGranted says the hand-made rules are complete.
    KeyCase("rbac.create", False, _no_rbac, also={"rbac": {"externalRulesGranted": True}}),
    KeyCase("rbac.externalRulesGranted", True, _no_rbac, also={"rbac": {"create": False}}),
    KeyCase("compat", "nfs-client-provisioner", _upstream_names),
    KeyCase(
        "priorityClassName",
        "system-cluster-critical",
        _is("Deployment", f"{_POD}.priorityClassName", "system-cluster-critical"),
    ),
    KeyCase("serviceAccount.create", False, _no_service_account),
    KeyCase("serviceAccount.name", "nfs-sa", _named_service_account),
    KeyCase(
        "serviceAccount.annotations",
        {"example.com/role": "nfs"},
        _is("ServiceAccount", "metadata.annotations", {"example.com/role": "nfs"}),
    ),
    # helm merges a map into the chart's defaults: the new limit, the default requests.
    KeyCase(
        "resources",
        {"limits": {"memory": "512Mi", "cpu": "1"}},
        _is(
            "Deployment",
            f"{_CONTAINER}.resources",
            {**HARDENED_RESOURCES, "limits": {"memory": "512Mi", "cpu": "1"}},
        ),
    ),
    KeyCase(
        "nodeSelector",
        {"kubernetes.io/os": "linux"},
        _is("Deployment", f"{_POD}.nodeSelector", {"kubernetes.io/os": "linux"}),
    ),
    KeyCase(
        "tolerations",
        [{"key": "storage", "operator": "Exists"}],
        _is("Deployment", f"{_POD}.tolerations", [{"key": "storage", "operator": "Exists"}]),
    ),
    KeyCase(
        "affinity",
        EVERYTHING["affinity"],
        _is("Deployment", f"{_POD}.affinity", EVERYTHING["affinity"]),
    ),
    KeyCase("labels", {"team": "storage"}, _labels_everywhere),
    KeyCase(
        "podAnnotations",
        {"example.com/scrape": "true"},
        _is("Deployment", "spec.template.metadata.annotations", {"example.com/scrape": "true"}),
    ),
    KeyCase(
        "podSecurityContext",
        {"runAsUser": 65534, "runAsGroup": 65534},
        _is("Deployment", f"{_POD}.securityContext", {"runAsUser": 65534, "runAsGroup": 65534}),
    ),
    KeyCase(
        "securityContext",
        {"capabilities": {"add": ["CHOWN", "FOWNER"]}, "readOnlyRootFilesystem": None},
        _is(
            "Deployment",
            f"{_CONTAINER}.securityContext",
            {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "FOWNER"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            },
        ),
    ),
    KeyCase("podDisruptionBudget.enabled", True, _pdb(1)),
    KeyCase("podDisruptionBudget.maxUnavailable", "50%", _pdb("50%"), also=_PDB_ON),
    KeyCase("nameOverride", "nfs-client-provisioner", _name_override),
    KeyCase("fullnameOverride", "storage", _fullname_override),
    KeyCase("metrics.port", 9090, _metrics_port),
    KeyCase("metrics.service.enabled", False, _absent("Service")),
    KeyCase("metrics.service.type", "NodePort", _is("Service", "spec.type", "NodePort")),
    KeyCase(
        "metrics.service.port",
        9100,
        _is(
            "Service",
            "spec.ports",
            [{"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP"}],
        ),
    ),
    KeyCase(
        "metrics.service.annotations",
        {"prometheus.io/scrape": "true"},
        _is("Service", "metadata.annotations", {"prometheus.io/scrape": "true"}),
    ),
    KeyCase(
        "metrics.serviceMonitor.enabled",
        True,
        _is("ServiceMonitor", "kind", "ServiceMonitor"),
        also=_SM_FORCED,
    ),
    KeyCase(
        "metrics.serviceMonitor.force",
        True,
        _is("ServiceMonitor", "kind", "ServiceMonitor"),
        also=_SM_ON,
    ),
    KeyCase(
        "metrics.serviceMonitor.interval",
        "10s",
        _is("ServiceMonitor", "spec.endpoints.0.interval", "10s"),
        also=_SM_ON_FORCED,
    ),
    KeyCase(
        "metrics.serviceMonitor.scrapeTimeout",
        "5s",
        _is("ServiceMonitor", "spec.endpoints.0.scrapeTimeout", "5s"),
        also=_SM_ON_FORCED,
    ),
    KeyCase(
        "metrics.serviceMonitor.labels",
        {"release": "kps"},
        _is("ServiceMonitor", "metadata.labels.release", "kps"),
        also=_SM_ON_FORCED,
    ),
    KeyCase(
        "metrics.prometheusRule.enabled",
        True,
        _is("PrometheusRule", "kind", "PrometheusRule"),
        also=_RULE_FORCED,
    ),
    KeyCase(
        "metrics.prometheusRule.force",
        True,
        _is("PrometheusRule", "kind", "PrometheusRule"),
        also=_RULE_ON,
    ),
    KeyCase(
        "metrics.prometheusRule.for",
        "1h",
        _is("PrometheusRule", "spec.groups.0.rules.0.for", "1h"),
        also=_RULE_ON_FORCED,
    ),
    KeyCase(
        "metrics.prometheusRule.labels",
        {"role": "alerts"},
        _is("PrometheusRule", "metadata.labels.role", "alerts"),
        also=_RULE_ON_FORCED,
    ),
    KeyCase(
        "metrics.dashboard.enabled",
        True,
        _is("ConfigMap", "metadata.labels.grafana_dashboard", "1"),
    ),
    KeyCase(
        "metrics.dashboard.labels.grafana_dashboard",
        "yes",
        _is("ConfigMap", "metadata.labels.grafana_dashboard", "yes"),
        also=_DASHBOARD_ON,
    ),
    KeyCase(
        "metrics.dashboard.annotations",
        {"grafana_folder": "Storage"},
        _is("ConfigMap", "metadata.annotations", {"grafana_folder": "Storage"}),
        also=_DASHBOARD_ON,
    ),
    KeyCase(
        "metrics.dashboard.namespace",
        "monitoring",
        _is("ConfigMap", "metadata.namespace", "monitoring"),
        also=_DASHBOARD_ON,
    ),
    KeyCase(
        "topologySpreadConstraints",
        [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
            }
        ],
        _is(
            "Deployment",
            f"{_POD}.topologySpreadConstraints.0.labelSelector.matchLabels",
            {"app": "nfs-provisioner", "release": "nfs-provisioner"},
        ),
    ),
    KeyCase("log.format", "console", _env("NFS_PROVISIONER_LOG_FORMAT", "console")),
    KeyCase("log.level", "debug", _env("NFS_PROVISIONER_LOG_LEVEL", "debug")),
    KeyCase("workers", 4, _env("NFS_PROVISIONER_WORKERS", "4")),
    KeyCase("kubeApi.qps", 12.5, _env("NFS_PROVISIONER_KUBE_API_QPS", "12.5")),
    KeyCase("kubeApi.burst", 50, _env("NFS_PROVISIONER_KUBE_API_BURST", "50")),
    KeyCase("usage.scanInterval", "0", _env("NFS_PROVISIONER_USAGE_SCAN_INTERVAL", "0")),
    KeyCase("usage.scanRate", 500, _env("NFS_PROVISIONER_USAGE_SCAN_RATE", "500")),
    KeyCase("archiveSweepInterval", "15m", _env("NFS_PROVISIONER_ARCHIVE_SWEEP_INTERVAL", "15m")),
    KeyCase(
        "extraEnv",
        [{"name": "NFS_PROVISIONER_RESYNC_PERIOD", "value": "5m"}],
        _env("NFS_PROVISIONER_RESYNC_PERIOD", "5m"),
    ),
]


def test_every_values_key_has_a_case() -> None:
    keys = set(leaf_keys(chart_defaults()))
    assert keys >= UPSTREAM_KEYS, f"upstream keys missing: {sorted(UPSTREAM_KEYS - keys)}"
    assert sorted([case.key for case in CASES] + list(REFUSED)) == sorted(keys)


@pytest.mark.parametrize("key", sorted(REFUSED))
def test_refused_keys_say_what_to_change(key: str) -> None:
    value, message = REFUSED[key]
    assert message in render_error(merged(MINIMAL, nested(key, value)))


@pytest.mark.parametrize("case", CASES, ids=[case.key for case in CASES])
def test_values_key_changes_the_objects(case: KeyCase) -> None:
    default = chart_defaults()
    for part in case.key.split("."):
        default = default[part]
    assert case.value != default, "the case must use a non-default value"
    base = merged(MINIMAL, case.also or {})
    rendered = render(values=merged(base, nested(case.key, case.value)))
    case.check(rendered)
    if case.key == "rbac.externalRulesGranted":
        # Without it, the other key (rbac.create=false) is refused.
        assert "rbac.externalRulesGranted=true" in render_error(base)
    else:
        assert rendered.objects != render(values=base).objects


def test_everything_at_once_renders_every_kind() -> None:
    rendered = render(values=EVERYTHING)
    # The extra export brings its own static volume and claim (mount options) and class.
    assert rendered.kinds() == sorted(
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "PersistentVolume",
            "PersistentVolume",
            "PersistentVolumeClaim",
            "PersistentVolumeClaim",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "StorageClass",
            "StorageClass",
        ]
    )
    assert rendered.provisioner_name == "example.com/nfs-everything"


def test_env_is_what_the_provisioner_reads() -> None:
    """Every variable the chart sets is a setting of `nfs-provisioner run`, with its default."""
    knobs = {knob.env: knob for knob in KNOBS}
    rendered = render(values=MINIMAL)
    env = rendered.env
    assert set(env) <= set(knobs), f"unknown to the provisioner: {set(env) - set(knobs)}"
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    # The chart spells out the provisioner's defaults; they must not drift apart.
    for name in (
        "NFS_MOUNT_PATH",
        "NFS_PROVISIONER_METRICS_ADDRESS",
        "NFS_PROVISIONER_LOG_LEVEL",
        "NFS_PROVISIONER_WORKERS",
        "NFS_PROVISIONER_KUBE_API_BURST",
    ):
        assert env[name] == str(knobs[name].default), name
    # Spelled differently (10m, 1h), the same once parsed as the provisioner parses them.
    for name in (
        "NFS_PROVISIONER_KUBE_API_QPS",
        "NFS_PROVISIONER_USAGE_SCAN_INTERVAL",
        "NFS_PROVISIONER_USAGE_SCAN_RATE",
        "NFS_PROVISIONER_ARCHIVE_SWEEP_INTERVAL",
    ):
        assert knobs[name].parse(env[name]) == knobs[name].default, name
    assert knobs["ENABLE_LEADER_ELECTION"].parse(env["ENABLE_LEADER_ELECTION"]) is True
    # No extra exports by default: the variable is left out, the provisioner's default is none.
    assert "NFS_PROVISIONER_EXTRA_EXPORTS" not in env
    assert knobs["NFS_PROVISIONER_EXTRA_EXPORTS"].default == ()


def test_env_values_parse_as_the_provisioner_reads_them() -> None:
    """Every variable the chart sets from values, with every key off its default, parses."""
    knobs = {knob.env: knob for knob in KNOBS}
    env = render(values=EVERYTHING).env
    parsed = {
        name: knobs[name].parse(value) for name, value in env.items() if isinstance(value, str)
    }
    assert parsed["NFS_PROVISIONER_USAGE_SCAN_INTERVAL"] == 0
    assert parsed["NFS_PROVISIONER_USAGE_SCAN_RATE"] == 500
    assert parsed["NFS_PROVISIONER_ARCHIVE_SWEEP_INTERVAL"] == 900
    assert parsed["NFS_PROVISIONER_EXTRA_EXPORTS"] == (
        Export("nfs2.example.test", "/srv/second", "/mnt/second"),
    )
