"""Who owns which directory: the index behind the isolation of one claim's data from another's.

Every PersistentVolume whose NFS source lies in a mounted export owns its directory, whoever
provisioned it. A location is the directory as the NFS server names it, ``(server, *components
of nfs.path)``, so volumes of nested exports (``/srv`` and ``/srv/team`` on one server) compare
correctly. A new volume may not be the same as, inside, or around a location somebody owns:
handing it out would give one claim another's data, and deleting or archiving it later would
take that data away.

Provisioning reserves its location in the same index, under the PV name it is about to create,
so two claims resolving to one directory in the same burst cannot both win before either PV
reaches the cache.
"""

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

# (server in lower case, component, component, ...)
Location = tuple[str, ...]
Relation = Literal["same", "inside", "around"]

_DESCRIBE: Final[dict[Relation, str]] = {
    "same": "is the directory of",
    "inside": "is inside the directory of",
    "around": "contains the directory of",
}


@dataclass(frozen=True)
class Owner:
    volume: str
    # Volumes that opted into sharing (their class allows it) may share a location with other
    # such volumes of the same class; never with anybody else.
    share_group: str | None = None


@dataclass(frozen=True)
class Conflict:
    """A location that clashes with a volume's: relation says where the new one lies."""

    owner: str
    relation: Relation
    location: Location

    def describe(self) -> str:
        return f"{_DESCRIBE[self.relation]} PersistentVolume {self.owner}"


def location_path(location: Location) -> str:
    return f"{location[0]}:/" + "/".join(location[1:])


class DirectoryOwners:
    """Thread-safe index of owned locations; each lookup costs the depth of the path."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_volume: dict[str, tuple[Location, Owner]] = {}
        self._owners: dict[Location, dict[str, Owner]] = {}
        # Every proper prefix of an owned location -> the volumes below it.
        self._below: dict[Location, set[str]] = {}

    def __len__(self) -> int:
        return len(self._by_volume)

    def track(self, volume: str, location: Location | None, share_group: str | None = None) -> None:
        """Record (or move, or with None forget) the location a volume owns."""
        with self._lock:
            self._forget(volume)
            if location is not None:
                self._add(Owner(volume, share_group), location)

    def forget(self, volume: str) -> None:
        with self._lock:
            self._forget(volume)

    def reserve(
        self, volume: str, location: Location, share_group: str | None = None
    ) -> list[Conflict]:
        """Take location for volume unless it clashes; the clashes (none: it is taken).

        A volume may always keep what it already has, so a retry of the same claim succeeds.
        """
        with self._lock:
            conflicts = [
                conflict
                for conflict in self._conflicts(location, ignore=volume)
                if not (
                    conflict.relation == "same"
                    and share_group is not None
                    and self._share_group(conflict.owner) == share_group
                )
            ]
            if not conflicts:
                self._forget(volume)
                self._add(Owner(volume, share_group), location)
            return conflicts

    def conflicts(self, location: Location, *, ignore: str | None = None) -> list[Conflict]:
        """Every owner of location, of a directory above it, or of one below it."""
        with self._lock:
            return self._conflicts(location, ignore=ignore)

    def location_of(self, volume: str) -> Location | None:
        with self._lock:
            entry = self._by_volume.get(volume)
            return None if entry is None else entry[0]

    def _conflicts(self, location: Location, *, ignore: str | None) -> list[Conflict]:
        found: list[Conflict] = []
        for depth in range(2, len(location) + 1):
            prefix = location[:depth]
            relation: Relation = "same" if depth == len(location) else "inside"
            found.extend(
                Conflict(name, relation, prefix)
                for name in sorted(self._owners.get(prefix, ()))
                if name != ignore
            )
        for name in sorted(self._below.get(location, ())):
            if name != ignore:
                found.append(Conflict(name, "around", self._by_volume[name][0]))
        return found

    def _share_group(self, volume: str) -> str | None:
        return self._by_volume[volume][1].share_group

    def _add(self, owner: Owner, location: Location) -> None:
        self._by_volume[owner.volume] = (location, owner)
        self._owners.setdefault(location, {})[owner.volume] = owner
        for prefix in _proper_prefixes(location):
            self._below.setdefault(prefix, set()).add(owner.volume)

    def _forget(self, volume: str) -> None:
        entry = self._by_volume.pop(volume, None)
        if entry is None:
            return
        location, _ = entry
        owners = self._owners[location]
        del owners[volume]
        if not owners:
            del self._owners[location]
        for prefix in _proper_prefixes(location):
            below = self._below[prefix]
            below.discard(volume)
            if not below:
                del self._below[prefix]


def _proper_prefixes(location: Location) -> Iterable[Location]:
    # The server alone is no directory: prefixes start at its first component.
    return (location[:depth] for depth in range(2, len(location)))
