"""StorageClass pathPattern expansion and the safety rules for the directory it names."""

import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Final

from nfs_provisioner.nfs._paths import quote, split_components, unsafe_reason
from nfs_provisioner.nfs.errors import UnsafePathError

# The Go provisioner's regexp, kept verbatim so existing patterns expand identically.
_REFERENCE: Final = re.compile(r"\$\{\.PVC\.((labels|annotations)\.(.*?)|.*?)\}")

ARCHIVE_PREFIX: Final = "archived-"
# The provisioner's own entries at the top of an export: the archive registry, doctor's probes,
# directories being created.
TOOL_PREFIX: Final = ".nfs-provisioner-"
# Top-level directories that belong to the filesystem or the NFS server, never to a claim.
SYSTEM_DIRECTORIES: Final = frozenset({"lost+found", ".snapshot", ".snapshots", ".zfs"})

# A default directory ends in the PV name, "pvc-<claim uid>"; Kubernetes uids are lowercase.
_DEFAULT_DIRECTORY_SUFFIX: Final = re.compile(
    r"-pvc-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z"
)


def expand_path_pattern(
    pattern: str,
    *,
    namespace: str,
    name: str,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
) -> str:
    """Substitute ${.PVC.*} references; unknown fields and missing keys become "".

    One pass over the pattern: a label value that itself looks like a reference stays literal,
    so claim authors cannot smuggle references in through their own metadata.
    """
    fields = {"namespace": namespace, "name": name}

    def substitute(match: re.Match[str]) -> str:
        source, key = match.group(2), match.group(3)
        if source == "labels":
            return labels.get(key, "")
        if source == "annotations":
            return annotations.get(key, "")
        return fields.get(match.group(1), "")

    return _REFERENCE.sub(substitute, pattern)


def empty_references(
    pattern: str,
    *,
    namespace: str,
    name: str,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
) -> list[str]:
    """The ${.PVC.*} references of pattern that expand to "" for this claim."""
    empty = []
    for match in _REFERENCE.finditer(pattern):
        if not expand_path_pattern(
            match.group(0), namespace=namespace, name=name, labels=labels, annotations=annotations
        ):
            empty.append(match.group(0))
    return empty


def default_directory_name(namespace: str, claim_name: str, pv_name: str) -> str:
    return f"{namespace}-{claim_name}-{pv_name}"


def resolve_volume_directory(
    pattern: str | None,
    *,
    namespace: str,
    name: str,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    pv_name: str,
) -> PurePosixPath:
    """The claim's directory relative to the export root; UnsafePathError if it is not safe.

    Unsafe results are refused rather than repaired: a repaired path would silently hand the
    claim a directory nobody asked for.
    """
    default = default_directory_name(namespace, name, pv_name)
    if pattern is None:
        return _checked_default(default)
    expanded = expand_path_pattern(
        pattern, namespace=namespace, name=name, labels=labels, annotations=annotations
    )
    components = split_components(expanded)
    if not components:
        # Go HEAD falls back to the default name for an empty expansion; a pattern that cleans
        # to nothing (such as "/") would otherwise be the export root itself.
        return _checked_default(default)
    describe = f"pathPattern {quote(pattern)} resolves to {quote(expanded)}"
    missing = empty_references(
        pattern, namespace=namespace, name=name, labels=labels, annotations=annotations
    )
    if missing:
        # Dropping a level would hand out its parent: with "${.PVC.namespace}/${.PVC.annotations.x}"
        # a claim without x would get the directory holding every volume of its namespace.
        raise UnsafePathError(
            f"{describe}: {', '.join(quote(reference) for reference in missing)} "
            "expanded to nothing (a missing label or annotation, or an unknown field); set it on "
            "the claim, or fix the pattern"
        )
    _check(describe, components, own_default=default)
    return PurePosixPath(*components)


def _checked_default(default: str) -> PurePosixPath:
    # The API server validates namespaces, claim names and uids, so only their combined length
    # (up to 358 bytes) can trip this for real claims; failing beats a half-created directory.
    describe = f"the default directory name {quote(default)}"
    if split_components(default) != [default]:
        raise UnsafePathError(f"{describe} is not a single directory name")
    _check(describe, [default], own_default=default)
    return PurePosixPath(default)


def _check(describe: str, components: list[str], *, own_default: str) -> None:
    def refuse(reason: str) -> UnsafePathError:
        return UnsafePathError(f"{describe}, which {reason}")

    reason = unsafe_reason(components)
    if reason is not None:
        raise refuse(reason)
    top = components[0]
    if top == own_default:
        return
    if top in SYSTEM_DIRECTORIES or top.startswith(TOOL_PREFIX):
        raise refuse(
            f"is reserved: {quote(top)} at the top of the export belongs to the filesystem, the "
            "NFS server or the provisioner"
        )
    if top.startswith(ARCHIVE_PREFIX):
        raise refuse(
            f"is in the archive: top-level directories starting with {quote(ARCHIVE_PREFIX)} "
            "hold the data of deleted volumes"
        )
    if _DEFAULT_DIRECTORY_SUFFIX.search(top):
        raise refuse(
            f"is the directory of another claim ({quote(top)} ends in -pvc-<uid>); only this "
            f"claim's own directory {quote(own_default)} may have that shape"
        )
