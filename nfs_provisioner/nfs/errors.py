"""Errors of the NFS backend; each message tells the user what is wrong and what to change."""

from collections.abc import Iterable
from typing import Self

from nfs_provisioner.nfs._paths import quote
from nfs_provisioner.storage import BackendError


class InvalidParameterError(BackendError):
    """A StorageClass parameter is unknown or has a value the backend cannot use."""

    def __init__(self, parameter: str, value: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.value = value

    @classmethod
    def bad_value(cls, parameter: str, value: str, accepted: str) -> Self:
        return cls(
            parameter,
            value,
            f"StorageClass parameter {quote(parameter)} has invalid value {quote(value)}: "
            f"accepted values are {accepted}",
        )

    @classmethod
    def unknown(cls, parameter: str, value: str, accepted_parameters: Iterable[str]) -> Self:
        return cls(
            parameter,
            value,
            f"unknown StorageClass parameter {quote(parameter)}: "
            f"accepted parameters are {', '.join(accepted_parameters)}",
        )


class InvalidAnnotationError(BackendError):
    """A claim annotation the backend honours has a value it cannot use."""

    def __init__(self, annotation: str, value: str, accepted: str) -> None:
        super().__init__(
            f"claim annotation {quote(annotation)} has invalid value {quote(value)}: "
            f"accepted values are {accepted}"
        )
        self.annotation = annotation
        self.value = value


class UnsafePathError(BackendError):
    """A path would leave the export, hit its root, or reach data that belongs to someone else."""


class UnsupportedClaimError(BackendError):
    """The claim asks for something this backend cannot provide."""


class StorageError(BackendError):
    """The export refused a filesystem operation."""
