"""Backup files of adopted claims: one YAML manifest per claim, on disk before any change.

A backup is the claim as the API server returned it (without ``managedFields``) plus one
annotation, ``nfs-provisioner/adopt-storage-class``, that records the class it was moving
to; ``adopt --restore`` re-creates a missing claim from it with that class.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nfs_provisioner.commands.claims import ANN_BACKUP_TARGET
from nfs_provisioner.objects import api_time, claim_class

SUFFIX = ".yaml"


class BackupError(Exception):
    """A backup that cannot be written or read; the message names the file."""


@dataclass(frozen=True)
class Backup:
    path: Path
    claim: dict[str, Any]
    target_class: str

    @property
    def namespace(self) -> str:
        return str(self.claim["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.claim["metadata"]["name"])


def file_name(namespace: str, name: str) -> str:
    # Namespaces and claim names never contain "_", so the name is unambiguous.
    return f"{namespace}_{name}{SUFFIX}"


def write_backup(directory: Path, claim: Mapping[str, Any], target_class: str) -> Path:
    """Write atomically and durably: the claim is deleted right after this returns."""
    metadata = dict(claim["metadata"])
    metadata.pop("managedFields", None)
    metadata["annotations"] = {
        **(metadata.get("annotations") or {}),
        ANN_BACKUP_TARGET: target_class,
    }
    document = {**claim, "metadata": metadata}
    now = api_time()
    text = (
        f"# Written by nfs-provisioner adopt at {now} before moving this claim to "
        f"StorageClass {target_class}.\n"
        f"# Re-create it if it is missing: nfs-provisioner adopt --restore {directory}\n"
        + yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
    )
    path = directory / file_name(metadata["namespace"], metadata["name"])
    partial = directory / f".{path.name}.partial"
    try:
        with partial.open("w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        partial.replace(path)
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError as error:
        raise BackupError(f"cannot write backup {path}: {error}") from error
    return path


def read_backup(path: Path) -> Backup:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise BackupError(f"cannot read backup {path}: {error}") from error
    metadata = document.get("metadata") if isinstance(document, dict) else None
    if (
        not isinstance(metadata, dict)
        or document.get("kind") != "PersistentVolumeClaim"
        or not metadata.get("name")
        or not metadata.get("namespace")
        or not isinstance(document.get("spec"), dict)
    ):
        raise BackupError(
            f"{path} is not a PersistentVolumeClaim manifest with a name and a namespace"
        )
    annotations = metadata.get("annotations") or {}
    # A plain `kubectl get -o yaml` file restores the claim with its own class.
    target = annotations.get(ANN_BACKUP_TARGET, claim_class(document))
    return Backup(path=path, claim=document, target_class=str(target))


def read_backups(directory: Path) -> list[Backup]:
    if not directory.is_dir():
        raise BackupError(f"{directory} is not a directory")
    return [read_backup(path) for path in sorted(directory.glob(f"*{SUFFIX}"))]
