"""Endpoints, metrics, logs, and the retry state of a claim that keeps failing."""

from __future__ import annotations

from collections.abc import Callable

from tests.e2e.harness import Cluster, Provisioner, wait_for

MakeProvisioner = Callable[..., Provisioner]

CONTROLLER_METRICS = (
    "controller_persistentvolumeclaim_provision_total",
    "controller_persistentvolumeclaim_provision_failed_total",
    "controller_persistentvolumeclaim_provision_duration_seconds",
    "controller_persistentvolume_delete_total",
    "controller_persistentvolume_delete_failed_total",
    "controller_persistentvolume_delete_duration_seconds",
)


def test_endpoints_metrics_and_log_context(
    cluster: Cluster, namespace: str, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner()
    assert provisioner.http_status("/healthz") == 200
    assert provisioner.http_status("/readyz") == 200
    assert provisioner.http_status("/nothing-here") == 404
    exposition = provisioner.metrics()
    for name in CONTROLLER_METRICS:
        assert f"# TYPE {name.removesuffix('_total')}" in exposition, name
    for name in (
        "nfs_provisioner_workqueue_depth",
        "nfs_provisioner_workqueue_retries_total",
        "nfs_provisioner_leader",
    ):
        assert f"# HELP {name}" in exposition, name

    storage_class = cluster.create_storage_class(provisioner.name)
    cluster.create_claim(namespace, "logged", storage_class=storage_class)
    claim = cluster.wait_bound(namespace, "logged")
    record = wait_for(
        lambda: next(
            (r for r in provisioner.log_records() if r.get("event") == "volume provisioned"), None
        ),
        what="provisioning log line",
    )
    assert record["claim"] == f"{namespace}/logged"
    assert record["pv"] == claim["spec"]["volumeName"]
    assert record["level"] == "info"
    assert record["timestamp"]
    assert (
        provisioner.metric(
            "controller_persistentvolumeclaim_provision_duration_seconds_count",
            {"class": storage_class},
        )
        == 1
    )


def test_failing_claim_keeps_retrying_at_the_cap_and_says_so(
    cluster: Cluster, namespace: str, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner(
        extra_env={
            "NFS_PROVISIONER_RETRY_BASE_DELAY": "20ms",
            "NFS_PROVISIONER_RETRY_MAX_DELAY": "100ms",
        }
    )
    storage_class = cluster.create_storage_class(provisioner.name, parameters={"onDelete": "shred"})
    cluster.create_claim(namespace, "doomed", storage_class=storage_class)

    capped = cluster.wait_event(namespace, "doomed", "RetryBackoffCapped")
    assert capped["type"] == "Warning"
    assert "failed 15 times" in capped["message"]
    assert "until it succeeds" in capped["message"]
    # Past the point where the Go program gives up, attempts go on.
    wait_for(
        lambda: (
            provisioner.metric(
                "controller_persistentvolumeclaim_provision_failed_total", {"class": storage_class}
            )
            >= 25
        ),
        what="attempts beyond the Go program's 15",
    )
    assert provisioner.metric("nfs_provisioner_workqueue_retries_total", {"queue": "claims"}) >= 25
    wait_for(
        lambda: (
            provisioner.metric(
                "nfs_provisioner_workqueue_items_at_max_backoff", {"queue": "claims"}
            )
            == 1
        ),
        what="capped gauge",
    )
    failed = cluster.events(
        namespace, name="doomed", reason="ProvisioningFailed", source=provisioner.name
    )
    assert len(failed) == 1  # repeats are aggregated into one event's count
    wait_for(
        lambda: (
            cluster.events(
                namespace, name="doomed", reason="ProvisioningFailed", source=provisioner.name
            )[0].get("count", 0)
            > 1
        ),
        what="event count to grow",
    )
    assert "onDelete" in failed[0]["message"] and "delete, retain" in failed[0]["message"]
