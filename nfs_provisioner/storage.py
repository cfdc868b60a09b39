"""The interface between the generic provisioning controller and a storage backend.

A backend turns a claim into a PersistentVolume body and removes (or keeps) the storage of a
released volume; it never talks to the API server. The controller does everything else.
Optional abilities (expansion, usage measurement, expiry of kept storage) are small separate
protocols; the controller uses those a backend has.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable


class BackendError(Exception):
    """A failure whose message a user can act on; it goes into a Kubernetes event."""


# A Normal event on the claim being provisioned: (reason, message).
Report = Callable[[str, str], None]


def _ignore_report(_reason: str, _message: str) -> None:
    return None


@dataclass(frozen=True)
class ProvisionRequest:
    pv_name: str
    claim: Mapping[str, Any]
    storage_class: Mapping[str, Any]
    selected_node: str | None = None
    # What the claim's owner should know although provisioning succeeds.
    report: Report = _ignore_report


class DeleteOutcome(enum.Enum):
    REMOVED = "removed"
    ARCHIVED = "archived"
    RETAINED = "retained"
    ALREADY_GONE = "already gone"
    # Another volume still uses the storage, so it stays until the last one goes.
    SHARED = "kept for the other volumes using it"


class Provisioner(Protocol):
    supports_block: bool

    def provision(self, request: ProvisionRequest) -> dict[str, Any]:
        """Create the storage and return the PV body (no claimRef, class or annotations)."""

    def delete(
        self, pv: Mapping[str, Any], storage_class: Mapping[str, Any] | None
    ) -> DeleteOutcome:
        """Remove, archive or keep the storage of a released volume."""

    def discard(self, pv: Mapping[str, Any]) -> DeleteOutcome:
        """Undo provision() for a volume whose PV object was never saved, losing no data."""


@runtime_checkable
class VolumeTracker(Protocol):
    """A backend that must know every PersistentVolume in the cluster, not only its own.

    The controller calls these from its PV cache (all PVs, whoever provisioned them) before any
    claim is provisioned, and forgets the PV name of a claim deleted before its PV was saved.
    """

    def track_volume(self, pv: Mapping[str, Any]) -> None: ...

    def forget_volume(self, pv_name: str) -> None: ...


@runtime_checkable
class Expander(Protocol):
    def expand(self, pv: Mapping[str, Any], requested: str) -> str:
        """Grow the volume's storage to at least requested (a quantity such as "2Gi").

        Returns the capacity the volume now has. The volume needs no expansion on the node:
        once this returns, the claim's resize is complete.
        """


# Called with a number of directory entries about to be examined; blocks until they may be.
Throttle = Callable[[int], None]


@dataclass(frozen=True)
class VolumeUsage:
    used_bytes: int
    used_inodes: int
    # Directories that could not be read; the figures leave out what is below them.
    unreadable: int = 0


@runtime_checkable
class UsageMeter(Protocol):
    def measure(self, pv: Mapping[str, Any], throttle: Throttle) -> VolumeUsage:
        """What the volume's storage holds, examining entries no faster than throttle allows."""


@dataclass(frozen=True)
class ExpiredStorage:
    """Kept storage of a deleted volume whose retention ran out."""

    location: str
    age_seconds: float
    # Why it could not be removed; None once it is gone.
    error: str | None = None


@runtime_checkable
class StorageSweeper(Protocol):
    def sweep_expired(self, now: datetime) -> list[ExpiredStorage]:
        """Remove the kept storage whose retention ended before now; what was found and done."""


@dataclass(frozen=True)
class CloneProgress:
    """How far a copy has come: entries (files, directories, links) and bytes copied so far."""

    entries: int
    bytes: int


# Called now and then by a running copy; must not block for long. It may raise
# CloneCancelledError to stop the copy (the provisioner is shutting down).
CloneReport = Callable[[CloneProgress], None]


class CloneCancelledError(Exception):
    """A copy stopped before it was complete; nothing of it is left to be bound."""


@runtime_checkable
class Cloner(Protocol):
    """A backend that can make a new volume holding a copy of an existing volume's storage.

    The controller decides whether the source may be cloned (same namespace, Bound, a volume of
    this provisioner, capacity); the backend only copies. A clone can take long: the controller
    runs it on its own bounded pool, never on a provisioning worker.
    """

    def clone(
        self, request: ProvisionRequest, source: Mapping[str, Any], progress: CloneReport
    ) -> dict[str, Any]:
        """Like Provisioner.provision, the new storage holding a copy of source's (a PV).

        The new storage appears only once the copy is complete; an interrupted clone leaves
        nothing a later attempt would mistake for a finished one.
        """
