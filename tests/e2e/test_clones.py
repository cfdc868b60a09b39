"""Cloning a claim (spec.dataSource / dataSourceRef) and restoring an archive, against the real
API server and kube-controller-manager: the copy, every refusal, a restart over a half copy."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nfs_provisioner.nfs.filesystem import STAGING_PREFIX
from nfs_provisioner.nfs.restores import ANN_RESTORE_FROM
from tests.e2e.harness import Cluster, Provisioner, wait_for
from tests.e2e.test_beyond_retention import _audit

MakeProvisioner = Callable[..., Provisioner]


def _pvc_source(name: str) -> dict[str, Any]:
    return {"dataSource": {"kind": "PersistentVolumeClaim", "name": name}}


def _directory(cluster: Cluster, export: Path, namespace: str, claim: str) -> Path:
    bound = cluster.wait_bound(namespace, claim)
    volume = cluster.volume(bound["spec"]["volumeName"])
    assert volume is not None
    return export / Path(volume["spec"]["nfs"]["path"]).name


def _failure(cluster: Cluster, namespace: str, claim: str, provisioner: Provisioner) -> str:
    event = cluster.wait_event(namespace, claim, "ProvisioningFailed", source=provisioner.name)
    return str(event["message"])


def _bound_source(
    cluster: Cluster, namespace: str, export: Path, storage_class: str, size: str = "1Mi"
) -> Path:
    cluster.create_claim(namespace, "src", storage_class=storage_class, size=size)
    data = _directory(cluster, export, namespace, "src")
    (data / "app" / "conf").mkdir(parents=True)
    (data / "app" / "conf" / "settings.ini").write_text("[db]\nport=5432\n")
    os.chmod(data / "app" / "conf", 0o750)
    (data / "big.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    os.symlink("/etc/shadow", data / "shadow-link")
    return data


def test_a_claim_cloned_from_a_bound_claim_gets_a_copy_of_its_data(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner()
    storage_class = cluster.create_storage_class(provisioner.name)
    source = _bound_source(cluster, namespace, export, storage_class)
    os.chown(source / "app" / "conf" / "settings.ini", 1234, 5678)  # the tests run as root

    created = cluster.create_claim(
        namespace, "copy", storage_class=storage_class, extra_spec=_pvc_source("src")
    )
    # The API server (AnyVolumeDataSource, GA) mirrors dataSource into dataSourceRef.
    ref = {k: v for k, v in created["spec"]["dataSourceRef"].items() if v is not None}
    assert ref == {"kind": "PersistentVolumeClaim", "name": "src"}
    copy = _directory(cluster, export, namespace, "copy")

    assert copy != source
    assert (copy / "app" / "conf" / "settings.ini").read_text() == "[db]\nport=5432\n"
    assert (copy / "big.bin").read_bytes() == (source / "big.bin").read_bytes()
    assert os.readlink(copy / "shadow-link") == "/etc/shadow"
    assert stat.S_IMODE((copy / "app" / "conf").stat().st_mode) == 0o750
    owner = (copy / "app" / "conf" / "settings.ini").stat()
    assert (owner.st_uid, owner.st_gid) == (1234, 5678)  # the tests run as root
    reasons = [e["reason"] for e in cluster.events(namespace, name="copy", source=provisioner.name)]
    assert {"CloneStarted", "CloneCopied", "ProvisioningSucceeded"} <= set(reasons)
    copied = cluster.wait_event(namespace, "copy", "CloneCopied", source=provisioner.name)
    assert "copied 2 files, 2 directories and 1 symbolic links" in copied["message"]
    copied_bytes = provisioner.metric(
        "nfs_provisioner_clone_copied_bytes_total", {"class": storage_class}
    )
    assert copied_bytes == 2 * 1024 * 1024 + len("[db]\nport=5432\n")
    # The two volumes are independent: writing one leaves the other alone.
    (copy / "big.bin").write_bytes(b"changed")
    assert (source / "big.bin").stat().st_size == 2 * 1024 * 1024


def test_a_clone_may_be_made_across_classes_and_with_data_source_ref(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner()
    first = cluster.create_storage_class(provisioner.name)
    second = cluster.create_storage_class(
        provisioner.name, parameters={"pathPattern": "clones/${.PVC.name}"}
    )
    _bound_source(cluster, namespace, export, first)
    cluster.create_claim(
        namespace,
        "copy",
        storage_class=second,
        extra_spec={"dataSourceRef": {"kind": "PersistentVolumeClaim", "name": "src"}},
    )
    cluster.wait_bound(namespace, "copy")
    assert (export / "clones" / "copy" / "app" / "conf" / "settings.ini").is_file()


def test_every_refused_source_is_an_event_saying_why(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner()
    storage_class = cluster.create_storage_class(provisioner.name)
    _bound_source(cluster, namespace, export, storage_class, size="10Mi")
    # A claim that never binds: its class belongs to a provisioner that is not running.
    idle = cluster.create_storage_class("test.local/nobody")
    cluster.create_claim(namespace, "pending", storage_class=idle)
    # A Bound claim of a volume some other provisioner (here: an administrator) made.
    foreign_pv = f"foreign-{namespace}"
    cluster.create_nfs_volume(foreign_pv, server="other.example", path="/elsewhere")
    cluster.create_claim(
        namespace,
        "foreign",
        storage_class=None,
        extra_spec={"storageClassName": "", "volumeName": foreign_pv},
    )
    cluster.wait_bound(namespace, "foreign")
    try:
        cases = {
            "missing": (
                _pvc_source("ghost"),
                "1Gi",
                f"data source claim {namespace}/ghost does not exist",
            ),
            "unbound": (
                _pvc_source("pending"),
                "1Gi",
                f"data source claim {namespace}/pending is not Bound",
            ),
            "other-provisioner": (
                _pvc_source("foreign"),
                "1Gi",
                f"bound to PersistentVolume {foreign_pv}, which {provisioner.name} did not "
                "provision",
            ),
            "smaller": (
                _pvc_source("src"),
                "5Mi",
                f"the claim requests 5Mi, less than the 10Mi of its data source claim "
                f"{namespace}/src",
            ),
        }
        for claim, (spec, size, _reason) in cases.items():
            cluster.create_claim(
                namespace, claim, storage_class=storage_class, size=size, extra_spec=spec
            )
        for claim, (_spec, _size, reason) in cases.items():
            assert reason in _failure(cluster, namespace, claim, provisioner), claim
            assert cluster.claim(namespace, claim)["status"]["phase"] == "Pending"  # type: ignore[index]
        volumes = {v["metadata"]["name"] for v in cluster.volumes()}
        for claim in cases:
            uid = cluster.claim(namespace, claim)["metadata"]["uid"]  # type: ignore[index]
            assert f"pvc-{uid}" not in volumes
    finally:
        cluster.delete_claim(namespace, "foreign")
        cluster.delete_volume(foreign_pv)


def test_a_source_in_another_namespace_is_never_read(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    """dataSourceRef.namespace needs the CrossNamespaceVolumeDataSource feature (alpha, off by
    default): this API server then drops the whole dataSourceRef, so the claim is an ordinary
    one and gets an empty volume. Were the feature on, the provisioner refuses the reference
    itself (tests/unit/controller/test_cloning.py, "another namespace")."""
    provisioner = make_provisioner()
    storage_class = cluster.create_storage_class(provisioner.name)
    victim = cluster.create_namespace("victim")
    _bound_source(cluster, victim, export, storage_class)
    reference = {"kind": "PersistentVolumeClaim", "name": "src", "namespace": victim}
    created = cluster.create_claim(
        namespace, "steal", storage_class=storage_class, extra_spec={"dataSourceRef": reference}
    )
    assert "dataSourceRef" not in created["spec"]
    assert "dataSource" not in created["spec"]
    stolen = _directory(cluster, export, namespace, "steal")
    assert list(stolen.iterdir()) == []
    reasons = {e["reason"] for e in cluster.events(namespace, name="steal")}
    assert "CloneStarted" not in reasons


def test_a_half_copy_left_by_a_dead_provisioner_is_never_bound(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner()
    storage_class = cluster.create_storage_class(provisioner.name)
    source = _bound_source(cluster, namespace, export, storage_class)
    provisioner.stop()
    created = cluster.create_claim(
        namespace, "copy", storage_class=storage_class, extra_spec=_pvc_source("src")
    )
    leaf = f"{namespace}-copy-pvc-{created['metadata']['uid']}"
    # What a provisioner killed mid-copy leaves: the staging directory with part of the copy.
    staging = export / (STAGING_PREFIX + hashlib.sha256(leaf.encode()).hexdigest()[:32])
    (staging / "app").mkdir(parents=True)
    (staging / "half-written.bin").write_bytes(b"\0" * 100)
    make_provisioner(extra_env={"NFS_PROVISIONER_CLONE_PROGRESS_INTERVAL": "0s"})
    copy = _directory(cluster, export, namespace, "copy")
    assert copy.name == leaf
    assert not staging.exists()
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in source.iterdir())
    assert not (copy / "half-written.bin").exists()
    # With a progress interval of 0 every report of the copy is an event, the last one whole.
    progress = cluster.wait_event(namespace, "copy", "CloneProgress", source=provisioner.name)
    assert "entries" in progress["message"] and "bytes) so far" in progress["message"]


def test_an_archive_is_restored_into_a_new_claim_of_its_namespace_only(
    cluster: Cluster, namespace: str, export: Path, make_provisioner: MakeProvisioner
) -> None:
    provisioner = make_provisioner()
    restoring = cluster.create_storage_class(provisioner.name, parameters={"allowRestore": "true"})
    plain = cluster.create_storage_class(provisioner.name)
    cluster.create_claim(namespace, "db", storage_class=restoring)
    data = _directory(cluster, export, namespace, "db")
    (data / "rows").write_text("precious")
    os.chmod(data, 0o700)
    cluster.delete_claim(namespace, "db")
    archive = export / f"archived-{data.name}"
    wait_for(archive.is_dir, what="the volume to be archived")

    listed = json.loads(_audit(provisioner, "--output", "json").stdout)
    [entry] = [a for a in listed["archives"] if a["name"] == archive.name]
    assert entry["restoreAnnotation"] == {ANN_RESTORE_FROM: archive.name}
    assert (entry["claimNamespace"], entry["claimName"]) == (namespace, "db")
    assert f"{ANN_RESTORE_FROM}={archive.name}" in _audit(provisioner).stdout

    other = cluster.create_namespace("other")
    refusals = {
        (other, "by-name", restoring, archive.name): f'no archive of namespace "{other}"',
        (other, "by-claim", restoring, f"{namespace}/db"): f'no archive of namespace "{other}"',
        (namespace, "no-class", plain, f"{namespace}/db"): "does not allow restores",
    }
    for (ns, claim, storage_class, wanted), _reason in refusals.items():
        cluster.create_claim(
            ns, claim, storage_class=storage_class, annotations={ANN_RESTORE_FROM: wanted}
        )
    for (ns, claim, _storage_class, _wanted), reason in refusals.items():
        assert reason in _failure(cluster, ns, claim, provisioner), claim
    assert (archive / "rows").read_text() == "precious"

    cluster.create_claim(
        namespace,
        "db-again",
        storage_class=restoring,
        annotations={ANN_RESTORE_FROM: f"{namespace}/db"},
    )
    restored = _directory(cluster, export, namespace, "db-again")
    assert (restored / "rows").read_text() == "precious"
    assert stat.S_IMODE(restored.stat().st_mode) == 0o700
    assert not archive.exists()
    event = cluster.wait_event(namespace, "db-again", "Restored", source=provisioner.name)
    assert archive.name in event["message"]
    listed = json.loads(_audit(provisioner, "--output", "json").stdout)
    assert archive.name not in [a["name"] for a in listed["archives"]]
