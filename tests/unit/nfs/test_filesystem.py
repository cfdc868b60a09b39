import ctypes
import errno
import hashlib
import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

import pytest

from nfs_provisioner.nfs import ExportRoot, StorageError, UnsafePathError, filesystem

STAMPED = r"\d{8}T\d{6}Z"


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def renameat2_failing_with(code: int) -> Callable[[int, bytes, int, bytes, int], int]:
    def renameat2(*args: object) -> int:
        ctypes.set_errno(code)
        return -1

    return renameat2


@pytest.fixture(params=["renameat2", "no renameat2", "flag refused (NFS)"])
def rename_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    mode: str = request.param
    if mode == "no renameat2":
        monkeypatch.setattr(filesystem, "_RENAMEAT2", None)
    elif mode == "flag refused (NFS)":
        monkeypatch.setattr(filesystem, "_RENAMEAT2", renameat2_failing_with(errno.EINVAL))
    return mode


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def snapshot(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): (p.read_text() if p.is_file() else "<dir>")
        for p in sorted(directory.rglob("*"))
    }


def test_create_gives_the_leaf_the_mode_despite_umask(
    root: ExportRoot, export: Path, umask_022: None
) -> None:
    root.create_directory(PurePosixPath("ns-c-pvc"))
    assert mode_of(export / "ns-c-pvc") == 0o777


def test_create_nested_chmods_only_the_leaf(
    root: ExportRoot, export: Path, umask_022: None
) -> None:
    root.create_directory(PurePosixPath("a/b/c"), 0o770)
    assert mode_of(export / "a/b/c") == 0o770
    assert mode_of(export / "a") == 0o755
    assert mode_of(export / "a/b") == 0o755


def test_create_reuses_an_existing_directory_as_it_is(root: ExportRoot, export: Path) -> None:
    (export / "d").mkdir(mode=0o700)
    (export / "d" / "data").write_text("old")
    assert root.create_directory(PurePosixPath("d")) is False
    assert root.create_directory(PurePosixPath("d"), 0o777) is False
    assert (export / "d" / "data").read_text() == "old"
    assert mode_of(export / "d") == 0o700


def test_create_makes_the_leaf_complete_before_it_appears(root: ExportRoot, export: Path) -> None:
    seen: list[int] = []
    real_rename = filesystem._rename_noreplace

    def watch(src_fd: int, src: str, dst_fd: int, dst: str) -> bool:
        assert src.startswith(filesystem.STAGING_PREFIX) and dst == "new"
        assert not (export / "ns" / "new").exists()
        seen.append(mode_of(export / "ns" / src))
        return real_rename(src_fd, src, dst_fd, dst)

    root.create_directory(PurePosixPath("ns/old"))
    (export / "ns" / f"{filesystem.STAGING_PREFIX}left-over").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(filesystem, "_rename_noreplace", watch)
        assert root.create_directory(PurePosixPath("ns/new"), 0o2770) is True
    assert seen == [0o2770]
    assert mode_of(export / "ns" / "new") == 0o2770
    names = sorted(p.name for p in (export / "ns").iterdir())
    assert names == [f"{filesystem.STAGING_PREFIX}left-over", "new", "old"]


def test_create_clears_its_own_staging_directory_left_by_a_crash(
    root: ExportRoot, export: Path
) -> None:
    staging = filesystem.STAGING_PREFIX + hashlib.sha256(b"v").hexdigest()[:32]
    (export / staging).mkdir()
    assert root.create_directory(PurePosixPath("v")) is True
    assert sorted(p.name for p in export.iterdir()) == ["v"]


def test_create_refuses_a_file_in_the_way(root: ExportRoot, export: Path) -> None:
    (export / "f").write_text("x")
    with pytest.raises(UnsafePathError, match=r'"f" in the export .* is not a directory'):
        root.create_directory(PurePosixPath("f"))
    with pytest.raises(UnsafePathError, match=r'"f" in the export .* is not a directory'):
        root.create_directory(PurePosixPath("f/sub"))
    assert (export / "f").read_text() == "x"


@pytest.mark.parametrize("rel", ["/etc", "", ".", "..", "a/..", "../a", "a/../../b", "a\x00b"])
def test_hostile_relative_paths_are_refused(root: ExportRoot, export: Path, rel: str) -> None:
    path = PurePosixPath(rel)
    for operation in (
        lambda: root.create_directory(path),
        lambda: root.remove_directory(path),
        lambda: root.archive_directory(path, "archived-x"),
        lambda: root.exists(path),
    ):
        with pytest.raises(UnsafePathError):
            operation()
    assert list(export.iterdir()) == []


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "/x", "a\x00", "\ud800"])
def test_hostile_archive_names_are_refused(root: ExportRoot, export: Path, name: str) -> None:
    (export / "d").mkdir()
    with pytest.raises(UnsafePathError, match="archive name"):
        root.archive_directory(PurePosixPath("d"), name)
    assert (export / "d").is_dir()


def test_remove(root: ExportRoot, export: Path) -> None:
    (export / "a" / "b" / "deep").mkdir(parents=True)
    (export / "a" / "b" / "deep" / "file").write_text("x")
    assert root.remove_directory(PurePosixPath("a/b")) is True
    assert (export / "a").is_dir()
    assert not (export / "a" / "b").exists()


def test_remove_missing(root: ExportRoot, export: Path) -> None:
    assert root.remove_directory(PurePosixPath("missing")) is False
    assert root.remove_directory(PurePosixPath("missing/parent/too")) is False
    assert list(export.iterdir()) == []


def test_remove_does_not_follow_symlinks_inside_the_tree(
    root: ExportRoot, export: Path, outside: Path
) -> None:
    (export / "d").mkdir()
    (export / "d" / "escape").symlink_to(outside)
    (export / "d" / "escape-file").symlink_to(outside / "sentinel")
    assert root.remove_directory(PurePosixPath("d")) is True
    assert not (export / "d").exists()
    assert (outside / "sentinel").read_text() == "keep me"


def test_exists(root: ExportRoot, export: Path) -> None:
    (export / "a" / "b").mkdir(parents=True)
    assert root.exists(PurePosixPath("a/b"))
    assert root.exists(PurePosixPath("a"))
    assert not root.exists(PurePosixPath("a/c"))
    assert not root.exists(PurePosixPath("x/y"))


def test_archive(root: ExportRoot, export: Path, rename_mode: str) -> None:
    (export / "ns" / "claim").mkdir(parents=True)
    (export / "ns" / "claim" / "data").write_text("v1")
    assert root.archive_directory(PurePosixPath("ns/claim"), "archived-claim") == "archived-claim"
    assert (export / "archived-claim" / "data").read_text() == "v1"
    assert not (export / "ns" / "claim").exists()
    assert (export / "ns").is_dir()


def test_archive_missing(root: ExportRoot, export: Path, rename_mode: str) -> None:
    assert root.archive_directory(PurePosixPath("gone"), "archived-gone") is None
    assert root.archive_directory(PurePosixPath("no/parent"), "archived-parent") is None
    assert list(export.iterdir()) == []


def test_archive_collisions_keep_every_copy(
    root: ExportRoot, export: Path, rename_mode: str
) -> None:
    names = []
    for version in range(4):
        (export / "d").mkdir()
        (export / "d" / "data").write_text(f"v{version}")
        name = root.archive_directory(PurePosixPath("d"), "archived-d")
        assert name is not None
        names.append(name)
    assert names[0] == "archived-d"
    assert re.fullmatch(rf"archived-d-{STAMPED}", names[1])
    assert all(re.fullmatch(rf"archived-d-{STAMPED}(-\d+)?", name) for name in names[1:])
    assert len(set(names)) == 4
    assert sorted((export / name / "data").read_text() for name in names) == [
        "v0",
        "v1",
        "v2",
        "v3",
    ]
    assert sorted(p.name for p in export.iterdir()) == sorted(names)


def test_archive_does_not_replace_an_empty_directory_or_a_file(
    root: ExportRoot, export: Path, rename_mode: str
) -> None:
    (export / "archived-d").mkdir()
    (export / "archived-e").write_text("a file")
    (export / "d").mkdir()
    (export / "e").mkdir()
    assert root.archive_directory(PurePosixPath("d"), "archived-d") != "archived-d"
    assert root.archive_directory(PurePosixPath("e"), "archived-e") != "archived-e"
    assert (export / "archived-d").is_dir()
    assert (export / "archived-e").read_text() == "a file"


def test_archive_names_stay_legal_when_long(root: ExportRoot, export: Path) -> None:
    leaf = "é" * 127
    for _ in range(3):
        (export / leaf).mkdir()
        name = root.archive_directory(PurePosixPath(leaf), "archived-" + leaf)
        assert name is not None
        assert len(name.encode()) <= 255
        assert (export / name).is_dir()
    assert len(list(export.iterdir())) == 3


def test_archive_of_a_top_level_directory_into_its_own_name_collides_safely(
    root: ExportRoot, export: Path, rename_mode: str
) -> None:
    (export / "archived-c" / "c").mkdir(parents=True)
    name = root.archive_directory(PurePosixPath("archived-c/c"), "archived-c")
    assert name is not None
    assert name != "archived-c"
    assert (export / name).is_dir()
    assert (export / "archived-c").is_dir()


def test_symlink_as_intermediate_component_is_never_followed(
    root: ExportRoot, export: Path, outside: Path, rename_mode: str
) -> None:
    (outside / "victim").mkdir(mode=0o700)
    (export / "ns").symlink_to(outside)
    before = snapshot(outside)
    for operation in (
        lambda: root.create_directory(PurePosixPath("ns/new")),
        lambda: root.create_directory(PurePosixPath("ns/victim")),
        lambda: root.remove_directory(PurePosixPath("ns/victim")),
        lambda: root.archive_directory(PurePosixPath("ns/victim"), "archived-victim"),
        lambda: root.exists(PurePosixPath("ns/victim")),
    ):
        with pytest.raises(UnsafePathError, match=r'"ns" in the export .* is a symbolic link'):
            operation()
    assert snapshot(outside) == before
    assert mode_of(outside / "victim") == 0o700
    assert sorted(p.name for p in export.iterdir()) == ["ns"]


def test_symlink_deeper_in_the_path_is_never_followed(
    root: ExportRoot, export: Path, outside: Path
) -> None:
    (export / "a" / "b").mkdir(parents=True)
    (export / "a" / "b" / "c").symlink_to(outside)
    with pytest.raises(UnsafePathError, match=r'"a/b/c" in the export .* is a symbolic link'):
        root.create_directory(PurePosixPath("a/b/c/d/e"))
    assert snapshot(outside) == {"sentinel": "keep me"}


def test_symlink_as_the_leaf_is_never_followed(
    root: ExportRoot, export: Path, outside: Path, rename_mode: str
) -> None:
    (export / "leaf").symlink_to(outside)
    outside_mode = mode_of(outside)
    for operation in (
        lambda: root.create_directory(PurePosixPath("leaf")),
        lambda: root.remove_directory(PurePosixPath("leaf")),
        lambda: root.archive_directory(PurePosixPath("leaf"), "archived-leaf"),
        lambda: root.exists(PurePosixPath("leaf")),
    ):
        with pytest.raises(UnsafePathError, match=r'"leaf" in the export .* is a symbolic link'):
            operation()
    assert snapshot(outside) == {"sentinel": "keep me"}
    assert mode_of(outside) == outside_mode
    assert (export / "leaf").is_symlink()
    assert sorted(p.name for p in export.iterdir()) == ["leaf"]


def test_dangling_symlink_as_the_leaf_is_not_created_through(
    root: ExportRoot, export: Path, outside: Path
) -> None:
    (export / "leaf").symlink_to(outside / "would-be-created")
    with pytest.raises(UnsafePathError, match="symbolic link"):
        root.create_directory(PurePosixPath("leaf"))
    assert not (outside / "would-be-created").exists()


def test_symlinked_mount_path_itself_is_allowed(tmp_path: Path, export: Path) -> None:
    (tmp_path / "mount").symlink_to(export)
    ExportRoot(tmp_path / "mount").create_directory(PurePosixPath("d"))
    assert (export / "d").is_dir()


def test_missing_mount_path_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="check that the export is mounted there"):
        ExportRoot(tmp_path / "nowhere").create_directory(PurePosixPath("d"))


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (13, "permission denied; the export must be writable by uid"),
        (1, "permission denied; the export must be writable by uid"),
        (28, "no space left on the export"),
        (122, "the disk quota on the export is exhausted"),
        (30, "the export is mounted read-only"),
        (116, "stale NFS file handle"),
        (16, "a file in it is busy"),
        (5, os.strerror(5)),
    ],
)
def test_os_errors_become_storage_errors_that_say_what_to_fix(
    root: ExportRoot, export: Path, monkeypatch: pytest.MonkeyPatch, code: int, expected: str
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "mkdir", fail)
    with pytest.raises(StorageError) as caught:
        root.create_directory(PurePosixPath("a/b"))
    message = str(caught.value)
    assert message.startswith(f'cannot create directory "a" in the export mounted at {export}: ')
    assert expected in message
    assert isinstance(caught.value.__cause__, OSError)


def test_permission_denied_message_in_full(
    root: ExportRoot, export: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "mkdir", fail)
    with pytest.raises(StorageError) as caught:
        root.create_directory(PurePosixPath("ns/claim"))
    assert str(caught.value) == (
        f'cannot create directory "ns" in the export mounted at {export}: permission denied; '
        f"the export must be writable by uid {os.geteuid()}: check the export's mode and "
        "whether the NFS server squashes root (root_squash/all_squash)"
    )


def test_failed_rename_removes_its_placeholder(
    root: ExportRoot, export: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(filesystem, "_RENAMEAT2", None)

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(16, os.strerror(16))

    monkeypatch.setattr(os, "rename", fail)
    (export / "d").mkdir()
    with pytest.raises(StorageError, match=r'cannot move directory "d" to "archived-d"'):
        root.archive_directory(PurePosixPath("d"), "archived-d")
    assert sorted(p.name for p in export.iterdir()) == ["d"]


def test_other_renameat2_failures_are_storage_errors(
    root: ExportRoot, export: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(filesystem, "_RENAMEAT2", renameat2_failing_with(errno.EROFS))
    (export / "d").mkdir()
    with pytest.raises(StorageError, match="the export is mounted read-only"):
        root.archive_directory(PurePosixPath("d"), "archived-d")
    assert sorted(p.name for p in export.iterdir()) == ["d"]
