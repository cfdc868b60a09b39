"""Where the Go original's source is found, which commit it is, and the errors when it is not."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest
from devcluster.goriginal import (
    DEFAULT_LOCATION,
    OLD_SETTING,
    SETTING,
    UNKNOWN_COMMIT,
    GoSourceMissingError,
    locate_source,
)

COMMIT = "59a3ca2cd10febfbe200c8676c4107be95f267a9"


def _archive(path: Path, *, comment: str | None) -> Path:
    """A .tar.gz shaped like `git archive --prefix=project/` makes (pax header when given)."""
    headers = {"comment": comment} if comment else {}
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT, pax_headers=headers) as tar:
        data = b"module example.test/project\n"
        info = tarfile.TarInfo("project/go.mod")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def _git(checkout: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(checkout), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_the_default_is_the_shared_directory_next_to_the_repository() -> None:
    assert DEFAULT_LOCATION.parts[-2:] == ("shared", "go-original")
    assert DEFAULT_LOCATION.parent.parent == Path(__file__).resolve().parents[3]


def test_an_archive_carries_the_commit_git_archive_wrote(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "whatever.tar.gz", comment=COMMIT)
    source = locate_source({SETTING: str(archive)})
    assert (source.kind, source.path, source.commit) == ("archive", archive, COMMIT)


def test_without_the_header_the_commit_comes_from_the_archive_name(tmp_path: Path) -> None:
    named = _archive(tmp_path / "nfs-subdir-external-provisioner-59a3ca2.tar.gz", comment=None)
    assert locate_source({SETTING: str(named)}).commit == "59a3ca2"
    unnamed = _archive(tmp_path / "source.tar.gz", comment=None)
    assert locate_source({SETTING: str(unnamed)}).commit == UNKNOWN_COMMIT


def test_a_directory_with_exactly_one_archive_is_that_archive(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "a.tar.gz", comment=COMMIT)
    (tmp_path / "README.md").write_text("about it\n")
    assert locate_source({SETTING: str(tmp_path)}).path == archive
    _archive(tmp_path / "b.tar.gz", comment=COMMIT)
    with pytest.raises(GoSourceMissingError, match=r"2 \.tar\.gz archives"):
        locate_source({SETTING: str(tmp_path)})


def test_the_older_setting_is_read_when_the_new_one_is_unset(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "a.tar.gz", comment=COMMIT)
    assert locate_source({OLD_SETTING: str(archive)}).path == archive
    other = _archive(tmp_path / "b.tgz", comment=COMMIT)
    assert locate_source({OLD_SETTING: str(archive), SETTING: str(other)}).path == other


def test_a_checkout_is_its_git_head_and_dirty_when_edited(tmp_path: Path) -> None:
    (tmp_path / "go.mod").write_text("module example.test/project\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "go.mod")
    _git(tmp_path, "commit", "-q", "-m", "first")
    head = _git(tmp_path, "rev-parse", "HEAD")
    clean = locate_source({SETTING: str(tmp_path)})
    assert (clean.kind, clean.commit) == ("checkout", head)
    (tmp_path / "go.mod").write_text("module example.test/edited\n")
    edited = locate_source({SETTING: str(tmp_path)})
    assert edited.commit == f"{head}-dirty"
    assert edited.digest != clean.digest


def test_a_checkout_without_git_has_an_unknown_commit(tmp_path: Path) -> None:
    (tmp_path / "go.mod").write_text("module example.test/project\n")
    assert locate_source({SETTING: str(tmp_path)}).commit == UNKNOWN_COMMIT


@pytest.mark.parametrize("name", ["missing", "empty", "plain-file"])
def test_no_source_says_which_setting_to_set(tmp_path: Path, name: str) -> None:
    location = tmp_path / name
    if name == "empty":
        location.mkdir()
    elif name == "plain-file":
        location.write_text("not an archive\n")
    with pytest.raises(GoSourceMissingError) as caught:
        locate_source({SETTING: str(location)})
    message = str(caught.value)
    assert str(location) in message
    assert SETTING in message
    assert "kubernetes-sigs/nfs-subdir-external-provisioner" in message
