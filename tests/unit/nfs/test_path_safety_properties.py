"""Adversarial pathPatterns, labels and annotations never reach outside the claim's own space."""

import os
import re
import tempfile
import unicodedata
from pathlib import Path, PurePosixPath

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nfs_provisioner.nfs import (
    ExportRoot,
    UnsafePathError,
    default_directory_name,
    resolve_volume_directory,
)

EXAMPLES = settings(
    max_examples=int(os.environ.get("NFS_PROVISIONER_HYPOTHESIS_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

OTHER_CLAIM_DIRECTORY = re.compile(
    r".*-pvc-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)

KEYS = ["app", "nfs.io/storage-path", "a.b/c.d", "", "x}"]

uuids = st.uuids().map(str)
pv_names = uuids.map(lambda uid: f"pvc-{uid}")
namespaces = st.sampled_from(["ns", "default", "archived-team", "kube-system", "a"])
claim_names = st.sampled_from(["claim", "data-web-0", "a.b", "x"])

references = st.sampled_from(
    [
        "${.PVC.namespace}",
        "${.PVC.name}",
        "${.PVC.unknown}",
        "${.PVC.labels}",
        "${.PVC.",
        "}",
        *(f"${{.PVC.labels.{key}}}" for key in KEYS),
        *(f"${{.PVC.annotations.{key}}}" for key in KEYS),
    ]
)
hostile = st.sampled_from(
    [
        *("..", "../", "/..", "/", "//", ".", "./"),
        *("\x00", "\n", "\x7f", "\x85", "\u2028", "\u202e", "\ud800", "é", "~", "\\"),
        *("archived-", "archived-x", "-pvc-", "ns-claim-"),
    ]
)
long_runs = st.integers(min_value=200, max_value=300).map(lambda n: "a" * n)
fragments = st.one_of(
    references,
    hostile,
    long_runs,
    pv_names.map(lambda pv: f"x-{pv}"),
    st.text(max_size=8),
    st.characters(codec=None).map(str),
)
strings = st.lists(fragments, max_size=24).map("".join)
metadata = st.dictionaries(st.sampled_from(KEYS), strings, max_size=len(KEYS))


def resolve(
    pattern: str | None,
    *,
    namespace: str,
    name: str,
    labels: dict[str, str],
    annotations: dict[str, str],
    pv_name: str,
) -> PurePosixPath | None:
    try:
        return resolve_volume_directory(
            pattern,
            namespace=namespace,
            name=name,
            labels=labels,
            annotations=annotations,
            pv_name=pv_name,
        )
    except UnsafePathError:
        return None


def assert_safe(resolved: PurePosixPath, own_default: str) -> None:
    text = str(resolved)
    assert not resolved.is_absolute()
    assert resolved.parts
    assert all(part not in ("", ".", "..") for part in resolved.parts)
    assert all(unicodedata.category(char) not in ("Cc", "Cs") for char in text)
    assert all(len(part.encode()) <= 255 for part in resolved.parts)
    assert len(text.encode()) <= 4095
    root = "/export/root"
    joined = os.path.normpath(os.path.join(root, text))
    assert joined.startswith(root + "/")
    assert joined != root
    top = resolved.parts[0]
    if top != own_default:
        assert not top.startswith("archived-")
        assert not OTHER_CLAIM_DIRECTORY.fullmatch(top)


@EXAMPLES
@given(
    pattern=st.one_of(st.none(), strings),
    namespace=namespaces,
    name=claim_names,
    labels=metadata,
    annotations=metadata,
    pv_name=pv_names,
)
def test_resolved_directories_are_safe(
    *,
    pattern: str | None,
    namespace: str,
    name: str,
    labels: dict[str, str],
    annotations: dict[str, str],
    pv_name: str,
) -> None:
    resolved = resolve(
        pattern,
        namespace=namespace,
        name=name,
        labels=labels,
        annotations=annotations,
        pv_name=pv_name,
    )
    if resolved is not None:
        assert_safe(resolved, default_directory_name(namespace, name, pv_name))


def tree(directory: Path) -> dict[str, str]:
    def describe(path: Path) -> str:
        if path.is_symlink():
            return "<link>"
        return "<dir>" if path.is_dir() else path.read_text()

    return {str(path.relative_to(directory)): describe(path) for path in directory.rglob("*")}


@EXAMPLES
@given(
    pattern=strings,
    labels=metadata,
    annotations=metadata,
    pv_name=pv_names,
    plant_symlink=st.booleans(),
)
def test_created_directories_stay_inside_the_export(
    *,
    pattern: str,
    labels: dict[str, str],
    annotations: dict[str, str],
    pv_name: str,
    plant_symlink: bool,
) -> None:
    resolved = resolve(
        pattern,
        namespace="ns",
        name="claim",
        labels=labels,
        annotations=annotations,
        pv_name=pv_name,
    )
    if resolved is None:
        return
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        export, outside = base / "export", base / "outside"
        export.mkdir()
        outside.mkdir()
        (outside / "sentinel").write_text("keep me")
        if plant_symlink:
            (export / resolved.parts[0]).symlink_to(outside)
        before = tree(outside)
        try:
            ExportRoot(export).create_directory(resolved)
        except UnsafePathError:
            assert plant_symlink
        else:
            assert not plant_symlink
            assert (export / resolved).is_dir()
            assert not (export / resolved).is_symlink()
        assert tree(outside) == before
        assert sorted(p.name for p in base.iterdir()) == ["export", "outside"]
