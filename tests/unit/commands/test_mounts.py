"""Reading /proc/self/mountinfo and finding the mount that holds the export."""

from __future__ import annotations

import pytest

from nfs_provisioner.commands.mounts import (
    MountinfoError,
    mount_of,
    parse_mountinfo,
    server_path,
)

MOUNTINFO = """\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
31 27 0:50 / /persistentvolumes rw shared:7 master:1 - nfs4 nfs.example:/exports/volumes vers=4.2
32 27 0:51 / /mnt/v3 ro,relatime - nfs 10.0.0.5:/srv rw,vers=3,proto=tcp
33 27 0:52 /sub/dir /mnt/with\\040space rw - nfs [fd00::1]:/export rw,vers=4.1
34 27 0:53 / /persistentvolumes rw - tmpfs tmpfs rw
"""


def test_fields_are_parsed_and_unescaped() -> None:
    mounts = parse_mountinfo(MOUNTINFO)
    assert len(mounts) == 5
    nfs4 = mounts[1]
    assert (nfs4.mount_point, nfs4.fs_type, nfs4.source) == (
        "/persistentvolumes",
        "nfs4",
        "nfs.example:/exports/volumes",
    )
    assert nfs4.is_nfs
    assert nfs4.nfs_version == "4.2"
    assert not nfs4.read_only
    assert nfs4.export == ("nfs.example", "/exports/volumes")
    spaced = mounts[3]
    assert spaced.mount_point == "/mnt/with space"
    assert spaced.root == "/sub/dir"
    assert spaced.export == ("fd00::1", "/export")


def test_version_3_and_read_only_mounts() -> None:
    v3 = parse_mountinfo(MOUNTINFO)[2]
    assert v3.nfs_version == "3"
    assert v3.read_only


def test_nfs4_without_a_vers_option_is_version_4() -> None:
    (mount,) = parse_mountinfo("1 0 0:1 / /m rw - nfs4 s:/e rw\n")
    assert mount.nfs_version == "4"
    (mount,) = parse_mountinfo("1 0 0:1 / /m rw - nfs s:/e rw\n")
    assert mount.nfs_version is None


def test_read_only_in_super_options_counts() -> None:
    (mount,) = parse_mountinfo("1 0 0:1 / /m rw - nfs4 s:/e ro,vers=4.1\n")
    assert mount.read_only


def test_deepest_mount_point_wins_and_the_last_of_a_stack_is_on_top() -> None:
    mounts = parse_mountinfo(MOUNTINFO)
    top = mount_of("/persistentvolumes", mounts)
    assert top is not None
    assert top.fs_type == "tmpfs"
    inside = mount_of("/mnt/v3/volumes/a", mounts)
    assert inside is not None
    assert inside.mount_point == "/mnt/v3"
    # A shared prefix is not a parent directory.
    other = mount_of("/mnt/v3x", mounts)
    assert other is not None
    assert other.mount_point == "/"


def test_no_mount_holds_a_path_without_a_root_mount() -> None:
    assert mount_of("/a", parse_mountinfo("1 0 0:1 / /b rw - nfs4 s:/e rw\n")) is None


def test_server_path_joins_export_root_and_the_path_inside() -> None:
    mounts = parse_mountinfo(MOUNTINFO)
    assert server_path(mounts[1], "/persistentvolumes") == "/exports/volumes"
    assert server_path(mounts[2], "/mnt/v3/a/b") == "/srv/a/b"
    assert server_path(mounts[3], "/mnt/with space") == "/export/sub/dir"
    assert server_path(mounts[0], "/") is None


@pytest.mark.parametrize(
    "line", ["garbage", "1 0 0:1 / /m rw shared:1 nfs4 s:/e rw", "1 0 0:1 / /m rw -"]
)
def test_malformed_lines_are_reported(line: str) -> None:
    with pytest.raises(MountinfoError, match="line 2"):
        parse_mountinfo("1 0 0:1 / / rw - ext4 /dev/a rw\n" + line + "\n")


FUSE_NFS = """\
42 27 0:39 / /mnt/export rw,relatime - fuse.fuse-nfs nfs://127.0.0.1/srv/export rw,allow_other
43 27 0:40 / /mnt/v4 rw,relatime - fuse.fuse-nfs nfs://nfs.lan/srv/a%20b/?version=4&uid=0 rw
44 27 0:41 / /mnt/sshfs rw,relatime - fuse.sshfs host:/srv rw
"""


def test_a_fuse_nfs_mount_is_nfs_and_its_url_names_server_path_and_version() -> None:
    v3, v4, sshfs = parse_mountinfo(FUSE_NFS)
    assert v3.is_nfs
    assert v3.export == ("127.0.0.1", "/srv/export")
    # libnfs speaks NFSv3 unless the URL asks for another version.
    assert v3.nfs_version == "3"
    assert server_path(v3, "/mnt/export/vol") == "/srv/export/vol"
    assert v4.is_nfs
    assert v4.export == ("nfs.lan", "/srv/a b")
    assert v4.nfs_version == "4"
    assert not sshfs.is_nfs
    assert sshfs.export is None
