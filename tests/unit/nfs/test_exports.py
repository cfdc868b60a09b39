"""Several exports: which one a class selects, which one holds a released volume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nfs_provisioner.cli import build_parser
from nfs_provisioner.config import ConfigError, Settings, build_backend, load_settings
from nfs_provisioner.nfs import (
    DeleteOutcome,
    Export,
    ExportSet,
    InvalidParameterError,
    NFSBackend,
    ProvisionRequest,
    UnsafePathError,
)

PV = "pvc-0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9"
DIRECTORY = f"ns-claim-{PV}"

DEFAULT = Export.of("nfs1.lan", "/srv/volumes/", "/mnt/one")
SECOND = Export.of("nfs2.lan", "/data", "/mnt/two")
THIRD = Export.of("nfs2.lan", "/scratch", "/mnt/three")


def _pv(server: str, path: str) -> dict[str, Any]:
    return {"metadata": {"name": PV}, "spec": {"nfs": {"server": server, "path": path}}}


@pytest.fixture
def exports() -> ExportSet:
    return ExportSet(DEFAULT, [SECOND, THIRD])


def test_shares_are_cleaned() -> None:
    assert DEFAULT.share == "/srv/volumes"
    assert str(DEFAULT) == "nfs1.lan:/srv/volumes"


def test_no_parameters_select_the_default(exports: ExportSet) -> None:
    assert exports.select(None, None) is DEFAULT


@pytest.mark.parametrize(
    ("server", "share", "expected"),
    [
        ("nfs2.lan", "/data", SECOND),
        ("NFS2.lan", "/scratch", THIRD),
        (None, "/scratch", THIRD),
        ("nfs1.lan", None, DEFAULT),
        ("nfs1.lan", "/srv/volumes", DEFAULT),
    ],
)
def test_parameters_select_the_one_export_they_fit(
    exports: ExportSet, server: str | None, share: str | None, expected: Export
) -> None:
    assert exports.select(server, share) is expected


def test_unmounted_export_fails_and_lists_the_mounted_ones(exports: ExportSet) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        exports.select("nfs9.lan", "/data")
    message = str(caught.value)
    assert caught.value.parameter == "server"
    assert 'server "nfs9.lan" and share "/data" name no export mounted' in message
    assert "nfs1.lan:/srv/volumes (mounted at /mnt/one)" in message
    assert "nfs2.lan:/scratch (mounted at /mnt/three)" in message
    assert "--extra-exports" in message


def test_ambiguous_server_fails(exports: ExportSet) -> None:
    with pytest.raises(InvalidParameterError, match=r'server "nfs2\.lan" are ambiguous'):
        exports.select("nfs2.lan", None)


def test_the_same_export_or_mount_cannot_be_declared_twice() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        ExportSet(DEFAULT, [Export.of("NFS1.lan", "/srv/volumes/", "/mnt/x")])
    with pytest.raises(ValueError, match="both mounted at"):
        ExportSet(DEFAULT, [Export.of("nfs3", "/x", "/mnt/one/")])


def test_volume_is_found_in_its_export(exports: ExportSet) -> None:
    export, directory = exports.locate(_pv("nfs2.lan", f"/data/{DIRECTORY}"))
    assert export is SECOND
    assert str(directory) == DIRECTORY


def test_the_most_specific_export_holds_a_volume() -> None:
    nested = Export.of("nfs1.lan", "/srv/volumes/team", "/mnt/team")
    exports = ExportSet(DEFAULT, [nested])
    export, directory = exports.locate(_pv("nfs1.lan", "/srv/volumes/team/x"))
    assert (export, str(directory)) == (nested, "x")


@pytest.mark.parametrize(
    ("server", "path"),
    [
        ("nfs9.lan", f"/data/{DIRECTORY}"),
        ("nfs1.lan", f"/data/{DIRECTORY}"),
        ("nfs2.lan", f"/database/{DIRECTORY}"),
        ("nfs2.lan", "/data"),
        ("nfs2.lan", "/data/../srv/volumes/x"),
    ],
)
def test_volume_in_no_export_is_refused(exports: ExportSet, server: str, path: str) -> None:
    with pytest.raises(UnsafePathError, match="refusing to touch it"):
        exports.locate(_pv(server, path))


def test_with_one_export_only_the_path_is_compared_as_in_go() -> None:
    export, directory = ExportSet(DEFAULT).locate(_pv("10.0.0.5", f"/srv/volumes/{DIRECTORY}"))
    assert (export, str(directory)) == (DEFAULT, DIRECTORY)


def test_backend_provisions_and_deletes_in_the_selected_export(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    backend = NFSBackend(
        server="nfs1.lan",
        export_path="/srv/volumes",
        mount_path=one,
        extra_exports=[Export.of("nfs2.lan", "/data", two)],
    )
    claim = {
        "metadata": {"name": "claim", "namespace": "ns", "uid": PV.removeprefix("pvc-")},
        "spec": {"resources": {"requests": {"storage": "1Gi"}}},
    }
    storage_class = {
        "metadata": {"name": "second"},
        "parameters": {"server": "nfs2.lan", "share": "/data/", "archiveOnDelete": "false"},
    }
    volume = backend.provision(
        ProvisionRequest(pv_name=PV, claim=claim, storage_class=storage_class)
    )
    assert volume["spec"]["nfs"] == {
        "server": "nfs2.lan",
        "path": f"/data/{DIRECTORY}",
        "readOnly": False,
    }
    assert (two / DIRECTORY).is_dir()
    assert list(one.iterdir()) == []
    assert backend.delete(volume, storage_class) is DeleteOutcome.REMOVED
    assert list(two.iterdir()) == []


def _settings(env: dict[str, str]) -> Settings:
    required = {"NFS_SERVER": "nfs1.lan", "NFS_PATH": "/srv/volumes", "PROVISIONER_NAME": "p"}
    return load_settings(build_parser().parse_args(["run"]), {**required, **env})


def test_extra_exports_setting() -> None:
    settings = _settings(
        {"NFS_PROVISIONER_EXTRA_EXPORTS": " nfs2.lan:/data=/mnt/two , ,[fd00::2]:/x/=/mnt/x"}
    )
    assert settings.exports.extra_exports == (
        Export("nfs2.lan", "/data", "/mnt/two"),
        Export("[fd00::2]", "/x", "/mnt/x"),
    )
    assert _settings({}).exports.extra_exports == ()


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("nfs2.lan:/data", "SERVER:/SHARE=/LOCAL/MOUNT"),
        ("nfs2.lan=/mnt/two", "SERVER:/SHARE=/LOCAL/MOUNT"),
        ("nfs2.lan:data=/mnt/two", "SERVER:/SHARE=/LOCAL/MOUNT"),
        (":/data=/mnt/two", "SERVER:/SHARE=/LOCAL/MOUNT"),
        ("nfs2.lan:/data=mnt/two", "must be an absolute path"),
    ],
)
def test_malformed_extra_exports_are_one_clear_error(value: str, needle: str) -> None:
    with pytest.raises(ConfigError, match="NFS_PROVISIONER_EXTRA_EXPORTS") as caught:
        _settings({"NFS_PROVISIONER_EXTRA_EXPORTS": value})
    assert needle in str(caught.value)


def test_an_extra_export_repeating_the_default_is_refused() -> None:
    settings = _settings({"NFS_PROVISIONER_EXTRA_EXPORTS": "NFS1.lan:/srv/volumes/=/mnt/again"})
    with pytest.raises(ConfigError, match=r"export NFS1\.lan:/srv/volumes is declared twice"):
        build_backend(settings.exports)
