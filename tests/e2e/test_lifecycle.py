"""Restarts and leader election: nothing is provisioned twice, one instance acts at a time."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.e2e.harness import FAST_LEADER_ELECTION, Cluster, Provisioner, elect, wait_for

MakeProvisioner = Callable[..., Provisioner]


def _volumes_of(cluster: Cluster, storage_class: str) -> list[dict[str, object]]:
    return [v for v in cluster.volumes() if v["spec"].get("storageClassName") == storage_class]


def test_restart_part_way_provisions_nothing_twice(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    first = make_provisioner()
    storage_class = cluster.create_storage_class(first.name)
    count = 40
    for index in range(count):
        cluster.create_claim(namespace, f"claim-{index}", storage_class=storage_class)
    wait_for(lambda: len(_volumes_of(cluster, storage_class)) >= 5, what="first volumes")
    first.stop(kill=True)

    second = make_provisioner()
    for index in range(count):
        cluster.wait_bound(namespace, f"claim-{index}", timeout=90)
    volumes = _volumes_of(cluster, storage_class)
    assert len(volumes) == count
    claim_uids = {v["spec"]["claimRef"]["uid"] for v in volumes}  # type: ignore[index]
    assert len(claim_uids) == count
    assert sorted(p.name for p in export.iterdir()) == sorted(
        f"{namespace}-claim-{i}-{cluster.claim(namespace, f'claim-{i}')['spec']['volumeName']}"  # type: ignore[index]
        for i in range(count)
    )
    assert second.metric("controller_persistentvolumeclaim_provision_total") < count


def test_only_the_leader_acts_and_a_standby_takes_over(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    first = make_provisioner(**FAST_LEADER_ELECTION)
    second = make_provisioner(**FAST_LEADER_ELECTION)
    storage_class = cluster.create_storage_class(first.name)

    leader, standby = elect(first, second)
    for index in range(5):
        cluster.create_claim(namespace, f"before-{index}", storage_class=storage_class)
    for index in range(5):
        cluster.wait_bound(namespace, f"before-{index}")
    assert leader.metric("controller_persistentvolumeclaim_provision_total") == 5
    assert standby.metric("controller_persistentvolumeclaim_provision_total") == 0
    assert standby.metric("nfs_provisioner_leader") == 0

    leader.stop()
    wait_for(
        lambda: standby.metric("nfs_provisioner_leader") == 1,
        timeout=30,
        what="the standby to take over",
    )
    for index in range(5):
        cluster.create_claim(namespace, f"after-{index}", storage_class=storage_class)
    for index in range(5):
        cluster.wait_bound(namespace, f"after-{index}")
    assert standby.metric("controller_persistentvolumeclaim_provision_total") == 5
    assert len(list(export.iterdir())) == 10
