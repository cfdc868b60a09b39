"""No claim may take over, re-permission or delete another volume's directory."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nfs_provisioner.nfs import (
    DeleteOutcome,
    Export,
    NFSBackend,
    ProvisionRequest,
    UnsafePathError,
)
from nfs_provisioner.nfs.isolation import DirectoryOwners

README_PATTERN = "${.PVC.namespace}/${.PVC.annotations.nfs.io/storage-path}"


def _claim(
    uid: str, namespace: str = "team", annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"claim-{uid}",
            "namespace": namespace,
            "uid": uid,
            "annotations": annotations or {},
        },
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}},
    }


def _class(name: str = "nfs", **parameters: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "provisioner": "p", "parameters": parameters}


class World:
    """A backend whose PVs are tracked the way the controller's cache tracks them."""

    def __init__(self, export: Path, backend: NFSBackend | None = None) -> None:
        self.export = export
        self.backend = backend or NFSBackend(server="nfs", export_path="/srv", mount_path=export)
        self.reports: list[tuple[str, str]] = []

    def provision(self, uid: str, storage_class: dict[str, Any], **claim: Any) -> dict[str, Any]:
        volume = self.backend.provision(
            ProvisionRequest(
                pv_name=f"pvc-{uid}",
                claim=_claim(uid, **claim),
                storage_class=storage_class,
                report=lambda reason, message: self.reports.append((reason, message)),
            )
        )
        self.backend.track_volume(volume)
        return volume


@pytest.fixture
def world(tmp_path: Path) -> World:
    export = tmp_path / "export"
    export.mkdir()
    return World(export)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- the index ------------------------------------------------------------------------------


def test_index_reports_same_inside_and_around() -> None:
    owners = DirectoryOwners()
    owners.track("a", ("nfs", "srv", "team", "db"))
    assert owners.reserve("b", ("nfs", "srv", "team")) != []
    assert [c.relation for c in owners.conflicts(("nfs", "srv", "team"))] == ["around"]
    assert [c.relation for c in owners.conflicts(("nfs", "srv", "team", "db"))] == ["same"]
    assert [c.relation for c in owners.conflicts(("nfs", "srv", "team", "db", "x"))] == ["inside"]
    assert owners.conflicts(("nfs", "srv", "team", "web")) == []
    assert owners.conflicts(("other", "srv", "team", "db")) == []
    assert owners.conflicts(("nfs", "srv", "team", "db"), ignore="a") == []


def test_index_lets_a_volume_keep_or_move_its_own_location() -> None:
    owners = DirectoryOwners()
    assert owners.reserve("a", ("nfs", "x")) == []
    assert owners.reserve("a", ("nfs", "x")) == []
    assert owners.reserve("a", ("nfs", "x", "y")) == []
    assert owners.location_of("a") == ("nfs", "x", "y")
    assert owners.conflicts(("nfs", "x"))[0].relation == "around"
    owners.forget("a")
    assert owners.conflicts(("nfs", "x")) == [] and len(owners) == 0


def test_index_shares_only_within_a_share_group() -> None:
    owners = DirectoryOwners()
    owners.track("a", ("nfs", "shared"), "class-a")
    assert owners.reserve("b", ("nfs", "shared"), "class-a") == []
    assert owners.reserve("c", ("nfs", "shared"), "class-b") != []
    assert owners.reserve("d", ("nfs", "shared")) != []
    assert owners.reserve("e", ("nfs", "shared", "inner"), "class-a") != []


# -- takeover attempts from the issue, at the backend --------------------------------------------


def test_readme_pattern_without_the_annotation_is_refused(world: World) -> None:
    pattern = _class(pathPattern=README_PATTERN, onDelete="delete")
    world.provision("1", pattern, annotations={"nfs.io/storage-path": "db"})
    world.provision("2", pattern, annotations={"nfs.io/storage-path": "web"})
    (world.export / "team" / "db" / "data").write_text("db")
    with pytest.raises(UnsafePathError, match=r"nfs.io/storage-path.*expanded to nothing"):
        world.provision("3", pattern)
    with pytest.raises(UnsafePathError, match="is the directory of PersistentVolume pvc-1"):
        world.provision("4", pattern, annotations={"nfs.io/storage-path": "db"})
    assert (world.export / "team" / "db" / "data").read_text() == "db"


def test_a_directory_around_live_volumes_is_refused(world: World) -> None:
    world.provision("1", _class(pathPattern="team/db"))
    with pytest.raises(UnsafePathError, match="contains the directory of PersistentVolume pvc-1"):
        world.provision("2", _class(pathPattern="${.PVC.namespace}"))
    with pytest.raises(UnsafePathError, match="is inside the directory of PersistentVolume pvc-1"):
        world.provision("3", _class(pathPattern="team/db/deeper"))
    assert sorted(p.name for p in (world.export / "team").iterdir()) == ["db"]


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another uid needs root")
def test_claim_ownership_cannot_take_over_another_namespaces_directory(world: World) -> None:
    shared = _class(pathPattern="shared/${.PVC.annotations.p}", allowClaimOwnership="true")
    world.provision("1", shared, namespace="a", annotations={"p": "victim", "nfs.io/uid": "1000"})
    victim = world.export / "shared" / "victim"
    os.chmod(victim, 0o700)
    before = victim.stat()
    with pytest.raises(UnsafePathError, match="pvc-1"):
        world.provision(
            "2", shared, namespace="b", annotations={"p": "victim", "nfs.io/uid": "2000"}
        )
    with pytest.raises(UnsafePathError, match="expanded to nothing"):
        world.provision("3", shared, namespace="b", annotations={"nfs.io/uid": "2000"})
    after = victim.stat()
    assert (after.st_uid, after.st_gid, after.st_mode) == (
        before.st_uid,
        before.st_gid,
        before.st_mode,
    )


@pytest.mark.parametrize("name", ["lost+found", ".snapshot", ".zfs", ".nfs-provisioner-archives"])
def test_reserved_top_level_directories_are_never_handed_out(world: World, name: str) -> None:
    (world.export / name).mkdir(mode=0o700)
    with pytest.raises(UnsafePathError, match="is reserved"):
        world.provision("1", _class(pathPattern="${.PVC.annotations.p}"), annotations={"p": name})
    assert _mode(world.export / name) == 0o700


def test_nested_exports_never_hand_out_one_volume_twice(tmp_path: Path) -> None:
    outer, inner = tmp_path / "srv", tmp_path / "srv" / "team"
    inner.mkdir(parents=True)
    backend = NFSBackend(
        server="nfs",
        export_path="/srv",
        mount_path=outer,
        extra_exports=[Export.of("nfs", "/srv/team", inner)],
    )
    world = World(outer, backend)
    team = _class("team", share="/srv/team", pathPattern="x")
    volume = world.provision("1", team)
    assert volume["spec"]["nfs"]["path"] == "/srv/team/x"
    for pattern in ("team/x", "team", "team/y"):
        with pytest.raises(UnsafePathError, match="export nfs:/srv/team"):
            world.provision("2", _class(pathPattern=pattern))
    assert sorted(p.name for p in inner.iterdir()) == ["x"]


def test_a_directory_no_volume_owns_is_reused_as_it_is(world: World) -> None:
    kept = world.export / "team" / "db"
    kept.mkdir(parents=True, mode=0o750)
    (kept / "data").write_text("from the claim's previous life")
    volume = world.provision(
        "1", _class(pathPattern=README_PATTERN), annotations={"nfs.io/storage-path": "db"}
    )
    assert volume["spec"]["nfs"]["path"] == "/srv/team/db"
    assert _mode(kept) == 0o750
    assert (kept / "data").read_text() == "from the claim's previous life"
    [(reason, message)] = world.reports
    assert reason == "ReusingDirectory" and "owner and mode as they are" in message


def test_a_claim_in_flight_holds_its_directory(world: World) -> None:
    """Two claims of one burst resolving to one directory: the second loses before any PV."""
    request = ProvisionRequest(
        pv_name="pvc-1", claim=_claim("1"), storage_class=_class(pathPattern="x")
    )
    world.backend.provision(request)  # not tracked: the PV has not reached the cache yet
    with pytest.raises(UnsafePathError, match="pvc-1"):
        world.provision("2", _class(pathPattern="x"))
    world.backend.discard(world.backend.provision(request))
    world.provision("2", _class(pathPattern="x"))


def test_deleting_a_directory_that_holds_other_volumes_is_refused(world: World) -> None:
    """A PV made by hand (or by the Go provisioner) around other volumes is never removed."""
    world.provision("1", _class(pathPattern="team/db"))
    (world.export / "team" / "db" / "data").write_text("db")
    outer = {
        "metadata": {"name": "pv-outer"},
        "spec": {"nfs": {"server": "nfs", "path": "/srv/team"}},
    }
    world.backend.track_volume(outer)
    for policy in ({"onDelete": "delete"}, {}):
        holding = r"holds the directories of other PersistentVolumes \(pvc-1\)"
        with pytest.raises(UnsafePathError, match=holding):
            world.backend.delete(outer, _class(**policy))
    assert (world.export / "team" / "db" / "data").read_text() == "db"


def test_a_shared_directory_goes_with_its_last_volume(world: World) -> None:
    shared = _class("wiki", pathPattern="wiki", allowSharedDirectories="true", onDelete="delete")
    first = world.provision("1", shared)
    second = world.provision("2", shared)
    assert first["metadata"]["annotations"] == second["metadata"]["annotations"]
    with pytest.raises(UnsafePathError, match="allowSharedDirectories"):
        world.provision("3", _class("other", pathPattern="wiki"))
    assert world.backend.delete(first, shared) is DeleteOutcome.SHARED
    world.backend.forget_volume("pvc-1")
    assert (world.export / "wiki").is_dir()
    assert world.backend.delete(second, shared) is DeleteOutcome.REMOVED
    assert not (world.export / "wiki").exists()


# -- the invariant, for any claims ----------------------------------------------------------------

segments = st.sampled_from(
    ["team", "db", "web", "x", "${.PVC.namespace}", "${.PVC.name}", "${.PVC.annotations.p}"]
)
patterns = st.lists(segments, min_size=1, max_size=3).map("/".join)
claims = st.tuples(
    patterns,
    st.sampled_from(["team", "db", "ns"]),
    st.sampled_from([None, "db", "team", "x/y", "", "web"]),
)


@settings(
    max_examples=int(os.environ.get("NFS_PROVISIONER_HYPOTHESIS_EXAMPLES", "300")) // 3 or 1,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(claims, min_size=2, max_size=8))
def test_no_two_live_volumes_nest(requests: list[tuple[str, str, str | None]]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        world = World(Path(directory))
        paths = []
        for index, (pattern, namespace, value) in enumerate(requests):
            annotations = {} if value is None else {"p": value}
            try:
                volume = world.provision(
                    str(index),
                    _class(pathPattern=pattern),
                    namespace=namespace,
                    annotations=annotations,
                )
            except UnsafePathError:
                continue
            paths.append(volume["spec"]["nfs"]["path"].split("/"))
        for i, left in enumerate(paths):
            for right in paths[i + 1 :]:
                shorter = min(len(left), len(right))
                assert left[:shorter] != right[:shorter], (left, right)
