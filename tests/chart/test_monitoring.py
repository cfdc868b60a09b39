"""ServiceMonitor, PrometheusRule, Grafana dashboard, `helm test`: rendered (no cluster).

That each alert's and each dashboard query's metrics and labels are really exported is
tests/e2e/test_chart_monitoring.py, against a running provisioner.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.chart.helm import CHART, Rendered, helm, render, render_error
from tests.chart.promql import problems, references
from tests.chart.values import MINIMAL, merged

MONITORING_API = (
    "--api-versions",
    "monitoring.coreos.com/v1/ServiceMonitor",
    "--api-versions",
    "monitoring.coreos.com/v1/PrometheusRule",
)
ALL_ON: dict[str, Any] = {
    "metrics": {
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "dashboard": {"enabled": True},
    }
}


def rule_exprs(rendered: Rendered) -> dict[str, str]:
    (group,) = rendered.one("PrometheusRule")["spec"]["groups"]
    return {rule["alert"]: rule["expr"] for rule in group["rules"]}


def dashboard_exprs(rendered: Rendered) -> list[str]:
    dashboard = json.loads(rendered.one("ConfigMap")["data"]["nfs-provisioner.json"])
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_off_by_default() -> None:
    kinds = render("r", MINIMAL, args=MONITORING_API).kinds()
    assert not {"ServiceMonitor", "PrometheusRule", "ConfigMap"} & set(kinds)


def test_rendered_only_where_the_cluster_serves_the_api(tmp_path: Any) -> None:
    values = merged(MINIMAL, ALL_ON)
    without_api = render("r", values)
    assert "ServiceMonitor" not in without_api.kinds()
    assert "PrometheusRule" not in without_api.kinds()
    assert "ConfigMap" in without_api.kinds()  # a ConfigMap needs no CRD
    with_api = render("r", values, args=MONITORING_API)
    assert {"ServiceMonitor", "PrometheusRule"} <= set(with_api.kinds())
    forced = merged(
        values,
        {"metrics": {"serviceMonitor": {"force": True}, "prometheusRule": {"force": True}}},
    )
    assert {"ServiceMonitor", "PrometheusRule"} <= set(render("r", forced).kinds())


def test_service_monitor_selects_the_metrics_service() -> None:
    values = merged(
        MINIMAL, ALL_ON, {"metrics": {"serviceMonitor": {"labels": {"release": "kps"}}}}
    )
    rendered = render("r", values, args=MONITORING_API)
    monitor, service = rendered.one("ServiceMonitor"), rendered.one("Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"] == "metrics"
    assert endpoint["honorLabels"] is True
    # The Prometheus selector label wins over the chart's own `release` label.
    assert monitor["metadata"]["labels"]["release"] == "kps"
    no_service = merged(values, {"metrics": {"service": {"enabled": False}}})
    assert "set metrics.service.enabled=true" in render_error(no_service, args=MONITORING_API)


def test_alerts_cover_what_the_provisioner_counts() -> None:
    rendered = render("r", merged(MINIMAL, ALL_ON), args=MONITORING_API)
    exprs = rule_exprs(rendered)
    assert set(exprs) == {
        "NFSProvisionerProvisioningFailing",
        "NFSProvisionerDeletionFailing",
        "NFSProvisionerRetriesAtMaxBackoff",
        "NFSProvisionerVolumeOverCapacity",
        "NFSProvisionerExpiredArchivesNotRemoved",
        "NFSProvisionerNoLeader",
    }
    # Every series an alert reads is this release's: its metrics Service is the job.
    for expr in exprs.values():
        for labels in references(expr).selectors.values():
            assert "job" in labels, expr
        assert 'job="r-nfs-provisioner-metrics"' in expr


def test_the_metric_check_finds_wrong_names_and_labels() -> None:
    exposed = {"good_total": {"class"}}
    assert problems(['sum by (class) (rate(good_total{job="j"}[5m]))'], exposed) == []
    assert problems(['rate(bad_total{job="j"}[5m])'], exposed)
    assert problems(['good_total{queue="x"}'], exposed)
    assert problems(['sum by (queue) (good_total{job="j"})'], exposed)
    with pytest.raises(ValueError):
        problems(["rate(good_total[5m])"], exposed)  # a bare name escapes the shape


def test_dashboard_is_grafana_json_with_the_sidecar_label() -> None:
    rendered = render("r", merged(MINIMAL, ALL_ON))
    config_map = rendered.one("ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["nfs-provisioner.json"])
    assert dashboard["uid"] == "nfs-provisioner"
    assert len(dashboard["panels"]) >= 8
    for expr in dashboard_exprs(rendered):
        references(expr)  # readable: every selector braced
    assert (CHART / "files" / "dashboard.json").read_text() == (
        config_map["data"]["nfs-provisioner.json"] + "\n"
    )


def test_helm_test_pod_checks_the_class_and_readiness() -> None:
    rendered = render("r", MINIMAL, namespace="storage", tests=True)
    pod = rendered.one("Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    spec = pod["spec"]
    assert spec["serviceAccountName"] == rendered.pod["serviceAccountName"]
    (container,) = spec["containers"]
    assert container["command"][:2] == ["python3", "-c"]
    assert container["command"][2] == (CHART / "files" / "helm-test.py").read_text()
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {
        "STORAGE_CLASS": "nfs-client",
        "PROVISIONER_NAME": "cluster.local/r-nfs-provisioner",
        "READYZ_URL": "http://r-nfs-provisioner-metrics.storage.svc:8080/readyz",
    }
    # Not an object `helm install` creates.
    assert "Pod" not in render("r", MINIMAL).kinds()


@pytest.mark.parametrize(
    "compat", ["", "nfs-client-provisioner", "nfs-subdir-external-provisioner"]
)
def test_helm_lint_strict_with_everything_on(compat: str, tmp_path: Any) -> None:
    values = merged(
        MINIMAL,
        ALL_ON,
        {
            "compat": compat,
            "nfs": {"mountOptions": ["nfsvers=4.1"]},
            "podDisruptionBudget": {"enabled": True},
            "metrics": {"serviceMonitor": {"force": True}, "prometheusRule": {"force": True}},
            "topologySpreadConstraints": [
                {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}
            ],
        },
    )
    path = tmp_path / "values.yaml"
    path.write_text(json.dumps(values))
    result = helm("lint", str(CHART), "--strict", "--values", str(path))
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout
