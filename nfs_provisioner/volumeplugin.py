"""The interface between the generic provisioning controller and a storage backend.

A backend turns a claim into a PersistentVolume body and removes (or keeps) the storage of a
released volume; it never talks to the API server. The controller does everything else.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


class BackendError(Exception):
    """A failure whose message a user can act on; it goes into a Kubernetes event."""


@dataclass(frozen=True)
class ProvisionRequest:
    pv_name: str
    claim: Mapping[str, Any]
    storage_class: Mapping[str, Any]
    selected_node: str | None = None


class DeleteOutcome(enum.Enum):
    REMOVED = "removed"
    ARCHIVED = "archived"
    RETAINED = "retained"
    ALREADY_GONE = "already gone"


class Provisioner(Protocol):
    supports_block: bool

    def provision(self, request: ProvisionRequest) -> dict[str, Any]:
        """Create the storage and return the PV body (no claimRef, class or annotations)."""

    def delete(
        self, pv: Mapping[str, Any], storage_class: Mapping[str, Any] | None
    ) -> DeleteOutcome:
        """Remove, archive or keep the storage of a released volume."""
