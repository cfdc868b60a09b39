"""A burst of claims at once: every one Bound, with exactly one PV and one directory."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.e2e.harness import Cluster, Provisioner

MakeProvisioner = Callable[..., Provisioner]
BURST = 50


def test_burst_of_claims_is_served_completely_and_exactly_once(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner()
    storage_class = cluster.create_storage_class(provisioner.name)
    with ThreadPoolExecutor(16) as pool:
        created = list(
            pool.map(
                lambda i: cluster.create_claim(
                    namespace, f"burst-{i}", storage_class=storage_class
                ),
                range(BURST),
            )
        )
    for index in range(BURST):
        cluster.wait_bound(namespace, f"burst-{index}", timeout=120)

    volumes = [v for v in cluster.volumes() if v["spec"].get("storageClassName") == storage_class]
    assert sorted(v["metadata"]["name"] for v in volumes) == sorted(
        f"pvc-{claim['metadata']['uid']}" for claim in created
    )
    assert sorted(p.name for p in export.iterdir()) == sorted(
        f"{namespace}-{claim['metadata']['name']}-pvc-{claim['metadata']['uid']}"
        for claim in created
    )
    assert provisioner.metric("controller_persistentvolumeclaim_provision_total") == BURST
    assert provisioner.metric("nfs_provisioner_events_total", {"result": "dropped"}) == 0
    assert provisioner.metric("nfs_provisioner_events_total", {"result": "failed"}) == 0
