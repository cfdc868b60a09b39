"""Where a directory descriptor lives: its filesystem, its inode and the mount it was reached by.

``st_dev`` alone tells two filesystems apart but not a bind mount of the same filesystem, which
shares its device number; the mount id that statx(2) reports (Linux 5.8 and later) does. Where
statx or the mount id is missing, the device number is all there is to compare.
"""

import ctypes
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from nfs_provisioner.nfs._libc import libc_function

_AT_EMPTY_PATH: Final = 0x1000
_STATX_INO: Final = 0x100
_STATX_MNT_ID: Final = 0x1000
_STATX_BUFFER_BYTES: Final = 256
# struct statx: stx_mask at 0, stx_ino at 32, stx_dev_major/minor at 136/140, stx_mnt_id at 144.
_STATX_FIELDS: Final = struct.Struct("=I28xQ96xIIQ")

_Statx = Callable[[int, bytes, int, int, ctypes.Array[ctypes.c_char]], int]


_STATX: _Statx | None = libc_function(
    "statx", [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_char_p]
)


@dataclass(frozen=True)
class Place:
    device: int
    inode: int
    # The kernel's mount id, None where it cannot be had.
    mount: int | None

    def same_mount(self, other: "Place") -> bool:
        """True if both were reached without crossing a mount point (as far as can be told)."""
        if self.device != other.device:
            return False
        return self.mount is None or other.mount is None or self.mount == other.mount

    def same_directory(self, other: "Place") -> bool:
        return (self.device, self.inode) == (other.device, other.inode)


def place_of(fd: int) -> Place:
    """The Place of an open descriptor; OSError if it cannot be examined."""
    if _STATX is not None:
        buffer = ctypes.create_string_buffer(_STATX_BUFFER_BYTES)
        if _STATX(fd, b"", _AT_EMPTY_PATH, _STATX_INO | _STATX_MNT_ID, buffer) == 0:
            mask, inode, major, minor, mount = _STATX_FIELDS.unpack_from(buffer.raw)
            return Place(os.makedev(major, minor), inode, mount if mask & _STATX_MNT_ID else None)
    info = os.fstat(fd)
    return Place(info.st_dev, info.st_ino, None)
