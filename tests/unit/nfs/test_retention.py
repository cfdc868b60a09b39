"""Archive retention: the parameter, the marker written at archive time, and the sweep."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from nfs_provisioner.nfs import (
    ArchiveMarker,
    DeleteOutcome,
    InvalidParameterError,
    NFSBackend,
    parse_class_parameters,
    parse_retention,
)
from nfs_provisioner.nfs.retention import (
    MARKER_NAME,
    decode_marker,
    encode_marker,
    format_duration,
)

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


def test_marker_round_trip_and_expiry() -> None:
    marker = ArchiveMarker(
        archived_at=NOW - timedelta(days=31), retention=30 * 86400.0, storage_class="nfs", volume=PV
    )
    decoded = decode_marker(encode_marker(marker))
    assert decoded == marker
    assert decoded.is_expired(NOW)
    assert not decoded.is_expired(NOW - timedelta(days=2))
    assert decoded.age(NOW) == 31 * 86400


def test_marker_without_retention_never_expires() -> None:
    marker = ArchiveMarker(
        archived_at=datetime(1970, 1, 1, tzinfo=UTC),
        retention=None,
        storage_class=None,
        volume=None,
    )
    assert marker.expires_at() is None
    assert not marker.is_expired(NOW)


@pytest.mark.parametrize(
    "document",
    [
        b"not json",
        b"[]",
        b'{"version": 2, "archivedAt": "2030-01-01T00:00:00Z"}',
        b'{"version": 1}',
        b'{"version": 1, "archivedAt": "yesterday"}',
        b'{"version": 1, "archivedAt": "2030-01-01T00:00:00Z", "retentionSeconds": -5}',
        b'{"version": 1, "archivedAt": "2030-01-01T00:00:00Z", "retentionSeconds": true}',
        b'{"version": 1, "archivedAt": "2030-01-01T00:00:00Z", "retentionSeconds": "1d"}',
        b"\xff\xfe",
    ],
)
def test_invalid_markers_are_refused(document: bytes) -> None:
    with pytest.raises(ValueError):
        decode_marker(document)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(5, "5s"), (65, "1m5s"), (3600, "1h"), (93784, "1d2h"), (86400 * 30, "30d"), (-90, "-1m30s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def _backend(export: Path) -> NFSBackend:
    return NFSBackend(server="nfs", export_path="/srv", mount_path=export)


def _volume(directory: str) -> dict[str, Any]:
    return {
        "metadata": {"name": PV},
        "spec": {"nfs": {"server": "nfs", "path": f"/srv/{directory}"}, "storageClassName": "gone"},
    }


def test_archiving_records_class_retention_and_time(tmp_path: Path) -> None:
    (tmp_path / "ns-data").mkdir()
    (tmp_path / "ns-data" / "payload").write_text("x")
    storage_class = {"metadata": {"name": "nfs"}, "parameters": {"archiveRetention": "7d"}}
    before = datetime.now(UTC).replace(microsecond=0)
    assert _backend(tmp_path).delete(_volume("ns-data"), storage_class) is DeleteOutcome.ARCHIVED
    document = json.loads((tmp_path / "archived-ns-data" / MARKER_NAME).read_text())
    assert document["storageClass"] == "nfs"
    assert document["retentionSeconds"] == 7 * 86400
    assert document["persistentVolume"] == PV
    marker = decode_marker((tmp_path / "archived-ns-data" / MARKER_NAME).read_bytes())
    assert before <= marker.archived_at <= datetime.now(UTC)
    assert (tmp_path / "archived-ns-data" / "payload").read_text() == "x"


def test_archive_of_a_deleted_class_never_expires(tmp_path: Path) -> None:
    (tmp_path / "ns-data").mkdir()
    _backend(tmp_path).delete(_volume("ns-data"), None)
    marker = decode_marker((tmp_path / "archived-ns-data" / MARKER_NAME).read_bytes())
    assert (marker.storage_class, marker.retention) == ("gone", None)


def test_a_marker_the_volume_planted_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "ns-data").mkdir()
    forged = ArchiveMarker(datetime(2000, 1, 1, tzinfo=UTC), 1.0, "x", "y")
    (tmp_path / "ns-data" / MARKER_NAME).write_bytes(encode_marker(forged))
    _backend(tmp_path).delete(_volume("ns-data"), {"metadata": {"name": "nfs"}})
    marker = decode_marker((tmp_path / "archived-ns-data" / MARKER_NAME).read_bytes())
    assert marker.retention is None
    assert marker.archived_at.year > 2000


def test_a_marker_that_cannot_be_written_does_not_stop_the_archive(tmp_path: Path) -> None:
    (tmp_path / "ns-data" / MARKER_NAME).mkdir(parents=True)
    outcome = _backend(tmp_path).delete(_volume("ns-data"), {"metadata": {"name": "nfs"}})
    assert outcome is DeleteOutcome.ARCHIVED
    assert (tmp_path / "archived-ns-data" / MARKER_NAME).is_dir()
    assert [p.name for p in (tmp_path / "archived-ns-data").iterdir()] == [MARKER_NAME]


def _archive(export: Path, name: str, marker: ArchiveMarker | bytes | None) -> Path:
    archive = export / name
    archive.mkdir()
    (archive / "data").write_text(name)
    if isinstance(marker, ArchiveMarker):
        (archive / MARKER_NAME).write_bytes(encode_marker(marker))
    elif marker is not None:
        (archive / MARKER_NAME).write_bytes(marker)
    return archive


def _marker(days_ago: float, retention_days: float | None) -> ArchiveMarker:
    return ArchiveMarker(
        archived_at=NOW - timedelta(days=days_ago),
        retention=None if retention_days is None else retention_days * 86400,
        storage_class="nfs",
        volume=None,
    )


def test_sweep_removes_only_expired_archives(tmp_path: Path, outside: Path) -> None:
    _archive(tmp_path, "archived-old", _marker(31, 30))
    _archive(tmp_path, "archived-young", _marker(29, 30))
    _archive(tmp_path, "archived-forever", _marker(900, None))
    _archive(tmp_path, "archived-go", None)
    _archive(tmp_path, "archived-garbled", b"{")
    _archive(tmp_path, "ns-live", _marker(31, 1))
    (tmp_path / "archived-link").symlink_to(outside)
    (outside / MARKER_NAME).write_bytes(encode_marker(_marker(31, 1)))

    results = _backend(tmp_path).sweep_expired(NOW)

    assert [(r.location, r.age_seconds, r.error) for r in results] == [
        ("nfs:/srv/archived-old", 31 * 86400, None)
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "archived-forever",
        "archived-garbled",
        "archived-go",
        "archived-link",
        "archived-young",
        "ns-live",
    ]
    assert (outside / "sentinel").read_text() == "keep me"


def test_marker_that_is_a_link_is_not_followed(tmp_path: Path, outside: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    archive = _archive(export, "archived-x", None)
    (outside / "marker").write_bytes(encode_marker(_marker(31, 1)))
    os.symlink(outside / "marker", archive / MARKER_NAME)
    assert _backend(export).sweep_expired(NOW) == []
    assert archive.exists()


@pytest.fixture
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("outside")
    (path / "sentinel").write_text("keep me")
    return path
