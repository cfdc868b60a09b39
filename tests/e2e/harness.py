"""Helpers for end-to-end tests: the shared clients (devcluster.harness) and root-only setups."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from devcluster import ControlPlane
from devcluster.harness import (
    FAST_LEADER_ELECTION,
    Cluster,
    JsonObject,
    Provisioner,
    elect,
    running,
    unique,
    wait_for,
    world_readable_kubeconfig,
)

__all__ = [
    "FAST_LEADER_ELECTION",
    "NOBODY",
    "Cluster",
    "JsonObject",
    "Provisioner",
    "elect",
    "require_root",
    "running",
    "unique",
    "unprivileged",
    "wait_for",
    "world_readable_kubeconfig",
]


# The uid an unprivileged provisioner runs as: what a root-squashed export sees.
NOBODY = 65534


def require_root(what: str) -> None:
    """Skip, with the reason, a test that needs root to stage its fault; CI runs as root."""
    if os.geteuid() != 0:
        pytest.skip(f"needs root to {what}; CI runs as root")


def unprivileged(
    make: Callable[..., Provisioner], plane: ControlPlane, public_dir: Path, export: Path
) -> Provisioner:
    """A provisioner running as NOBODY on ``export``, with a kubeconfig it can read."""
    return make(
        export=export, user=NOBODY, kubeconfig=world_readable_kubeconfig(plane, public_dir / "kube")
    )
