"""Errors of the API layer."""

from __future__ import annotations


class ApiError(Exception):
    """A non-2xx answer of the API server (or a transport failure, with status 0)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if status else message)
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def is_not_found(self) -> bool:
        return self.status == 404

    @property
    def is_conflict(self) -> bool:
        return self.status == 409

    @property
    def is_already_exists(self) -> bool:
        return self.status == 409 and self.reason == "AlreadyExists"

    @property
    def is_transient(self) -> bool:
        """The server was unreachable, overloaded or failing: the same call may succeed later."""
        return self.status in (0, 429) or self.status >= 500

    @property
    def is_gone(self) -> bool:
        return self.status == 410


class ConfigurationError(Exception):
    """The cluster connection cannot be set up (bad kubeconfig, no in-cluster environment)."""
