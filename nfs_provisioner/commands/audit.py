"""``nfs-provisioner audit``: what is on the exports that the PersistentVolumes do not account for.

Three lists: directories no PV uses, PVs of this provisioner whose directory is missing, and
the archives with their age and retention. ``--prune`` removes the archives whose retention has
passed, exactly as the leader's periodic sweep does; the audit never deletes anything else.
Settings are read like ``run`` reads them, so it works unchanged inside the provisioner's pod.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from nfs_provisioner import __version__, config
from nfs_provisioner.commands import tables
from nfs_provisioner.commands.tables import printable, render
from nfs_provisioner.config import ConfigError
from nfs_provisioner.kube import ApiError, ConfigurationError, connect
from nfs_provisioner.kube.paths import VOLUMES
from nfs_provisioner.nfs import BackendError, NFSBackend
from nfs_provisioner.nfs.inventory import (
    Archive,
    OrphanDirectory,
    VolumeWithoutDirectory,
    archives,
    orphan_directories,
    volumes_without_directory,
)
from nfs_provisioner.nfs.restores import ANN_RESTORE_FROM, restore_command
from nfs_provisioner.nfs.retention import format_duration
from nfs_provisioner.storage import ExpiredStorage

_KNOBS = (
    "nfs_server",
    "nfs_path",
    "mount_path",
    "extra_exports",
    "provisioner_name",
    "kubeconfig",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    config.add_arguments(
        parser,
        _KNOBS,
        help_texts={"provisioner_name": "provisioner name whose volumes are checked"},
    )
    parser.add_argument(
        "--prune",
        action="store_true",
        help="remove the archives whose archiveRetention has passed (and nothing else)",
    )
    tables.add_output_argument(parser)


def main(arguments: argparse.Namespace, env: Mapping[str, str]) -> int:
    try:
        backend, provisioner_name, kubeconfig = _setup(arguments, env)
        api = connect(
            kubeconfig,
            qps=20.0,
            burst=40,
            pool_size=2,
            user_agent=f"nfs-provisioner-audit/{__version__}",
        )
        volumes, _ = api.list_all(VOLUMES)
        # As in the controller: --prune never removes a directory some PV uses.
        for volume in volumes:
            backend.track_volume(volume)
        now = datetime.datetime.now(datetime.UTC)
        orphans = orphan_directories(backend, volumes)
        missing = volumes_without_directory(backend, volumes, provisioner_name)
        found = archives(backend)
        _refuse_unmounted(backend, missing)
    except (ConfigError, ConfigurationError, ApiError, BackendError) as error:
        print(tables.error_line("audit", error), file=sys.stderr)
        return 1
    pruned = backend.sweep_expired(now) if arguments.prune else None
    if arguments.output == "json":
        print(render_json(orphans, missing, found, pruned, now))
    else:
        print(render_text(orphans, missing, found, pruned, now, provisioner_name))
    if pruned and any(result.error for result in pruned):
        return 1
    return FINDINGS if orphans or missing else 0


# Exit code when the audit ran and found directories without a volume or volumes without a
# directory: something for a person to look at (1 is for errors, as in every command).
FINDINGS = 2


def _refuse_unmounted(backend: NFSBackend, missing: Sequence[VolumeWithoutDirectory]) -> None:
    """An empty directory that is not a mount point, where volumes should be, is an export that
    is not mounted: listing every volume as lost would send the reader the wrong way."""
    for export in backend.exports.exports:
        mount = export.mount_path
        if not any(str(export) in volume.problem for volume in missing):
            continue
        try:
            empty = not os.path.ismount(mount) and not any(os.scandir(mount))
        except OSError:
            continue
        if empty:
            raise ConfigError(
                f"the export {export} does not seem to be mounted at {mount}: it is an empty "
                "directory and not a mount point, and PersistentVolumes of this provisioner "
                "expect their directories there; mount the export there (or point --mount-path / "
                "NFS_MOUNT_PATH at it)"
            )


def _setup(
    arguments: argparse.Namespace, env: Mapping[str, str]
) -> tuple[NFSBackend, str, str | None]:
    values = config.resolve(arguments, env, _KNOBS)
    config.require(values, ["provisioner_name"])
    backend = config.build_backend(config.export_settings(values))
    return backend, values["provisioner_name"], values["kubeconfig"]


def _archive_columns(archive: Archive, now: datetime.datetime) -> dict[str, Any]:
    marker = archive.marker
    if marker is None:
        return {"age": None, "class": None, "retention": None, "expiresIn": None}
    expiry = marker.expires_at()
    return {
        "age": marker.age(now),
        "class": marker.storage_class,
        "retention": marker.retention,
        "expiresIn": None if expiry is None else (expiry - now).total_seconds(),
    }


def render_text(
    orphans: Sequence[OrphanDirectory],
    missing: Sequence[VolumeWithoutDirectory],
    found: Sequence[Archive],
    pruned: Sequence[ExpiredStorage] | None,
    now: datetime.datetime,
    provisioner_name: str,
) -> str:
    sections = [
        _section(
            "Directories without a PersistentVolume",
            ("EXPORT", "DIRECTORY"),
            [(str(orphan.export), str(orphan.directory)) for orphan in orphans],
        ),
        _section(
            f"PersistentVolumes of {printable(provisioner_name)} without a directory",
            ("PERSISTENTVOLUME", "CLAIM", "SOURCE", "PROBLEM"),
            [(v.pv_name, v.claim or "-", v.source, v.problem) for v in missing],
        ),
        _section(
            "Archives",
            ("EXPORT", "ARCHIVE", "AGE", "CLASS", "RETENTION", "EXPIRES"),
            [_archive_row(archive, now) for archive in found],
        ),
        _section(
            "Restoring an archive: give a new claim of its namespace this annotation "
            '(its class needs allowRestore: "true" and the archive\'s export)',
            ("EXPORT", "NAMESPACE", "CLAIM", "ANNOTATION"),
            [
                (
                    str(archive.export),
                    archive.marker.claim_namespace or "-",
                    archive.marker.claim_name or "-",
                    f"{ANN_RESTORE_FROM}={archive.marker.archive}",
                )
                for archive in found
                if archive.marker is not None and restore_command(archive.marker) is not None
            ],
        ),
    ]
    if pruned is not None:
        lines = [
            printable(
                f"removed {result.location} (archived {format_duration(result.age_seconds)} ago)"
                if result.error is None
                else f"cannot remove {result.location}: {result.error}"
            )
            for result in pruned
        ]
        failed = sum(result.error is not None for result in pruned)
        title = f"Pruned ({len(pruned) - failed})"
        if failed:
            title += f", NOT pruned because of an error ({failed})"
        sections.append(f"{title}\n" + ("\n".join(lines) or "(none)"))
    return "\n\n".join(sections)


def _section(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    body = render(headers, rows) if rows else "(none)"
    return f"{title} ({len(rows)})\n{body}"


def _archive_row(archive: Archive, now: datetime.datetime) -> tuple[str, ...]:
    columns = _archive_columns(archive, now)
    if archive.marker is None:
        return (str(archive.export), archive.name, "?", "?", "-", "never (no marker)")
    expires_in = columns["expiresIn"]
    if expires_in is None:
        expires = "never"
    elif expires_in <= 0:
        expires = "expired"
    else:
        expires = f"in {format_duration(expires_in)}"
    retention = columns["retention"]
    return (
        str(archive.export),
        archive.name,
        format_duration(columns["age"]),
        columns["class"] or "-",
        "-" if retention is None else format_duration(retention),
        expires,
    )


def render_json(
    orphans: Sequence[OrphanDirectory],
    missing: Sequence[VolumeWithoutDirectory],
    found: Sequence[Archive],
    pruned: Sequence[ExpiredStorage] | None,
    now: datetime.datetime,
) -> str:
    document: dict[str, Any] = {
        "directoriesWithoutVolume": [
            {"export": str(orphan.export), "directory": str(orphan.directory)} for orphan in orphans
        ],
        "volumesWithoutDirectory": [
            {"name": v.pv_name, "claim": v.claim, "source": v.source, "problem": v.problem}
            for v in missing
        ],
        "archives": [_archive_json(archive, now) for archive in found],
    }
    if pruned is not None:
        document["pruned"] = [
            {"location": result.location, "ageSeconds": result.age_seconds, "error": result.error}
            for result in pruned
        ]
    return json.dumps(document, indent=2)


def _archive_json(archive: Archive, now: datetime.datetime) -> dict[str, Any]:
    columns = _archive_columns(archive, now)
    marker = archive.marker
    return {
        "export": str(archive.export),
        "name": archive.name,
        "ageSeconds": columns["age"],
        "storageClass": columns["class"],
        "retentionSeconds": columns["retention"],
        "expiresInSeconds": columns["expiresIn"],
        "claimNamespace": None if marker is None else marker.claim_namespace,
        "claimName": None if marker is None else marker.claim_name,
        # The claim annotation that restores it; null: no claim can (no namespace recorded).
        "restoreAnnotation": (
            None
            if marker is None or restore_command(marker) is None
            else {ANN_RESTORE_FROM: marker.archive}
        ),
    }
