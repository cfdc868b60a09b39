from pathlib import PurePosixPath
from typing import Any

import pytest

from nfs_provisioner.nfs import (
    UnsafePathError,
    UnsupportedClaimError,
    build_persistent_volume,
    local_directory_for,
    normalize_export_path,
)

PV = "pvc-0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9"


def claim(storage: str | None = "1Gi", modes: list[str] | None = None) -> dict[str, Any]:
    requests = {} if storage is None else {"storage": storage}
    return {
        "metadata": {"name": "c", "namespace": "ns"},
        "spec": {
            "accessModes": modes or ["ReadWriteMany"],
            "resources": {"requests": requests},
        },
    }


def build(
    export_path: str = "/exports",
    directory: str = "ns-c",
    storage_class: dict[str, Any] | None = None,
    the_claim: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return build_persistent_volume(
        pv_name=PV,
        server="nfs.example",
        export_path=export_path,
        directory=PurePosixPath(directory),
        claim=the_claim or claim(),
        storage_class=storage_class or {},
    )


def test_full_body() -> None:
    body = build(
        storage_class={"reclaimPolicy": "Retain", "mountOptions": ["nfsvers=4.1", "hard"]},
        the_claim=claim("5Gi", ["ReadWriteOnce", "ReadOnlyMany"]),
    )
    assert body == {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": PV},
        "spec": {
            "persistentVolumeReclaimPolicy": "Retain",
            "accessModes": ["ReadWriteOnce", "ReadOnlyMany"],
            "mountOptions": ["nfsvers=4.1", "hard"],
            "capacity": {"storage": "5Gi"},
            "nfs": {"server": "nfs.example", "path": "/exports/ns-c", "readOnly": False},
            "volumeMode": "Filesystem",
        },
    }


def test_reclaim_policy_defaults_to_delete_and_mount_options_omitted() -> None:
    spec = build()["spec"]
    assert spec["persistentVolumeReclaimPolicy"] == "Delete"
    assert "mountOptions" not in spec


def test_empty_mount_options_omitted() -> None:
    assert "mountOptions" not in build(storage_class={"mountOptions": []})["spec"]


def test_body_does_not_alias_inputs() -> None:
    the_claim = claim()
    storage_class = {"mountOptions": ["hard"]}
    spec = build(storage_class=storage_class, the_claim=the_claim)["spec"]
    spec["accessModes"].append("x")
    spec["mountOptions"].append("x")
    assert the_claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert storage_class["mountOptions"] == ["hard"]


@pytest.mark.parametrize(
    ("export_path", "directory", "expected"),
    [
        ("/exports", "d", "/exports/d"),
        ("/exports/", "d", "/exports/d"),
        ("/exports//", "d", "/exports/d"),
        ("/srv//nfs/./k8s", "d", "/srv/nfs/k8s/d"),
        ("/", "d", "/d"),
        ("/exports", "ns/claim/data", "/exports/ns/claim/data"),
    ],
)
def test_nfs_path(export_path: str, directory: str, expected: str) -> None:
    assert build(export_path, directory)["spec"]["nfs"]["path"] == expected


def test_claim_without_storage_request_is_unsupported() -> None:
    with pytest.raises(UnsupportedClaimError, match="no storage request"):
        build(the_claim=claim(storage=None))


def test_relative_export_path_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="must be absolute"):
        normalize_export_path("exports")


def pv(path: object) -> dict[str, Any]:
    return {"metadata": {"name": PV}, "spec": {"nfs": {"server": "s", "path": path}}}


@pytest.mark.parametrize(
    ("export_path", "path", "expected"),
    [
        ("/exports", "/exports/d", "d"),
        ("/exports/", "/exports/d", "d"),
        ("/exports", "/exports/d/", "d"),
        ("/exports", "/exports//ns/./claim", "ns/claim"),
        ("/exports/", "/exports/a/b/c", "a/b/c"),
        ("/", "/d", "d"),
        ("/srv/nfs", "/srv/nfs/x", "x"),
    ],
)
def test_local_directory_for(export_path: str, path: str, expected: str) -> None:
    assert local_directory_for(pv(path), export_path=export_path) == PurePosixPath(expected)


@pytest.mark.parametrize(
    "path", ["/exportsX/a", "/export/a", "/other/exports/a", "exports/a", "", "/", "/srv"]
)
def test_local_directory_for_refuses_paths_outside_the_export(path: str) -> None:
    with pytest.raises(UnsafePathError) as caught:
        local_directory_for(pv(path), export_path="/exports")
    assert str(caught.value) == (
        f'PersistentVolume "{PV}" has nfs.path "{path}", which is not under the export path '
        '"/exports"; refusing to touch it'
    )


@pytest.mark.parametrize("path", ["/exports", "/exports/", "/exports/.", "/exports//"])
def test_local_directory_for_refuses_the_export_root(path: str) -> None:
    with pytest.raises(UnsafePathError, match="the export root itself"):
        local_directory_for(pv(path), export_path="/exports/")


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/exports/..", '".." is not allowed'),
        ("/exports/../etc", '".." is not allowed'),
        ("/exports/a/../../etc", '".." is not allowed'),
        ("/exports/a\x00", "control character U+0000"),
        ("/exports/a\nb", "control character U+000A"),
    ],
)
def test_local_directory_for_refuses_unsafe_components(path: str, fragment: str) -> None:
    with pytest.raises(UnsafePathError, match="refusing to touch it") as caught:
        local_directory_for(pv(path), export_path="/exports")
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    "volume",
    [
        {"metadata": {"name": PV}, "spec": {}},
        {"metadata": {"name": PV}, "spec": {"hostPath": {"path": "/exports/x"}}},
        pv(None),
        pv(42),
        {},
    ],
)
def test_local_directory_for_refuses_volumes_without_nfs_path(volume: dict[str, Any]) -> None:
    with pytest.raises(UnsafePathError, match=r"has no spec\.nfs\.path"):
        local_directory_for(volume, export_path="/exports")


def test_build_and_local_directory_round_trip() -> None:
    for export_path in ("/", "/exports", "/exports/", "/a/b/"):
        for directory in ("d", "ns/claim", "a/b/c/d"):
            body = build(export_path, directory)
            assert local_directory_for(body, export_path=export_path) == PurePosixPath(directory)
