"""The chart's alerts and dashboard read what a running provisioner really exports; `helm test`.

The provisioner runs against the real control plane and is made to produce every kind of
sample (volumes provisioned and deleted, a class it refuses, a deletion it refuses, bound
volumes measured by the usage scan); then /metrics is scraped and each metric name and label
that an alert expression or a dashboard query reads must be in it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from devcluster import ControlPlane

from nfs_provisioner.kube import ApiError
from tests.chart.cluster import (
    container_env,
    helm_install,
    helm_uninstall,
    like_the_pod,
    service_account_kubeconfig,
)
from tests.chart.helm import CHART, helm_binary, helm_environment, render
from tests.chart.promql import exposed_labels, problems, references
from tests.chart.test_monitoring import ALL_ON, MONITORING_API, dashboard_exprs, rule_exprs
from tests.chart.values import MINIMAL, merged
from tests.e2e.harness import Cluster, Provisioner, running, unique, wait_for

MakeProvisioner = Callable[..., Provisioner]


def test_every_alert_and_panel_reads_exported_metrics_and_labels(
    cluster: Cluster, namespace: str, make_provisioner: MakeProvisioner, export: Path
) -> None:
    rendered = render("r", merged(MINIMAL, ALL_ON), args=MONITORING_API)
    exprs = [*rule_exprs(rendered).values(), *dashboard_exprs(rendered)]
    wanted = {name for expr in exprs for name in references(expr).selectors}

    provisioner = make_provisioner(extra_env={"NFS_PROVISIONER_USAGE_SCAN_INTERVAL": "1s"})
    good = cluster.create_storage_class(provisioner.name)
    refused = cluster.create_storage_class(provisioner.name, parameters={"onDelete": "shred"})
    cluster.create_claim(namespace, "kept", storage_class=good)
    cluster.create_claim(namespace, "gone", storage_class=good)
    cluster.create_claim(namespace, "doomed", storage_class=refused)
    kept = cluster.wait_bound(namespace, "kept")["spec"]["volumeName"]
    (export / f"{namespace}-kept-{kept}" / "data").write_bytes(b"x" * 4096)
    gone = cluster.wait_bound(namespace, "gone")["spec"]["volumeName"]
    cluster.delete_claim(namespace, "gone")
    wait_for(lambda: cluster.volume(gone) is None, what=f"PV {gone} deleted")
    # A volume of ours whose path is outside NFS_PATH: its deletion is refused.
    claim = cluster.create_claim(namespace, "outside", storage_class=good)
    outside = unique("pvc-outside")
    cluster.create_nfs_volume(
        outside,
        server=provisioner.server,
        path="/somewhere/else",
        storage_class=good,
        provisioned_by=provisioner.name,
        claim_ref={
            "kind": "PersistentVolumeClaim",
            "namespace": namespace,
            "name": "outside",
            "uid": claim["metadata"]["uid"],
        },
    )
    try:
        cluster.wait_bound(namespace, "outside")
        cluster.delete_claim(namespace, "outside")

        def everything_exported() -> dict[str, set[str]] | None:
            exposed = exposed_labels(provisioner.metrics())
            missing = {
                name
                for name in wanted
                if name not in exposed
                and f"{name}_bucket" not in exposed  # a histogram is read through its series
            }
            return None if missing else exposed

        exposed = wait_for(everything_exported, timeout=60, what=f"samples of {sorted(wanted)}")
        assert problems(exprs, exposed) == []
        # The check looks at real samples: the labels of the volume metrics are there.
        assert {"namespace", "persistentvolumeclaim", "persistentvolume"} <= exposed[
            "nfs_provisioner_volume_used_bytes"
        ]
    finally:
        cluster.delete_volume(outside)


def _helm_test(
    control_plane: ControlPlane, kubeconfig_token: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """files/helm-test.py as the `helm test` pod runs it, pointed at the test control plane."""
    script = (CHART / "files" / "helm-test.py").read_text()
    return subprocess.run(
        [sys.executable, "-c", script],
        env={
            "KUBERNETES_API": control_plane.server,
            "TOKEN_FILE": kubeconfig_token,
            "CA_FILE": str(control_plane.ca_file),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_helm_test_checks_the_class_and_readiness(
    cluster: Cluster, control_plane: ControlPlane, export: Path, tmp_path: Path
) -> None:
    namespace = cluster.create_namespace("helmtest")
    release = unique("ht")
    class_name = unique("nfs")
    args = ("--set", "nfs.server=nfs.example.test", "--set", f"storageClass.name={class_name}")
    helm_install(control_plane, release, namespace, *args)
    try:
        hooks = render(
            release, merged(MINIMAL, {"storageClass": {"name": class_name}}), tests=True
        ).one("Pod")
        (container,) = hooks["spec"]["containers"]
        env = {e["name"]: e["value"] for e in container["env"]}
        deployment = cluster.api.get(
            f"/apis/apps/v1/namespaces/{namespace}/deployments/{release}-nfs-provisioner"
        )
        account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        assert hooks["spec"]["serviceAccountName"] == account
        kubeconfig = service_account_kubeconfig(
            cluster.api, control_plane, namespace, account, tmp_path / "sa.kubeconfig"
        )
        token = tmp_path / "token"
        token.write_text(kubeconfig.read_text().split('"token": "')[1].split('"')[0])
        provisioner = like_the_pod(
            control_plane, container_env(deployment, namespace), export, kubeconfig=kubeconfig
        )
        # In the cluster READYZ_URL is the metrics Service; here, the process's own port.
        readyz = f"http://127.0.0.1:{provisioner.metrics_port}/readyz"
        env["READYZ_URL"] = readyz
        with running(provisioner):
            passed = _helm_test(control_plane, str(token), env)
            assert passed.returncode == 0, passed.stdout + passed.stderr
            assert passed.stdout.splitlines() == ["ok   StorageClass", "ok   readiness"]
            wrong = _helm_test(
                control_plane, str(token), {**env, "PROVISIONER_NAME": "cluster.local/other"}
            )
            assert wrong.returncode == 1
            assert "names provisioner" in wrong.stdout
        stopped = _helm_test(control_plane, str(token), env)
        assert stopped.returncode == 1
        assert f"FAIL provisioner not ready: {readyz}" in stopped.stdout
        missing = _helm_test(control_plane, str(token), {**env, "STORAGE_CLASS": unique("none")})
        assert "does not exist" in missing.stdout
    finally:
        helm_uninstall(control_plane, release, namespace)


def _crd(kind: str, plural: str) -> dict[str, Any]:
    """The Prometheus Operator's CRD, reduced to what the API server needs to serve the kind."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


def test_monitoring_objects_follow_the_clusters_api(
    cluster: Cluster, control_plane: ControlPlane, tmp_path: Path
) -> None:
    """Without the CRDs nothing is installed (NOTES say so); with them, both objects are."""
    namespace = cluster.create_namespace("monitoring")
    values = merged(MINIMAL, ALL_ON, {"storageClass": {"create": False}})
    values_path = tmp_path / "values.yaml"
    values_path.write_text(json.dumps(values))
    crds = [_crd("ServiceMonitor", "servicemonitors"), _crd("PrometheusRule", "prometheusrules")]
    paths = [
        f"/apis/monitoring.coreos.com/v1/namespaces/{namespace}/servicemonitors",
        f"/apis/monitoring.coreos.com/v1/namespaces/{namespace}/prometheusrules",
    ]

    def helm(*args: str) -> subprocess.CompletedProcess[str]:
        # A fresh discovery cache: the API server's groups change within this test.
        return subprocess.run(
            [str(helm_binary()), *args, "--namespace", namespace],
            env={**helm_environment(), "KUBECACHEDIR": str(tmp_path / f"kube-{unique('c')}")},
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )

    kubeconfig = ("--kubeconfig", str(control_plane.kubeconfig))
    installed = helm("install", "without", str(CHART), "-f", str(values_path), *kubeconfig)
    assert "NOTE: no ServiceMonitor was rendered" in installed.stdout
    assert "NOTE: no PrometheusRule was rendered" in installed.stdout
    manifest = helm("get", "manifest", "without", *kubeconfig).stdout
    assert "kind: ServiceMonitor" not in manifest and "kind: PrometheusRule" not in manifest
    try:
        for crd in crds:
            cluster.api.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)

        def served() -> bool:
            try:
                return all(cluster.api.get(path) is not None for path in paths)
            except ApiError:
                return False

        wait_for(served, what="the monitoring.coreos.com kinds to be served")
        helm("install", "with", str(CHART), "-f", str(values_path), *kubeconfig)
        monitors = cluster.api.get(paths[0])["items"]
        rules = cluster.api.get(paths[1])["items"]
        assert [m["metadata"]["name"] for m in monitors] == ["with-nfs-provisioner"]
        assert [r["metadata"]["name"] for r in rules] == ["with-nfs-provisioner"]
        assert len(rules[0]["spec"]["groups"][0]["rules"]) == 6
    finally:
        helm("uninstall", "without", *kubeconfig)
        subprocess.run(
            [str(helm_binary()), "uninstall", "with", "--namespace", namespace, *kubeconfig],
            env=helm_environment(),
            capture_output=True,
            check=False,
        )
        for crd in crds:
            with suppress(ApiError):
                cluster.api.delete(
                    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                    + crd["metadata"]["name"]
                )
