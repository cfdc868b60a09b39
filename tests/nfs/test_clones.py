"""Cloning and restoring on the NFS mount: the e2e tier's tests rerun, and what squashing does to
the owners of a copy."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from nfsworld import Squash

from tests.e2e.harness import Cluster, Provisioner
from tests.e2e.test_clones import (
    _bound_source,
    _directory,
    _pvc_source,
    test_a_clone_may_be_made_across_classes_and_with_data_source_ref,
    test_a_half_copy_left_by_a_dead_provisioner_is_never_bound,
    test_an_archive_is_restored_into_a_new_claim_of_its_namespace_only,
    test_every_refused_source_is_an_event_saying_why,
)
from tests.nfs.conftest import MakeNfsExport, NfsExport

__all__ = [
    "test_a_clone_may_be_made_across_classes_and_with_data_source_ref",
    "test_a_half_copy_left_by_a_dead_provisioner_is_never_bound",
    "test_an_archive_is_restored_into_a_new_claim_of_its_namespace_only",
    "test_every_refused_source_is_an_event_saying_why",
]

MakeProvisioner = Callable[..., Provisioner]


def test_on_a_root_squashed_export_owners_are_not_kept_and_setuid_is_dropped(
    cluster: Cluster,
    namespace: str,
    export: Path,
    nfs_export: NfsExport,
    make_provisioner: MakeProvisioner,
) -> None:
    """A pod's file (another uid) cannot be given to that uid by a squashed root."""
    provisioner = make_provisioner()
    storage_class = cluster.create_storage_class(provisioner.name)
    source = _bound_source(cluster, namespace, export, storage_class)
    (source / "app" / "tool").write_text("#!/bin/sh\n")
    # As a pod running as uid 1234 would leave it; done on the server, where root is root.
    on_server = nfs_export.backing / source.name / "app" / "tool"
    os.chown(on_server, 1234, 5678)
    os.chmod(on_server, 0o4755)
    cluster.create_claim(
        namespace, "copy", storage_class=storage_class, extra_spec=_pvc_source("src")
    )
    copy = _directory(cluster, export, namespace, "copy")
    event = cluster.wait_event(namespace, "copy", "CloneCopied", source=provisioner.name)
    assert (copy / "big.bin").read_bytes() == (source / "big.bin").read_bytes()
    assert os.readlink(copy / "shadow-link") == "/etc/shadow"
    assert (copy / "app" / "tool").read_text() == "#!/bin/sh\n"
    assert stat.S_IMODE((copy / "app" / "tool").stat().st_mode) == 0o755
    assert "owners not kept" in event["message"]
    assert "setuid/setgid bits were dropped" in event["message"]


def test_on_an_export_without_root_squash_owners_and_setuid_are_kept(
    cluster: Cluster,
    namespace: str,
    make_nfs_export: MakeNfsExport,
    make_provisioner: MakeProvisioner,
) -> None:
    target = make_nfs_export(Squash.NONE)
    provisioner = make_provisioner(on=target)
    source = target.path
    storage_class = cluster.create_storage_class(provisioner.name)
    data = _bound_source(cluster, namespace, source, storage_class)
    os.chown(data / "app" / "conf" / "settings.ini", 1234, 5678)
    tool = data / "app" / "tool"
    tool.write_text("#!/bin/sh\n")
    os.chown(tool, 1234, 5678)
    os.chmod(tool, 0o4755)  # after chown, which clears it
    cluster.create_claim(
        namespace, "copy", storage_class=storage_class, extra_spec=_pvc_source("src")
    )
    copy = _directory(cluster, source, namespace, "copy")
    event = cluster.wait_event(namespace, "copy", "CloneCopied", source=provisioner.name)
    assert "owners not kept" not in event["message"]
    copied = (copy / "app" / "tool").stat()
    assert (copied.st_uid, copied.st_gid, stat.S_IMODE(copied.st_mode)) == (1234, 5678, 0o4755)
    settings = (copy / "app" / "conf" / "settings.ini").stat()
    assert (settings.st_uid, settings.st_gid) == (1234, 5678)
