from pathlib import PurePosixPath

import pytest

from nfs_provisioner.nfs import (
    UnsafePathError,
    default_directory_name,
    expand_path_pattern,
    resolve_volume_directory,
)

PV = "pvc-0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9"
OTHER_PV = "pvc-11111111-2222-3333-4444-555555555555"
OWN_DEFAULT = f"ns-claim-{PV}"


def expand(
    pattern: str, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None
) -> str:
    return expand_path_pattern(
        pattern,
        namespace="ns",
        name="claim",
        labels=labels or {},
        annotations=annotations or {},
    )


def resolve(
    pattern: str | None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> PurePosixPath:
    return resolve_volume_directory(
        pattern,
        namespace="ns",
        name="claim",
        labels=labels or {},
        annotations=annotations or {},
        pv_name=PV,
    )


def test_default_directory_name() -> None:
    assert default_directory_name("ns", "claim", PV) == OWN_DEFAULT


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("${.PVC.namespace}", "ns"),
        ("${.PVC.name}", "claim"),
        ("${.PVC.namespace}/${.PVC.name}", "ns/claim"),
        ("${.PVC.labels.app}", "web"),
        ("${.PVC.annotations.nfs.io/storage-path}", "data/x"),
        ("${.PVC.labels.app.kubernetes.io/name}", "dotted"),
        ("${.PVC.unknown}", ""),
        ("${.PVC.labels}", ""),
        ("${.PVC.labels.missing}", ""),
        ("${.PVC.annotations.missing}", ""),
        ("a-${.PVC.name}-b-${.PVC.name}", "a-claim-b-claim"),
        ("${.PVC.labels.app}${.PVC.labels.app}", "webweb"),
        ("${.PVC.namespace", "${.PVC.namespace"),
        ("${PVC.namespace}", "${PVC.namespace}"),
        ("$${.PVC.name}}", "$claim}"),
        ("plain/path", "plain/path"),
        ("", ""),
    ],
)
def test_expand_path_pattern(pattern: str, expected: str) -> None:
    labels = {"app": "web", "app.kubernetes.io/name": "dotted"}
    annotations = {"nfs.io/storage-path": "data/x"}
    assert expand(pattern, labels, annotations) == expected


def test_substituted_values_are_not_expanded_again() -> None:
    labels = {"a": "${.PVC.name}", "b": "${.PVC.labels.a}"}
    assert expand("${.PVC.labels.a}/${.PVC.labels.b}", labels) == "${.PVC.name}/${.PVC.labels.a}"


def test_no_pattern_is_the_default_directory() -> None:
    assert resolve(None) == PurePosixPath(OWN_DEFAULT)


@pytest.mark.parametrize(
    ("pattern", "annotations", "expected"),
    [
        ("${.PVC.namespace}/${.PVC.name}", {}, "ns/claim"),
        ("/${.PVC.namespace}//./${.PVC.name}/", {}, "ns/claim"),
        ("${.PVC.annotations.nfs.io/storage-path}", {"nfs.io/storage-path": "a/b/c"}, "a/b/c"),
        ("${.PVC.annotations.p}", {"p": "spaces and ünïcödé ✓"}, "spaces and ünïcödé ✓"),
        ("x/...", {}, "x/..."),
        ("x/..a", {}, "x/..a"),
        ("sub/archived-x", {}, "sub/archived-x"),
        (f"{OWN_DEFAULT}/sub", {}, f"{OWN_DEFAULT}/sub"),
        (f"sub/other-{OTHER_PV}", {}, f"sub/other-{OTHER_PV}"),
        (f"x-{OTHER_PV.upper()}", {}, f"x-{OTHER_PV.upper()}"),
        ("a" * 255, {}, "a" * 255),
    ],
)
def test_resolve_accepts(pattern: str, annotations: dict[str, str], expected: str) -> None:
    resolved = resolve(pattern, annotations=annotations)
    assert resolved == PurePosixPath(expected)
    assert not resolved.is_absolute()


@pytest.mark.parametrize(
    "pattern", ["", "${.PVC.annotations.missing}", "/", "./", "//.//", "${.PVC.unknown}/."]
)
def test_empty_result_falls_back_to_default(pattern: str) -> None:
    assert resolve(pattern) == PurePosixPath(OWN_DEFAULT)


def test_traversal_message_names_pattern_and_result() -> None:
    pattern = "${.PVC.annotations.nfs.io/storage-path}"
    with pytest.raises(UnsafePathError) as caught:
        resolve(pattern, annotations={"nfs.io/storage-path": "../../etc"})
    assert str(caught.value) == (
        'pathPattern "${.PVC.annotations.nfs.io/storage-path}" resolves to "../../etc", '
        'which leaves the export: ".." is not allowed in a volume path'
    )


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("..", '".." is not allowed'),
        ("a/../b", '".." is not allowed'),
        ("a/..", '".." is not allowed'),
        ("/..", '".." is not allowed'),
        ("a\x00b", "control character U+0000"),
        ("a\nb", "control character U+000A"),
        ("a\x1fb", "control character U+001F"),
        ("a\x7fb", "control character U+007F"),
        ("a\x85b", "control character U+0085"),
        ("a\ud800b", "not valid UTF-8"),
        ("a" * 256, "at most 255 bytes"),
        ("é" * 128, "at most 255 bytes"),
        ("/".join(["a" * 200] * 21), "at most 4095 bytes"),
        ("archived-ns-claim", "is in the archive"),
        ("archived-x/y", "is in the archive"),
        (f"ns-other-{OTHER_PV}", "is the directory of another claim"),
        (f"ns-other-{OTHER_PV}/inside", "is the directory of another claim"),
        (f"x-{PV}", "is the directory of another claim"),
    ],
)
def test_resolve_rejects(value: str, fragment: str) -> None:
    with pytest.raises(UnsafePathError) as caught:
        resolve("${.PVC.labels.path}", labels={"path": value})
    message = str(caught.value)
    assert message.startswith('pathPattern "${.PVC.labels.path}" resolves to "')
    assert fragment in message


def test_rejection_message_escapes_control_characters_and_truncates() -> None:
    with pytest.raises(UnsafePathError) as caught:
        resolve("${.PVC.labels.path}", labels={"path": "x\x00" + "y" * 1000})
    message = str(caught.value)
    assert "\x00" not in message
    assert '"x\\x00' in message
    assert "more characters)" in message
    assert len(message) < 600


@pytest.mark.parametrize("literal", ["..", "../x", "x/../../y"])
def test_resolve_rejects_literal_traversal(literal: str) -> None:
    with pytest.raises(UnsafePathError, match=r"\.\. is not allowed|\"\.\.\" is not allowed"):
        resolve(literal)


def test_own_default_directory_may_be_named_by_the_pattern() -> None:
    annotations = {"dir": OWN_DEFAULT}
    assert resolve("${.PVC.annotations.dir}", annotations=annotations) == PurePosixPath(OWN_DEFAULT)


def test_default_directory_in_a_namespace_that_looks_archived_is_allowed() -> None:
    resolved = resolve_volume_directory(
        None, namespace="archived-team", name="c", labels={}, annotations={}, pv_name=PV
    )
    assert resolved == PurePosixPath(f"archived-team-c-{PV}")


@pytest.mark.parametrize(
    ("namespace", "name"), [("a/b", "c"), ("ns", "../c"), ("ns", "x" * 300), ("n\x00", "c")]
)
def test_default_directory_from_malformed_metadata_is_refused(namespace: str, name: str) -> None:
    with pytest.raises(UnsafePathError, match="the default directory name"):
        resolve_volume_directory(
            None, namespace=namespace, name=name, labels={}, annotations={}, pv_name=PV
        )


def test_pv_name_with_a_slash_is_refused() -> None:
    with pytest.raises(UnsafePathError, match="not a single directory name"):
        resolve_volume_directory(
            None, namespace="ns", name="c", labels={}, annotations={}, pv_name="pvc/.."
        )
