"""What is on the exports compared with what the PersistentVolumes say: the audit's findings.

Read-only: nothing here changes the export. Pruning expired archives is the backend's sweep.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from nfs_provisioner.nfs import archives as registry
from nfs_provisioner.nfs.backend import NFSBackend
from nfs_provisioner.nfs.exports import Export
from nfs_provisioner.nfs.patterns import ARCHIVE_PREFIX, SYSTEM_DIRECTORIES, TOOL_PREFIX
from nfs_provisioner.nfs.retention import ArchiveMarker
from nfs_provisioner.objects import ANN_PROVISIONED_BY
from nfs_provisioner.storage import BackendError


@dataclass(frozen=True)
class OrphanDirectory:
    export: Export
    directory: PurePosixPath


@dataclass(frozen=True)
class VolumeWithoutDirectory:
    pv_name: str
    claim: str | None
    source: str
    problem: str


@dataclass(frozen=True)
class Archive:
    export: Export
    name: str
    # None: no valid marker, so its age and retention are unknown and it never expires.
    marker: ArchiveMarker | None


def orphan_directories(
    backend: NFSBackend, volumes: Iterable[Mapping[str, Any]]
) -> list[OrphanDirectory]:
    """Directories that no PersistentVolume (of any provisioner) uses or lies below.

    A directory that only leads to volumes, as pathPattern's namespace level does, is not an
    orphan itself; its other subdirectories are examined instead.
    """
    used: dict[Export, set[PurePosixPath]] = {export: set() for export in backend.exports.exports}
    for volume in volumes:
        try:
            export, directory = backend.exports.locate(volume)
        except BackendError:
            continue
        used[export].add(directory)
    orphans = []
    for export, directories in used.items():
        root = backend.root_of(export)
        leading = {parent for directory in directories for parent in directory.parents}
        pending = [PurePosixPath()]
        while pending:
            here = pending.pop()
            for name in root.subdirectories(here):
                child = here / name
                if not here.parts and _is_reserved(name):
                    continue
                if child in directories:
                    continue
                if child in leading:
                    pending.append(child)
                else:
                    orphans.append(OrphanDirectory(export, child))
    return sorted(orphans, key=lambda orphan: (str(orphan.export), str(orphan.directory)))


def _is_reserved(name: str) -> bool:
    return name.startswith((ARCHIVE_PREFIX, TOOL_PREFIX)) or name in SYSTEM_DIRECTORIES


def volumes_without_directory(
    backend: NFSBackend, volumes: Iterable[Mapping[str, Any]], provisioner_name: str
) -> list[VolumeWithoutDirectory]:
    """PersistentVolumes this provisioner made whose directory is missing or out of reach."""
    found = []
    for volume in volumes:
        metadata = volume.get("metadata") or {}
        if (metadata.get("annotations") or {}).get(ANN_PROVISIONED_BY) != provisioner_name:
            continue
        spec = volume.get("spec") or {}
        nfs = spec.get("nfs") or {}
        claim_ref = spec.get("claimRef") or {}
        claim = (
            f"{claim_ref.get('namespace')}/{claim_ref.get('name')}"
            if claim_ref.get("name")
            else None
        )
        problem = _directory_problem(backend, volume)
        if problem is not None:
            found.append(
                VolumeWithoutDirectory(
                    pv_name=str(metadata.get("name", "")),
                    claim=claim,
                    source=f"{nfs.get('server')}:{nfs.get('path')}",
                    problem=problem,
                )
            )
    return sorted(found, key=lambda volume: volume.pv_name)


def _directory_problem(backend: NFSBackend, volume: Mapping[str, Any]) -> str | None:
    try:
        export, directory = backend.exports.locate(volume)
        if backend.root_of(export).exists(directory):
            return None
    except BackendError as error:
        return str(error)
    return f"directory {directory} does not exist in {export} (mounted at {export.mount_path})"


def archives(backend: NFSBackend) -> list[Archive]:
    """Every archive of each export: the registered ones with their marker, then the
    archived-* directories the registry does not know (the Go provisioner's, say), which never
    expire on their own."""
    found: list[Archive] = []
    for export in backend.exports.exports:
        root = backend.root_of(export)
        known = set()
        here = []
        for entry in registry.registered(root):
            marker = entry.marker
            if marker is None or not registry.is_current(root, marker):
                continue
            known.add(marker.archive)
            here.append(Archive(export, marker.archive, marker))
        for name in root.subdirectories():
            if name.startswith(ARCHIVE_PREFIX) and name not in known:
                here.append(Archive(export, name, None))
        found.extend(sorted(here, key=lambda archive: archive.name))
    return found
