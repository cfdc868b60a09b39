"""Fixtures of the e2e tier; the session's control plane and cluster are in tests/conftest.py."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from devcluster import ControlPlane

from tests.e2e.harness import Cluster, Provisioner, unique


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.path):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def remove_created_storage_classes(request: pytest.FixtureRequest) -> Iterator[None]:
    """StorageClasses are cluster-wide: a default class left behind would change later tests."""
    yield
    if "cluster" not in request.fixturenames:
        return
    cluster: Cluster = request.getfixturevalue("cluster")
    while cluster.created_classes:
        cluster.delete_storage_class(cluster.created_classes.pop())


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory an unprivileged process can traverse (pytest's tmp_path is root-only)."""
    directory = Path(tempfile.mkdtemp(prefix="nfs-provisioner-public-", dir="/tmp"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def namespace(cluster: Cluster) -> str:
    return cluster.create_namespace()


@pytest.fixture
def export(tmp_path: Path) -> Path:
    directory = tmp_path / "export"
    directory.mkdir()
    return directory


@pytest.fixture
def make_provisioner(
    control_plane: ControlPlane, export: Path
) -> Iterator[Callable[..., Provisioner]]:
    """Start provisioner processes with a unique name; all are stopped after the test."""
    started: list[Provisioner] = []
    name = f"test.local/{unique('nfs')}"

    def make(**options: object) -> Provisioner:
        options.setdefault("name", name)
        options.setdefault("export", export)
        provisioner = Provisioner(plane=control_plane, **options)  # type: ignore[arg-type]
        started.append(provisioner)
        return provisioner.start()

    yield make
    for provisioner in started:
        provisioner.stop()
