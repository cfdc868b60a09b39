"""A real, local Kubernetes control plane for tests, the demo and the benchmarks.

Needs a source checkout: the binaries are built from the pinned Go modules under ``hack/``.
"""

from devcluster.binaries import Binaries, ensure_binaries
from devcluster.controlplane import ControlPlane, start_control_plane

__all__ = ["Binaries", "ControlPlane", "ensure_binaries", "start_control_plane"]
