"""Backup files: written before a claim changes, read back by --restore."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from nfs_provisioner.commands.backups import BackupError, read_backup, read_backups, write_backup


def _claim(**annotations: str) -> dict[str, Any]:
    return {
        "kind": "PersistentVolumeClaim",
        "apiVersion": "v1",
        "metadata": {
            "name": "authservice-pvc",
            "namespace": "istio-system",
            "uid": "u1",
            "managedFields": [{"manager": "kubectl"}],
            "annotations": {"enabled": "true", **annotations},
        },
        "spec": {"storageClassName": "", "resources": {"requests": {"storage": "10Gi"}}},
        "status": {"phase": "Pending"},
    }


def test_backup_is_the_claim_plus_its_target_class(tmp_path: Path) -> None:
    path = write_backup(tmp_path, _claim(), "nfs")
    assert path == tmp_path / "istio-system_authservice-pvc.yaml"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    text = path.read_text()
    assert text.startswith("# Written by nfs-provisioner adopt")
    assert f"nfs-provisioner adopt --restore {tmp_path}" in text
    document = yaml.safe_load(text)
    assert "managedFields" not in document["metadata"]
    # A string that looks like a boolean stays a string.
    assert document["metadata"]["annotations"]["enabled"] == "true"
    assert document["status"] == {"phase": "Pending"}

    backup = read_backup(path)
    assert (backup.namespace, backup.name, backup.target_class) == (
        "istio-system",
        "authservice-pvc",
        "nfs",
    )
    assert backup.claim["metadata"]["uid"] == "u1"


def test_rewriting_a_backup_replaces_it(tmp_path: Path) -> None:
    write_backup(tmp_path, _claim(), "nfs")
    write_backup(tmp_path, _claim(), "other")
    assert [b.target_class for b in read_backups(tmp_path)] == ["other"]


def test_plain_manifest_restores_with_its_own_class(tmp_path: Path) -> None:
    claim = _claim()
    claim["spec"]["storageClassName"] = "fast"
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(claim))
    assert read_backup(tmp_path / "a.yaml").target_class == "fast"


@pytest.mark.parametrize(
    "text",
    ["kind: Pod\nmetadata: {name: a, namespace: b}\nspec: {}\n", "- a list\n", "{{{", "spec: {}\n"],
)
def test_anything_else_is_refused_with_the_file_name(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(BackupError, match=r"bad\.yaml"):
        read_backups(tmp_path)


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="not a directory"):
        read_backups(tmp_path / "nowhere")


def test_unwritable_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="cannot write backup"):
        write_backup(tmp_path / "nowhere", _claim(), "nfs")
