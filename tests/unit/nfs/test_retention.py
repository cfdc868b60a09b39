"""Archive retention: the parameter, the marker written at archive time, and the sweep."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from nfs_provisioner.nfs import (
    ArchiveMarker,
    DeleteOutcome,
    InvalidParameterError,
    NFSBackend,
    archives,
    parse_class_parameters,
    parse_retention,
)
from nfs_provisioner.nfs.filesystem import ExportRoot
from nfs_provisioner.nfs.retention import decode_marker, encode_marker, format_duration

PV = "pvc-0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9"
NOW = datetime(2030, 1, 31, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("30d", 30 * 86400), ("12h", 43200), ("1d12h", 129600), ("2w", 1209600), ("90m", 5400)],
)
def test_retention_durations(value: str, seconds: float) -> None:
    assert parse_retention(value) == seconds
    assert parse_class_parameters({"archiveRetention": value}).archive_retention == seconds


@pytest.mark.parametrize("value", ["30", "0d", "", "-1d", "30 d", "1y", "d", "1e400d"])
def test_bad_retention_names_the_parameter(value: str) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        parse_class_parameters({"archiveRetention": value})
    assert caught.value.parameter == "archiveRetention"
    assert "such as 30d, 12h or 1d12h" in str(caught.value)


def _registered(days_ago: float, retention_days: float | None, **fields: Any) -> ArchiveMarker:
    values: dict[str, Any] = {
        "archived_at": NOW - timedelta(days=days_ago),
        "retention": None if retention_days is None else retention_days * 86400.0,
        "storage_class": "nfs",
        "volume": PV,
        "archive": "archived-ns-data",
        "inode": 1234,
        "source": "ns-data",
    }
    return ArchiveMarker(**{**values, **fields})


def test_marker_round_trip_and_expiry() -> None:
    marker = _registered(31, 30)
    decoded = decode_marker(encode_marker(marker))
    assert decoded == marker
    assert decoded.is_expired(NOW)
    assert not decoded.is_expired(NOW - timedelta(days=2))
    assert decoded.age(NOW) == 31 * 86400


def test_marker_without_retention_never_expires() -> None:
    marker = _registered(20000, None)
    assert marker.expires_at() is None
    assert not marker.is_expired(NOW)


_VALID = {"version": 2, "archivedAt": "2030-01-01T00:00:00Z", "archive": "archived-a", "inode": 7}


@pytest.mark.parametrize(
    "document",
    [
        b"not json",
        b"[]",
        b"[" * 16000,
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
        b"\xff\xfe",
        b" " * 20000,
        json.dumps({**_VALID, "version": 1}).encode(),
        json.dumps({**_VALID, "archivedAt": "yesterday"}).encode(),
        json.dumps({**_VALID, "archivedAt": 5}).encode(),
        json.dumps({**_VALID, "retentionSeconds": -5}).encode(),
        json.dumps({**_VALID, "retentionSeconds": True}).encode(),
        json.dumps({**_VALID, "retentionSeconds": "1d"}).encode(),
        json.dumps({**_VALID, "retentionSeconds": 10**400}).encode(),
        json.dumps({**_VALID}).replace('"inode": 7', '"inode": 1' + "0" * 5000).encode(),
        json.dumps({**_VALID, "retentionSeconds": 1e308}).encode(),
        json.dumps({**_VALID, "inode": 0}).encode(),
        json.dumps({**_VALID, "inode": "7"}).encode(),
        json.dumps({**_VALID, "archive": ""}).encode(),
        json.dumps({**_VALID, "storageClass": ["x"]}).encode(),
        json.dumps({**_VALID, "source": "x" * 5000}).encode(),
    ],
)
def test_invalid_and_hostile_markers_are_refused_with_a_value_error(document: bytes) -> None:
    with pytest.raises(ValueError):
        decode_marker(document)


def test_a_valid_marker_decodes() -> None:
    assert decode_marker(json.dumps(_VALID).encode()).inode == 7


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(5, "5s"), (65, "1m5s"), (3600, "1h"), (93784, "1d2h"), (86400 * 30, "30d"), (-90, "-1m30s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def _backend(export: Path) -> NFSBackend:
    return NFSBackend(server="nfs", export_path="/srv", mount_path=export)


def _volume(directory: str, name: str = PV) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"nfs": {"server": "nfs", "path": f"/srv/{directory}"}, "storageClassName": "gone"},
    }


def _markers(export: Path) -> list[ArchiveMarker]:
    registry = export / archives.REGISTRY
    return [decode_marker(path.read_bytes()) for path in sorted(registry.iterdir())]


def test_archiving_registers_class_retention_time_source_and_inode(tmp_path: Path) -> None:
    (tmp_path / "ns-data").mkdir()
    (tmp_path / "ns-data" / "payload").write_text("x")
    storage_class = {"metadata": {"name": "nfs"}, "parameters": {"archiveRetention": "7d"}}
    before = datetime.now(UTC).replace(microsecond=0)
    assert _backend(tmp_path).delete(_volume("ns-data"), storage_class) is DeleteOutcome.ARCHIVED
    [marker] = _markers(tmp_path)
    assert (marker.storage_class, marker.retention, marker.volume) == ("nfs", 7 * 86400, PV)
    assert (marker.archive, marker.source) == ("archived-ns-data", "ns-data")
    assert marker.inode == (tmp_path / "archived-ns-data").stat().st_ino
    assert before <= marker.archived_at <= datetime.now(UTC)
    assert (tmp_path / "archived-ns-data" / "payload").read_text() == "x"
    assert stat.S_IMODE((tmp_path / archives.REGISTRY).stat().st_mode) == 0o700


def test_archive_of_a_deleted_class_never_expires(tmp_path: Path) -> None:
    (tmp_path / "ns-data").mkdir()
    _backend(tmp_path).delete(_volume("ns-data"), None)
    [marker] = _markers(tmp_path)
    assert (marker.storage_class, marker.retention) == ("gone", None)


def test_a_marker_the_volume_planted_is_inert(tmp_path: Path) -> None:
    """A pod may write anything into its volume: nothing it writes is read as a marker."""
    volume = tmp_path / "ns-data"
    volume.mkdir()
    forged = encode_marker(_registered(900, 1, archive="archived-ns-data", inode=1))
    (volume / ".nfs-provisioner-archive.json").write_bytes(forged)
    (volume / archives.REGISTRY).mkdir()
    (volume / archives.entry_for("archived-ns-data")).write_bytes(forged)
    backend = _backend(tmp_path)
    backend.delete(_volume("ns-data"), {"metadata": {"name": "nfs"}})
    [marker] = _markers(tmp_path)
    assert marker.retention is None
    assert backend.sweep_expired(NOW + timedelta(days=36500)) == []
    assert (tmp_path / "archived-ns-data" / ".nfs-provisioner-archive.json").exists()


def test_a_marker_that_cannot_be_written_does_not_stop_the_archive(tmp_path: Path) -> None:
    (tmp_path / "ns-data").mkdir()
    (tmp_path / archives.REGISTRY).write_text("a file where the registry should be")
    outcome = _backend(tmp_path).delete(_volume("ns-data"), {"metadata": {"name": "nfs"}})
    assert outcome is DeleteOutcome.ARCHIVED
    assert (tmp_path / "archived-ns-data").is_dir()
    assert _backend(tmp_path).sweep_expired(NOW + timedelta(days=36500))[0].error


def _archive(export: Path, name: str, days_ago: float, retention_days: float | None) -> Path:
    """An archive as the provisioner registers one, archived days_ago before NOW."""
    archive = export / name
    archive.mkdir()
    (archive / "data").write_text(name)
    marker = _registered(
        days_ago, retention_days, archive=name, inode=archive.stat().st_ino, source=None
    )
    archives.record(ExportRoot(export), marker)
    return archive


def _plant_entry(export: Path, archive: str, data: bytes) -> None:
    (export / archives.REGISTRY).mkdir(exist_ok=True)
    (export / archives.entry_for(archive)).write_bytes(data)


def test_sweep_removes_only_registered_expired_archives(tmp_path: Path, outside: Path) -> None:
    _archive(tmp_path, "archived-old", 31, 30)
    _archive(tmp_path, "archived-young", 29, 30)
    _archive(tmp_path, "archived-forever", 900, None)
    (tmp_path / "archived-go").mkdir()
    forged = _registered(31, 1, archive="archived-go", inode=1)
    (tmp_path / "archived-go" / ".nfs-provisioner-archive.json").write_bytes(encode_marker(forged))
    (tmp_path / "archived-link").symlink_to(outside)
    _plant_entry(
        tmp_path,
        "archived-link",
        encode_marker(_registered(31, 1, archive="archived-link", inode=outside.stat().st_ino)),
    )

    results = _backend(tmp_path).sweep_expired(NOW)

    assert [(r.location, r.age_seconds, r.error) for r in results if r.error is None] == [
        ("nfs:/srv/archived-old", 31 * 86400, None)
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        archives.REGISTRY.name,
        "archived-forever",
        "archived-go",
        "archived-link",
        "archived-young",
    ]
    assert (outside / "sentinel").read_text() == "keep me"


def test_an_archive_replaced_by_another_directory_is_not_removed(tmp_path: Path) -> None:
    archive = _archive(tmp_path, "archived-x", 31, 1)
    # Moved away, not removed, so that the new directory cannot get the same inode number.
    archive.rename(tmp_path / "moved")
    (tmp_path / "archived-x").mkdir()
    (tmp_path / "archived-x" / "keep").write_text("a new directory of the same name")
    assert _backend(tmp_path).sweep_expired(NOW) == []
    assert (tmp_path / "archived-x" / "keep").exists()
    assert not list((tmp_path / archives.REGISTRY).iterdir())


def test_an_expired_archive_a_volume_uses_is_kept(tmp_path: Path) -> None:
    _archive(tmp_path, "archived-x", 31, 1)
    backend = _backend(tmp_path)
    backend.track_volume(_volume("archived-x/inner", name="pvc-live"))
    [result] = backend.sweep_expired(NOW)
    assert result.error is not None and "pvc-live" in result.error
    assert (tmp_path / "archived-x" / "data").exists()


def test_hostile_registry_files_are_reported_and_the_sweep_goes_on(
    tmp_path: Path, outside: Path
) -> None:
    _archive(tmp_path, "archived-old", 31, 30)
    hostile = {
        "archived-deep": b"[" * 16000,
        "archived-huge": json.dumps({**_VALID, "archive": "archived-huge"})
        .replace('"inode": 7', '"inode": 7, "retentionSeconds": 1' + "0" * 400)
        .encode(),
        "archived-big": b" " * 100000,
        "archived-other": encode_marker(_registered(31, 1, archive="archived-old")),
    }
    for name, data in hostile.items():
        _plant_entry(tmp_path, name, data)
    os.mkfifo(tmp_path / archives.REGISTRY / "fifo.json")
    os.symlink(outside / "sentinel", tmp_path / archives.REGISTRY / "link.json")

    results = _backend(tmp_path).sweep_expired(NOW)

    removed = [r.location for r in results if r.error is None]
    assert removed == ["nfs:/srv/archived-old"]
    assert len([r for r in results if r.error is not None]) == len(hostile)
    assert not (tmp_path / "archived-old").exists()
    assert (outside / "sentinel").read_text() == "keep me"


@pytest.fixture
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("outside")
    (path / "sentinel").write_text("keep me")
    return path
