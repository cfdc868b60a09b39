"""Pure decisions of the generic controller: which volumes to delete, what the caches keep,
what every provisioned PV carries. The vocabulary they use is :mod:`nfs_provisioner.objects`."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from typing import Any

from nfs_provisioner.objects import (
    ANN_PROVISIONED_BY,
    JsonObject,
    is_being_deleted,
    is_claim_for,
    metadata_of,
    provisioned_by,
    spec_of,
    status_of,
)


def should_delete_volume(volume: JsonObject, provisioner_name: str) -> bool:
    if is_being_deleted(volume) or status_of(volume).get("phase") != "Released":
        return False
    if spec_of(volume).get("persistentVolumeReclaimPolicy") != "Delete":
        return False
    return provisioned_by(volume) == provisioner_name


def complete_volume(
    body: Mapping[str, Any], claim: JsonObject, *, class_name: str, provisioner_name: str
) -> dict[str, Any]:
    """Add what every provisioned PV carries: its claim, its class, who provisioned it."""
    volume = dict(body)
    metadata = dict(metadata_of(volume))
    metadata["annotations"] = {
        **(metadata.get("annotations") or {}),
        ANN_PROVISIONED_BY: provisioner_name,
    }
    volume["metadata"] = metadata
    claim_metadata = metadata_of(claim)
    spec = dict(spec_of(volume))
    spec["claimRef"] = {
        "kind": "PersistentVolumeClaim",
        "apiVersion": "v1",
        "namespace": claim_metadata.get("namespace"),
        "name": claim_metadata.get("name"),
        "uid": claim_metadata.get("uid"),
        "resourceVersion": claim_metadata.get("resourceVersion"),
    }
    spec["storageClassName"] = class_name
    volume["spec"] = spec
    return volume


_CLAIM_METADATA = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "labels",
    "annotations",
    "deletionTimestamp",
)
_VOLUME_METADATA = ("name", "uid", "resourceVersion", "annotations", "deletionTimestamp")


# Strings up to this long are shared between cached objects (sys.intern): keys, namespaces,
# class names, sizes, access modes, phases. Longer ones (uids, paths) are unique anyway.
_SHARED_LENGTH = 32
# Parts that thousands of claims and PVs have alike ({"requests": {"storage": "1Gi"}},
# ["ReadWriteMany"]): one object serves every cached claim or PV that has an equal one.
# The cache is read-only, so sharing them is safe. A bound claim's status is one of them
# unless it has conditions (a resize under way).
_SHARED_PARTS = frozenset(
    {
        "resources",
        "capacity",
        "allocatedResources",
        "allocatedResourceStatuses",
        "accessModes",
        "mountOptions",
    }
)
_CANONICAL: dict[Any, Any] = {}
_CANONICAL_LIMIT = 4096


def _pick(section: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: _shared(section[key], key) for key in keys if key in section}


def _shared(value: Any, key: str = "") -> Any:
    """A copy of decoded JSON whose keys, short strings and repeated parts are shared with
    every other cached object. JSON decoding makes a new string for every key of every
    object and a new dict for every size: more than a third of what a cached object costs."""
    if isinstance(value, str):
        return sys.intern(value) if len(value) <= _SHARED_LENGTH else value
    if isinstance(value, dict):
        value = {sys.intern(k): _shared(item, k) for k, item in value.items()}
    elif isinstance(value, list):
        value = [_shared(item) for item in value]
    else:
        return value
    return _canonical(value) if key in _SHARED_PARTS else value


def _canonical(value: Any) -> Any:
    frozen = _frozen(value)
    found = _CANONICAL.get(frozen)
    if found is None:
        if len(_CANONICAL) >= _CANONICAL_LIMIT:
            # Objects cached so far keep what they share; new ones start a new table.
            _CANONICAL.clear()
        found = _CANONICAL.setdefault(frozen, value)
    return found


def _frozen(value: Any) -> Any:
    if isinstance(value, dict):
        return ("{", *((key, _frozen(item)) for key, item in value.items()))
    if isinstance(value, list):
        return ("[", *(_frozen(item) for item in value))
    return (type(value), value)  # True and 1 are equal, but not the same JSON


# A packed object's shape: its keys in order, each with the shape of its section (None for
# a value kept as it is).
Shape = tuple[tuple[str, "Shape | None"], ...]


class _Layout:
    """Where each key's value is in a packed object of one shape; one per distinct shape."""

    __slots__ = ("keys", "offsets", "size")

    def __init__(self, shape: Shape) -> None:
        self.keys = tuple(key for key, _ in shape)
        self.offsets: dict[str, tuple[int, _Layout | None]] = {}
        self.size = 0
        for key, section in shape:
            layout = _layout(section) if section is not None else None
            self.offsets[key] = (self.size, layout)
            self.size += layout.size if layout is not None else 1


_LAYOUTS: dict[Shape, _Layout] = {}


def _layout(shape: Shape) -> _Layout:
    found = _LAYOUTS.get(shape)
    if found is None:
        found = _LAYOUTS.setdefault(shape, _Layout(shape))
    return found


class Packed(Mapping[str, Any]):
    """A cached object in one tuple of its values: a read-only mapping whose sections
    (metadata, spec) are views into the same tuple, made when they are read.

    The three dicts of a claim or PV stub cost 552 bytes before any value; packed, about
    150. With 100 000 foreign objects in a cluster, most of the cache is such stubs.
    """

    __slots__ = ("_layout", "_offset", "_values")

    def __init__(self, layout: _Layout, values: tuple[Any, ...], offset: int = 0) -> None:
        self._layout = layout
        self._values = values
        self._offset = offset

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> Packed:
        """Packs the nested dicts of ``obj``; shared parts and statuses stay as they are."""
        values: list[Any] = []

        def flatten(section: Mapping[str, Any]) -> Shape:
            shape: list[tuple[str, Shape | None]] = []
            for key, value in section.items():
                if isinstance(value, dict) and key not in _SHARED_PARTS and key != "status":
                    shape.append((key, flatten(value)))
                else:
                    shape.append((key, None))
                    values.append(value)
            return tuple(shape)

        return cls(_layout(flatten(obj)), tuple(values))

    def __getitem__(self, key: str) -> Any:
        start, section = self._layout.offsets[key]
        if section is None:
            return self._values[self._offset + start]
        return Packed(section, self._values, self._offset + start)

    def __iter__(self) -> Iterator[str]:
        return iter(self._layout.keys)

    def __len__(self) -> int:
        return len(self._layout.keys)

    def __repr__(self) -> str:
        return f"Packed({dict(self)!r})"


def compact_claim(claim: JsonObject, provisioner_name: str) -> JsonObject:
    """What the cache keeps of a claim: enough to provision or resize it and to reference it.

    Unbound claims that are not (yet) ours keep only their identity; the update that makes one
    ours carries the whole object again. Bound claims keep their size and status, which is
    all a resize needs: whether their volume is ours is the volume cache's to say.
    """
    metadata = metadata_of(claim)
    compact: dict[str, Any] = {"kind": "PersistentVolumeClaim", "apiVersion": "v1"}
    spec = spec_of(claim)
    if is_claim_for(claim, provisioner_name):
        compact["metadata"] = _pick(metadata, _CLAIM_METADATA)
        compact["spec"] = _shared(spec)
        return compact
    if spec.get("volumeName"):
        compact["metadata"] = _pick(
            metadata, ("name", "namespace", "uid", "resourceVersion", "deletionTimestamp")
        )
        compact["spec"] = _pick(spec, ("volumeName", "storageClassName", "resources"))
        status = _shared(status_of(claim))
        compact["status"] = status if "conditions" in status else _canonical(status)
    else:
        compact["metadata"] = _pick(metadata, ("name", "namespace", "uid", "resourceVersion"))
        compact["spec"] = {}
    return Packed.of(compact)


def compact_volume(volume: JsonObject, provisioner_name: str) -> JsonObject:
    """What the cache keeps of a PV, packed: all of ours, the name and NFS source of anybody
    else's.

    The name answers "does pvc-<uid> exist", which is all the claim side asks; the NFS source
    tells which directory the PV owns, so that no claim is given it.
    """
    metadata = metadata_of(volume)
    compact: dict[str, Any] = {"kind": "PersistentVolume", "apiVersion": "v1"}
    if provisioned_by(volume) != provisioner_name:
        # No uid: nothing is ever done to the PV of another provisioner.
        compact["metadata"] = _pick(metadata, ("name", "resourceVersion"))
        nfs = spec_of(volume).get("nfs")
        if nfs:
            compact["spec"] = {"nfs": _pick(nfs, ("server", "path"))}
        return Packed.of(compact)
    compact["metadata"] = _pick(metadata, _VOLUME_METADATA)
    compact["spec"] = _shared(spec_of(volume))
    compact["status"] = _canonical(_shared({"phase": status_of(volume).get("phase")}))
    return Packed.of(compact)
