"""The audit's findings: orphaned directories, volumes without a directory, archives."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from nfs_provisioner.nfs import ArchiveMarker, Export, NFSBackend
from nfs_provisioner.nfs.archives import record
from nfs_provisioner.nfs.filesystem import ExportRoot
from nfs_provisioner.nfs.inventory import (
    archives,
    orphan_directories,
    volumes_without_directory,
)
from nfs_provisioner.nfs.retention import encode_marker

NAME = "cluster.local/nfs"


def _pv(name: str, path: str, *, server: str = "nfs", ours: bool = True) -> dict[str, Any]:
    annotations = {"pv.kubernetes.io/provisioned-by": NAME if ours else "someone/else"}
    return {
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "nfs": {"server": server, "path": path},
            "claimRef": {"namespace": "ns", "name": f"claim-{name}"},
        },
    }


def _backend(tmp_path: Path) -> NFSBackend:
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    return NFSBackend(
        server="nfs",
        export_path="/srv",
        mount_path=tmp_path / "one",
        extra_exports=[Export.of("nfs2", "/data", tmp_path / "two")],
    )


def test_orphans_are_directories_no_volume_uses_or_leads_to(tmp_path: Path) -> None:
    backend = _backend(tmp_path)
    one, two = tmp_path / "one", tmp_path / "two"
    for directory in (
        "ns-a-pvc-1",
        "ns-orphan-pvc-2",
        "team/db/data",
        "team/old",
        "foreign",
        "archived-ns-x",
        ".nfs-provisioner-doctor-1",
        "lost+found",
    ):
        (one / directory).mkdir(parents=True)
    (one / "stray-file").write_text("not a directory")
    (two / "ns-b").mkdir()
    (two / "ns-c").mkdir()
    volumes = [
        _pv("a", "/srv/ns-a-pvc-1"),
        _pv("db", "/srv/team/db/data"),
        _pv("f", "/srv/foreign", ours=False),
        _pv("b", "/data/ns-b", server="nfs2"),
        _pv("whole-export", "/srv", ours=False),
        _pv("elsewhere", "/other/place", ours=False),
    ]
    found = [(str(o.export), str(o.directory)) for o in orphan_directories(backend, volumes)]
    assert found == [
        ("nfs2:/data", "ns-c"),
        ("nfs:/srv", "ns-orphan-pvc-2"),
        ("nfs:/srv", "team/old"),
    ]


def test_volumes_of_ours_without_a_directory(tmp_path: Path) -> None:
    backend = _backend(tmp_path)
    (tmp_path / "one" / "present").mkdir()
    volumes = [
        _pv("present", "/srv/present"),
        _pv("missing", "/srv/missing"),
        _pv("foreign-missing", "/srv/gone", ours=False),
        _pv("unmounted", "/srv/x", server="nfs9"),
    ]
    found = volumes_without_directory(backend, volumes, NAME)
    assert [(v.pv_name, v.claim, v.source) for v in found] == [
        ("missing", "ns/claim-missing", "nfs:/srv/missing"),
        ("unmounted", "ns/claim-unmounted", "nfs9:/srv/x"),
    ]
    assert "does not exist in nfs:/srv" in found[0].problem
    assert "in none of the mounted exports" in found[1].problem


def test_archives_with_and_without_markers(tmp_path: Path) -> None:
    backend = _backend(tmp_path)
    (tmp_path / "one" / "archived-a").mkdir()
    marker = ArchiveMarker(
        datetime(2030, 1, 1, tzinfo=UTC),
        86400.0,
        "nfs",
        "pv",
        archive="archived-a",
        inode=(tmp_path / "one" / "archived-a").stat().st_ino,
    )
    record(ExportRoot(tmp_path / "one"), marker)
    (tmp_path / "two" / "archived-b").mkdir()
    # A marker inside a directory proves nothing: anybody who can write there can write it.
    forged = dataclasses.replace(marker, archive="archived-b")
    (tmp_path / "two" / "archived-b" / ".nfs-provisioner-archive.json").write_bytes(
        encode_marker(forged)
    )
    (tmp_path / "two" / "not-an-archive").mkdir()
    found = archives(backend)
    assert [(str(a.export), a.name, a.marker) for a in found] == [
        ("nfs:/srv", "archived-a", marker),
        ("nfs2:/data", "archived-b", None),
    ]
    assert backend.root_of(found[0].export).exists(PurePosixPath("archived-a"))
