"""The NFS tier: the real provisioner on a fuse-nfs mount of a real NFS-Ganesha export.

One NFS world for the session (exports with root_squash, no_root_squash and all_squash); each
test gets its own directory on an export, mounted where the provisioner will see it, so its
``NFS_PATH`` is exactly what the server exports there. The session's control plane and the e2e
tier's fixtures are reused; ``export`` and ``make_provisioner`` are pointed at NFS, so e2e
tests imported here run on the NFS mount unchanged.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from devcluster import ControlPlane
from nfsworld import Mount, NfsWorld, Squash, start_nfs_world

from tests.e2e.conftest import namespace, public_dir, remove_created_storage_classes
from tests.e2e.harness import Provisioner, unique

__all__ = ["namespace", "public_dir", "remove_created_storage_classes"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/nfs" in str(item.path):
            item.add_marker(pytest.mark.nfs)


@dataclass(frozen=True)
class NfsExport:
    """A test's directory on an export: ``backing`` on the server, ``mount`` on the client."""

    world: NfsWorld
    squash: Squash
    nfs_path: str
    backing: Path
    mount: Mount

    @property
    def server(self) -> str:
        return self.world.server

    @property
    def path(self) -> Path:
        return self.mount.path


MakeNfsExport = Callable[[Squash], NfsExport]


# The package's, not the session's: one NFS world runs at a time on a machine, and the soak
# (tests/soak, after this tier) starts its own.
@pytest.fixture(scope="package")
def nfs_world() -> Iterator[NfsWorld]:
    with start_nfs_world({squash.value: squash for squash in Squash}) as world:
        yield world


@pytest.fixture
def make_nfs_export(nfs_world: NfsWorld) -> Iterator[MakeNfsExport]:
    """Fresh directories on the exports, each mounted with fuse-nfs; removed after the test."""
    made: list[NfsExport] = []

    def make(squash: Squash = Squash.ROOT) -> NfsExport:
        if not nfs_world.server_running():
            raise AssertionError("the NFS server is not running (left stopped by a test?)")
        export = nfs_world.exports[squash.value]
        name = unique("t")
        backing = export.path / name
        backing.mkdir()
        backing.chmod(0o777)
        mount = nfs_world.mount_export(squash.value, name)
        made.append(NfsExport(nfs_world, squash, f"{export.path}/{name}", backing, mount))
        return made[-1]

    yield make
    nfs_world.start_server()
    for export in made:
        nfs_world.unmount(export.mount)
        shutil.rmtree(export.backing, ignore_errors=True)


@pytest.fixture
def nfs_export(make_nfs_export: MakeNfsExport) -> NfsExport:
    """The usual setup: a root_squash export, the provisioner running as root."""
    return make_nfs_export(Squash.ROOT)


@pytest.fixture
def export(nfs_export: NfsExport) -> Path:
    return nfs_export.path


@pytest.fixture
def make_provisioner(
    control_plane: ControlPlane, nfs_export: NfsExport, tmp_path: Path
) -> Iterator[Callable[..., Provisioner]]:
    """Provisioners on ``nfs_export`` unless told otherwise (``on=`` another NfsExport)."""
    started: list[Provisioner] = []
    name = f"test.local/{unique('nfs')}"

    def make(on: NfsExport | None = None, **options: object) -> Provisioner:
        target = on or nfs_export
        options.setdefault("name", name)
        options.setdefault("export", target.path)
        options.setdefault("server", target.server)
        options.setdefault("nfs_path", target.nfs_path)
        # Logs stay off the export: they are no volume.
        options.setdefault("log_path", tmp_path / f"provisioner-{len(started)}.log")
        provisioner = Provisioner(plane=control_plane, **options)  # type: ignore[arg-type]
        started.append(provisioner)
        return provisioner.start()

    yield make
    for provisioner in started:
        provisioner.stop()
