"""``ours-nfs``: our provisioner with its export on a real NFS server, as users run it.

Each run starts its own NFS world (hack/nfsworld): NFS-Ganesha on 127.0.0.1 serving a fresh
directory with root_squash, mounted with fuse-nfs where the provisioner expects its export.
Needs root, like the NFS test tier; a machine that cannot provide it records the run as failed
with the reason.
"""

from __future__ import annotations

import dataclasses
from contextlib import ExitStack

from nfsworld import NfsWorldError, Squash, start_nfs_world

from benchmarks.systems import Ours, SystemUnderTestError, Target


class OursOnNfs(Ours):
    name = "ours-nfs"
    label = "ours on NFS (fuse-nfs, NFS-Ganesha)"

    def __init__(self, log_level: str = "warning") -> None:
        super().__init__(log_level)
        self._world = ExitStack()

    def start(self, target: Target) -> None:
        try:
            world = self._world.enter_context(start_nfs_world({"bench": Squash.ROOT}))
            export = world.exports["bench"]
            world.mount(export.url, at=target.export)
        except NfsWorldError as error:
            self._world.close()
            raise SystemUnderTestError(f"no NFS world for {self.name}: {error}") from error
        super().start(
            dataclasses.replace(target, nfs_server=world.server, nfs_path=str(export.path))
        )

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            self._world.close()
