"""Expansion decisions and the claim status patches, as an external resizer makes them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from nfs_provisioner.controller.predicates import compact_claim
from nfs_provisioner.controller.quantities import format_bytes, parse_quantity
from nfs_provisioner.controller.resizing import (
    ResizeAction,
    ResizePlan,
    needs_resize,
    plan_resize,
    resize_finished_patch,
    resize_started_patch,
    volume_capacity_patch,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1Gi", 2**30),
        ("1.5Gi", 3 * 2**29),
        ("500M", 500 * 10**6),
        ("1e3", 1000),
        ("1E3", 1000),
        ("1500m", Decimal("1.5")),
        ("1024", 1024),
        ("+2Ki", 2048),
        (".5Mi", 2**19),
    ],
)
def test_quantities(text: str, value: Decimal | int) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "Gi", "1 Gi", "1GB", "1.2.3", "0x10", "1Gi "])
def test_bad_quantities(text: str) -> None:
    with pytest.raises(ValueError):
        parse_quantity(text)


def test_same_size_in_other_units_is_equal() -> None:
    assert parse_quantity("1Gi") == parse_quantity("1024Mi") == parse_quantity("1073741824")


@pytest.mark.parametrize(
    ("count", "text"), [(100, "100"), (1536, "1.5Ki"), (2**30, "1Gi"), (5 * 2**40, "5Ti")]
)
def test_format_bytes(count: int, text: str) -> None:
    assert format_bytes(count) == text


def _claim(
    request: str = "2Gi",
    capacity: str = "1Gi",
    *,
    allocated: str | None = None,
    in_progress: bool = False,
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Bound", "capacity": {"storage": capacity}}
    if allocated is not None:
        status["allocatedResources"] = {"storage": allocated}
    if in_progress:
        status["allocatedResourceStatuses"] = {"storage": "ControllerResizeInProgress"}
    if conditions is not None:
        status["conditions"] = conditions
    return {
        "metadata": {"name": "data", "namespace": "ns", "uid": "u1", "resourceVersion": "42"},
        "spec": {"volumeName": "pvc-u1", "resources": {"requests": {"storage": request}}},
        "status": status,
    }


def _volume(capacity: str = "1Gi") -> dict[str, Any]:
    return {"metadata": {"name": "pvc-u1"}, "spec": {"capacity": {"storage": capacity}}}


def test_only_a_bound_claim_that_asks_for_more_needs_a_resize() -> None:
    assert needs_resize(_claim("2Gi", "1Gi"))
    assert not needs_resize(_claim("1024Mi", "1Gi"))
    assert not needs_resize(_claim("1Gi", "2Gi"))
    unbound = _claim()
    del unbound["spec"]["volumeName"]
    assert not needs_resize(unbound)
    deleting = _claim()
    deleting["metadata"]["deletionTimestamp"] = "2030-01-01T00:00:00Z"
    assert not needs_resize(deleting)
    garbled = _claim("lots", "1Gi")
    assert not needs_resize(garbled)


@pytest.mark.parametrize(
    ("claim", "volume", "expected"),
    [
        (_claim("2Gi", "1Gi"), _volume("1Gi"), ResizePlan(ResizeAction.EXPAND, "2Gi")),
        (_claim("2Gi", "1Gi"), _volume("2048Mi"), ResizePlan(ResizeAction.FINISH, "2048Mi")),
        (_claim("5Gi", "1Gi"), _volume("10Gi"), ResizePlan(ResizeAction.REFUSE_SHRINK, "10Gi")),
        (
            _claim("5Gi", "1Gi", allocated="10Gi", in_progress=True),
            _volume("10Gi"),
            ResizePlan(ResizeAction.FINISH, "10Gi"),
        ),
        (
            _claim("5Gi", "1Gi", allocated="10Gi", in_progress=True),
            _volume("1Gi"),
            ResizePlan(ResizeAction.EXPAND, "5Gi"),
        ),
        (
            _claim("20Gi", "1Gi", allocated="10Gi", in_progress=True),
            _volume("10Gi"),
            ResizePlan(ResizeAction.FINISH, "10Gi"),
        ),
        (_claim("1Gi", "1Gi"), _volume("1Gi"), ResizePlan(ResizeAction.NONE)),
        (_claim("2Gi", "1Gi"), {"spec": {}}, ResizePlan(ResizeAction.NONE)),
    ],
)
def test_plans(claim: dict[str, Any], volume: dict[str, Any], expected: ResizePlan) -> None:
    assert plan_resize(claim, volume) == expected


def test_started_patch_marks_the_claim_as_a_resizer_does() -> None:
    other = {"type": "ModifyVolumeError", "status": "True"}
    stale = {"type": "FileSystemResizePending", "status": "True"}
    patch = resize_started_patch(_claim(conditions=[other, stale]), "2Gi")
    assert patch["metadata"] == {"resourceVersion": "42"}
    status = patch["status"]
    assert status["allocatedResources"] == {"storage": "2Gi"}
    assert status["allocatedResourceStatuses"] == {"storage": "ControllerResizeInProgress"}
    assert [c["type"] for c in status["conditions"]] == ["ModifyVolumeError", "Resizing"]
    assert status["conditions"][1]["status"] == "True"
    assert "capacity" not in status


def test_finished_patch_records_the_capacity_and_clears_the_resize() -> None:
    resizing = {"type": "Resizing", "status": "True"}
    patch = resize_finished_patch(_claim(conditions=[resizing], in_progress=True), "2Gi")
    assert patch == {
        "metadata": {"resourceVersion": "42"},
        "status": {
            "capacity": {"storage": "2Gi"},
            "conditions": None,
            "allocatedResourceStatuses": {"storage": None},
        },
    }
    other = {"type": "ModifyingVolume", "status": "True"}
    kept = resize_finished_patch(_claim(conditions=[resizing, other]), "2Gi")
    assert kept["status"]["conditions"] == [other]


def test_volume_patch() -> None:
    assert volume_capacity_patch("3Gi") == {"spec": {"capacity": {"storage": "3Gi"}}}


def test_cache_keeps_what_a_resize_needs_of_any_bound_claim() -> None:
    claim = _claim()
    claim["metadata"]["annotations"] = {"big": "x" * 1000}
    claim["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    claim["spec"]["accessModes"] = ["ReadWriteMany"]
    compact = compact_claim(claim, "cluster.local/nfs")
    assert compact["metadata"] == {
        "name": "data",
        "namespace": "ns",
        "uid": "u1",
        "resourceVersion": "42",
    }
    assert compact["spec"] == {
        "volumeName": "pvc-u1",
        "resources": {"requests": {"storage": "2Gi"}},
    }
    assert compact["status"] == claim["status"]
    assert plan_resize(compact, _volume()) == plan_resize(claim, _volume())
