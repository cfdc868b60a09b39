"""Cloning a volume: the new directory is filled with a copy of the source volume's directory.

The copy (see copying) is made into the new directory's staging name, which ExportRoot renames
into place only once the copy is complete; a leftover staging directory of an attempt that died
is removed before the next attempt starts, so a restart copies again from the beginning and no
half copy is ever bound. The source may be on the same export or another mounted one. The new
directory gets the source directory's owner (when permitted) and mode, not the class's uid, gid
and mode: a clone is a copy.
"""

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import structlog

from nfs_provisioner.nfs._paths import quote
from nfs_provisioner.nfs.copying import CopyReport, copy_tree
from nfs_provisioner.objects import object_name
from nfs_provisioner.storage import CloneProgress, CloneReport, ProvisionRequest

if TYPE_CHECKING:
    from nfs_provisioner.nfs.backend import NFSBackend

log = structlog.get_logger(__name__)


def filler(
    backend: "NFSBackend",
    request: ProvisionRequest,
    source: Mapping[str, Any],
    progress: CloneReport,
) -> Callable[[int], None]:
    """What ExportRoot.create_directory calls with the new directory's staging descriptor."""
    export, directory = backend.exports.locate(source)
    root = backend.root_of(export)
    source_name = object_name(source)

    def report(copied: CopyReport) -> None:
        progress(CloneProgress(entries=copied.entries, bytes=copied.bytes))

    def fill(target_fd: int) -> None:
        with root.open_directory(directory) as source_fd:
            try:
                copied = copy_tree(source_fd, target_fd, progress=report)
            except OSError as error:
                raise root.storage_error(
                    f"copy directory {quote(str(directory))} of volume {source_name}", error
                ) from error
        left_out = copied.left_out()
        message = (
            f"copied {copied.files} files, {copied.directories} directories and {copied.links} "
            f"symbolic links ({copied.bytes} bytes) of volume {source_name} "
            f"({export}/{directory})"
        )
        request.report("CloneCopied", message + (f"; {left_out}" if left_out else ""))
        log.info(
            "volume cloned",
            source=source_name,
            pv=request.pv_name,
            files=copied.files,
            bytes=copied.bytes,
            left_out=left_out or None,
        )

    return fill
