"""The API layer: the only code that talks to the Kubernetes API server."""

from nfs_provisioner.kube.client import ApiClient, connect
from nfs_provisioner.kube.connection import Connection, load_connection
from nfs_provisioner.kube.errors import ApiError, ConfigurationError
from nfs_provisioner.kube.events import NORMAL, WARNING, EventRecorder
from nfs_provisioner.kube.informer import Handlers, Informer, object_key
from nfs_provisioner.objects import JsonDict, JsonObject

__all__ = [
    "NORMAL",
    "WARNING",
    "ApiClient",
    "ApiError",
    "ConfigurationError",
    "Connection",
    "EventRecorder",
    "Handlers",
    "Informer",
    "JsonDict",
    "JsonObject",
    "connect",
    "load_connection",
    "object_key",
]
