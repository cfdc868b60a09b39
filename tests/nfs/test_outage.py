"""An NFS server outage in the middle of a burst: stop NFS-Ganesha, start it again.

While the server is down, every call on the mount blocks in the kernel until it answers again
(as on a hard NFS mount): the workers that touch the export wait, the rest of the burst waits
in the queue, and readiness and the metrics say so. When the server is back, every claim is
served once, the released volume is archived, and nothing is left over.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from nfs_provisioner.nfs.archives import REGISTRY
from tests.e2e.harness import Cluster, Provisioner, wait_for
from tests.nfs.conftest import NfsExport

MakeProvisioner = Callable[..., Provisioner]
WORKERS = 4
BEFORE = 4
BURST = 24
STOP_AFTER = 6


def _threads(pid: int) -> dict[str, Counter[str]]:
    """Per thread name, the count of each kernel state ("S", "D", ...) and wait channel."""
    found: dict[str, Counter[str]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
            wchan = (task / "wchan").read_text().strip() or "-"
        except OSError:
            continue
        found.setdefault(name, Counter())[f"{state}:{wchan}"] += 1
    return found


def _blocked_on_mount(pid: int) -> int:
    """Threads inside a call on the mount: waiting for the FUSE daemon's answer (state S in
    request_wait_answer) or, uninterruptibly (state D), for a directory lock such a call holds."""
    return sum(
        n
        for states in _threads(pid).values()
        for key, n in states.items()
        if key.startswith("D:") or "request_wait_answer" in key or "fuse" in key
    )


def _bound(cluster: Cluster, namespace: str, names: list[str]) -> list[str]:
    bound = []
    for name in names:
        claim = cluster.claim(namespace, name)
        if claim is not None and (claim.get("status") or {}).get("phase") == "Bound":
            bound.append(name)
    return bound


def test_server_outage_mid_burst_blocks_boundedly_is_reported_and_loses_nothing(
    cluster: Cluster, namespace: str, nfs_export: NfsExport, make_provisioner: MakeProvisioner
) -> None:
    world = nfs_export.world
    provisioner = make_provisioner(
        extra_env={
            "NFS_PROVISIONER_WORKERS": str(WORKERS),
            "NFS_PROVISIONER_STUCK_OPERATION_AFTER": "2s",
            # The usage scan touches the export too; keep it out of the count.
            "NFS_PROVISIONER_USAGE_SCAN_INTERVAL": "0",
        }
    )
    assert provisioner.process is not None
    pid = provisioner.process.pid
    storage_class = cluster.create_storage_class(
        provisioner.name, parameters={"archiveOnDelete": "true"}
    )
    before = [f"before-{i}" for i in range(BEFORE)]
    for name in before:
        cluster.create_claim(namespace, name, storage_class=storage_class)
    for name in before:
        cluster.wait_bound(namespace, name)

    burst = [f"burst-{i}" for i in range(BURST)]
    for index, name in enumerate(burst):
        if index == STOP_AFTER:
            world.stop_server()
        cluster.create_claim(namespace, name, storage_class=storage_class)
    released = before[0]
    cluster.delete_claim(namespace, released)
    during = burst[STOP_AFTER:]
    try:
        # Every claim worker ends up waiting on the mount; the rest of the burst waits queued.
        wait_for(
            lambda: (
                provisioner.metric("nfs_provisioner_stuck_operations", {"queue": "claims"})
                == WORKERS
            ),
            timeout=30,
            what="every claim worker to be reported stuck",
        )
        wait_for(
            lambda: (
                provisioner.metric("nfs_provisioner_stuck_operations", {"queue": "volumes"}) == 1
            ),
            timeout=30,
            what="the release to be reported stuck",
        )
        assert provisioner.metric("nfs_provisioner_oldest_operation_seconds") >= 2
        # Bounded: the calls waiting on the mount are the busy workers', no other thread's
        # (the least of a few looks, so a thread passing through a short wait does not count).
        blocked = []
        for _ in range(3):
            blocked.append(_blocked_on_mount(pid))
            time.sleep(0.2)
        assert min(blocked) == WORKERS + 1, _threads(pid)
        print(f"\nduring the outage, threads of the provisioner: {_threads(pid)}")
        assert provisioner.http_status("/readyz") == 503
        assert provisioner.http_status("/healthz") == 200
        assert provisioner.process.poll() is None
        assert _bound(cluster, namespace, during) == []
    finally:
        world.start_server()

    wait_for(
        lambda: len(_bound(cluster, namespace, [*before[1:], *burst])) == BEFORE - 1 + BURST,
        timeout=120,
        what="every claim to be served after the outage",
    )
    wait_for(
        lambda: provisioner.metric("nfs_provisioner_stuck_operations") == 0,
        what="no operation stuck",
    )
    wait_for(lambda: provisioner.http_status("/readyz") == 200, what="readiness to return")

    # Nothing provisioned twice: one volume per claim, one directory per volume, no strays.
    volumes = [
        v
        for v in cluster.volumes()
        if (v["spec"].get("claimRef") or {}).get("namespace") == namespace
    ]
    claimed = Counter(v["spec"]["claimRef"]["name"] for v in volumes)
    assert sorted(claimed) == sorted([*before[1:], *burst])
    assert set(claimed.values()) == {1}
    directories = {v["spec"]["nfs"]["path"].rsplit("/", 1)[-1] for v in volumes}

    def on_server() -> set[str]:
        return {p.name for p in nfs_export.backing.iterdir()}

    released_dirs = wait_for(
        lambda: {d for d in on_server() if d.startswith(f"archived-{namespace}-{released}-")},
        what="the released volume's archive",
    )
    # Nothing else: no stray directory, only the archive registry beside the volumes.
    assert on_server() == directories | released_dirs | {REGISTRY.name}
    assert provisioner.metric("controller_persistentvolumeclaim_provision_total") == (
        BEFORE + BURST
    )
    assert provisioner.process.poll() is None
