"""Session fixtures shared by the e2e and NFS tiers: one real control plane (etcd,
kube-apiserver, kube-controller-manager) for the whole run, started on first use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from devcluster import ControlPlane, ensure_binaries, start_control_plane

from tests.e2e.harness import Cluster


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    # The binder's default 20 QPS would make every burst test wait on the controller-manager;
    # what is tested here is the provisioner.
    with start_control_plane(
        binaries=ensure_binaries(), controller_manager_qps=500, controller_manager_burst=1000
    ) as plane:
        yield plane


@pytest.fixture(scope="session")
def cluster(control_plane: ControlPlane) -> Cluster:
    return Cluster.connect(control_plane)
