"""A real NFS server and client on one machine, for tests and the demo.

NFS-Ganesha serves temporary directories on 127.0.0.1 (NFSv3 and v4, registered with rpcbind),
and fuse-nfs mounts them through FUSE, since the kernel here has no NFS client. Everything is
installed on first use: Debian packages with apt-get, fuse-nfs built once from its source archive
into the cache. ``start_nfs_world`` stops and unmounts everything when its block ends.
"""

from nfsworld.tools import NfsWorldError, Tools, ensure_tools
from nfsworld.world import Export, Mount, NfsWorld, Squash, nfs_url, start_nfs_world

__all__ = [
    "Export",
    "Mount",
    "NfsWorld",
    "NfsWorldError",
    "Squash",
    "Tools",
    "ensure_tools",
    "nfs_url",
    "start_nfs_world",
]
