"""Faults clusters have every day: a killed provisioner, a restarted API server, a dead leader."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from devcluster import ControlPlane

from nfs_provisioner.kube import ApiError
from tests.e2e.harness import FAST_LEADER_ELECTION, Cluster, Provisioner, elect, wait_for

MakeProvisioner = Callable[..., Provisioner]


def _create_claims(
    cluster: Cluster, namespace: str, storage_class: str, count: int, prefix: str = "claim"
) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(16) as pool:
        return list(
            pool.map(
                lambda i: cluster.create_claim(
                    namespace, f"{prefix}-{i}", storage_class=storage_class
                ),
                range(count),
            )
        )


def _our_volumes(cluster: Cluster, storage_class: str) -> list[dict[str, Any]]:
    return [v for v in cluster.volumes() if v["spec"].get("storageClassName") == storage_class]


def _assert_exactly_one_volume_and_directory_each(
    cluster: Cluster,
    namespace: str,
    export: Path,
    storage_class: str,
    claims: list[dict[str, Any]],
) -> None:
    for claim in claims:
        cluster.wait_bound(namespace, claim["metadata"]["name"], timeout=180)
    volumes = _our_volumes(cluster, storage_class)
    assert sorted(v["metadata"]["name"] for v in volumes) == sorted(
        f"pvc-{c['metadata']['uid']}" for c in claims
    )
    assert sorted(v["spec"]["claimRef"]["uid"] for v in volumes) == sorted(
        c["metadata"]["uid"] for c in claims
    )
    # No stray directory: exactly the claims' directories, no archives of half-done work.
    assert sorted(p.name for p in export.iterdir()) == sorted(
        f"{namespace}-{c['metadata']['name']}-pvc-{c['metadata']['uid']}" for c in claims
    )


def test_sigkill_mid_burst_then_restart_loses_and_duplicates_nothing(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    first = make_provisioner()
    storage_class = cluster.create_storage_class(first.name)
    claims = _create_claims(cluster, namespace, storage_class, 300)
    wait_for(lambda: len(_our_volumes(cluster, storage_class)) >= 30, what="first volumes")
    first.stop(kill=True)
    served_by_first = len(_our_volumes(cluster, storage_class))
    assert served_by_first < 300, "the kill came too late to interrupt the burst"

    second = make_provisioner()
    _assert_exactly_one_volume_and_directory_each(cluster, namespace, export, storage_class, claims)
    # The second instance created only what the first had not: every other claim was skipped
    # from the cache, or (created just before the kill) answered AlreadyExists.
    assert (
        second.metric("controller_persistentvolumeclaim_provision_total", {"class": storage_class})
        <= 300 - served_by_first
    )


def test_api_server_restart_mid_burst_is_survived_without_a_restart(
    cluster: Cluster,
    control_plane: ControlPlane,
    namespace: str,
    export: Path,
    make_provisioner: MakeProvisioner,
) -> None:
    # Without leader election: a leader that cannot renew its lease for the renew deadline
    # exits on purpose (see the leader tests); this test is about the watches.
    provisioner = make_provisioner()
    storage_class = cluster.create_storage_class(provisioner.name)
    claims = _create_claims(cluster, namespace, storage_class, 100, prefix="before")

    control_plane.stop_process("kube-apiserver")
    wait_for(
        lambda: provisioner.http_status("/readyz") == 503,
        timeout=30,
        what="readiness to report the outage",
    )
    assert provisioner.http_status("/healthz") == 200
    control_plane.start_apiserver()
    wait_for(
        lambda: provisioner.http_status("/readyz") == 200,
        timeout=60,
        what="readiness after the API server is back",
    )

    claims += _create_claims(cluster, namespace, storage_class, 50, prefix="after")
    _assert_exactly_one_volume_and_directory_each(cluster, namespace, export, storage_class, claims)
    assert provisioner.process is not None and provisioner.process.poll() is None
    assert any(
        r.get("event") in ("watch failed, retrying", "watch expired, relisting")
        for r in provisioner.log_records()
    )


def test_expired_watch_leads_to_a_relist_not_a_stall(
    cluster: Cluster,
    control_plane: ControlPlane,
    namespace: str,
    make_provisioner: MakeProvisioner,
) -> None:
    provisioner = make_provisioner()
    storage_class = cluster.create_storage_class(provisioner.name)
    cluster.create_claim(namespace, "early", storage_class=storage_class)
    cluster.wait_bound(namespace, "early")
    relists_before = provisioner.metric("nfs_provisioner_informer_relists_total")

    # Compact etcd to its current revision while the API server is down: the watches resume
    # from a version that no longer exists and must get 410 Gone.
    control_plane.stop_process("kube-apiserver", kill=True)
    revision = control_plane.compact_etcd()
    assert revision > 0
    control_plane.start_apiserver()

    wait_for(
        lambda: provisioner.metric("nfs_provisioner_informer_relists_total") > relists_before,
        timeout=60,
        what="a relist after 410 Gone",
    )
    cluster.create_claim(namespace, "late", storage_class=storage_class)
    cluster.wait_bound(namespace, "late")


def _timestamp(record: dict[str, Any]) -> datetime.datetime:
    return datetime.datetime.fromisoformat(str(record["timestamp"]).replace("Z", "+00:00"))


def test_killed_leader_is_replaced_and_the_two_never_act_together(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    # One worker each: the burst must outlast the kill, or the leader does it all alone (seen on
    # an idle machine, where 150 claims took less than the time to notice the first 10).
    slow = {
        **FAST_LEADER_ELECTION,
        "extra_env": {**FAST_LEADER_ELECTION["extra_env"], "NFS_PROVISIONER_WORKERS": "1"},
    }
    first = make_provisioner(**slow)
    second = make_provisioner(**slow)
    storage_class = cluster.create_storage_class(first.name)
    leader, standby = elect(first, second)

    claims = _create_claims(cluster, namespace, storage_class, 300)
    wait_for(lambda: len(_our_volumes(cluster, storage_class)) >= 10, what="first volumes")
    leader.stop(kill=True)
    _assert_exactly_one_volume_and_directory_each(cluster, namespace, export, storage_class, claims)

    took_over = wait_for(
        lambda: next((r for r in standby.log_records() if r.get("event") == "became leader"), None),
        what="the standby's takeover in its log",
    )
    leader_actions = [r for r in leader.log_records() if r.get("event") == "volume provisioned"]
    standby_actions = [r for r in standby.log_records() if r.get("event") == "volume provisioned"]
    assert leader_actions and standby_actions
    # Every action of the old leader precedes the new leader's takeover.
    assert max(_timestamp(r) for r in leader_actions) < _timestamp(took_over)
    assert min(_timestamp(r) for r in standby_actions) >= _timestamp(took_over)


def test_leader_that_cannot_renew_stops_at_once(
    cluster: Cluster, control_plane: ControlPlane, make_provisioner: MakeProvisioner
) -> None:
    leader = make_provisioner(**FAST_LEADER_ELECTION)
    wait_for(lambda: leader.metric("nfs_provisioner_leader") == 1, what="leadership")
    control_plane.stop_process("kube-apiserver", kill=True)
    try:
        process = leader.process
        assert process is not None
        exit_code = wait_for(process.poll, timeout=30, what="the leader to stop")
    finally:
        control_plane.start_apiserver()
    assert exit_code == 1
    assert any(r.get("event") == "lost the leader lease" for r in leader.log_records())


def _refuse_volumes_of_class(cluster: Cluster, storage_class: str) -> str:
    """A ValidatingAdmissionPolicy that makes the API server refuse this class's PVs."""
    name = f"refuse-{storage_class}"
    cluster.api.create(
        "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies",
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["persistentvolumes"],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": f"object.spec.storageClassName != '{storage_class}'",
                        "message": f"PVs of class {storage_class} are refused by policy",
                    }
                ],
            },
        },
    )
    cluster.api.create(
        "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings",
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {"policyName": name, "validationActions": ["Deny"]},
        },
    )
    probe = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"probe-{storage_class}"},
        "spec": {
            "capacity": {"storage": "1Mi"},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": storage_class,
            "nfs": {"server": "probe", "path": "/probe"},
        },
    }

    def refused() -> bool:
        try:
            cluster.api.request(
                "POST", "/api/v1/persistentvolumes", body=probe, params={"dryRun": "All"}
            )
        except ApiError:
            return True
        return False

    wait_for(refused, what="the admission policy to take effect")
    return name


def _allow_volumes_again(cluster: Cluster, policy: str) -> None:
    base = "/apis/admissionregistration.k8s.io/v1"
    cluster.api.delete(f"{base}/validatingadmissionpolicybindings/{policy}")
    cluster.api.delete(f"{base}/validatingadmissionpolicies/{policy}")


def test_refused_volume_leaves_no_directory_and_no_archive_behind(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner()
    # Default parameters archive on delete: undoing a refused PV must still not archive.
    storage_class = cluster.create_storage_class(provisioner.name)
    policy = _refuse_volumes_of_class(cluster, storage_class)
    try:
        cluster.create_claim(namespace, "refused", storage_class=storage_class)
        wait_for(
            lambda: (
                provisioner.metric(
                    "controller_persistentvolumeclaim_provision_failed_total",
                    {"class": storage_class},
                )
                >= 2
            ),
            timeout=90,
            what="two refused attempts",
        )
        event = cluster.wait_event(
            namespace, "refused", "ProvisioningFailed", source=provisioner.name
        )
        assert event["message"].endswith("Deleting the volume.")
        assert "refused by policy" in event["message"]
        wait_for(lambda: list(export.iterdir()) == [], what="the directory to be undone")
    finally:
        _allow_volumes_again(cluster, policy)
    cluster.wait_bound(namespace, "refused", timeout=90)
    (directory,) = export.iterdir()
    assert not directory.name.startswith("archived-")
