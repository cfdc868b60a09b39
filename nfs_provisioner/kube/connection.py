"""Where the API server is and how to authenticate: in-cluster, or from a kubeconfig.

In a pod (the usual case) everything comes from three things read directly: the
``KUBERNETES_SERVICE_HOST``/``_PORT`` environment, the service account's CA certificate and
its token, which the kubelet rotates (re-read at most a minute after it changed, as
client-go does). A kubeconfig whose user is a token (or token file) and whose cluster has a
CA file, CA data or ``insecure-skip-tls-verify`` is read the same light way. Anything else a
kubeconfig can say (client certificates, exec plugins, auth providers, several files in
``KUBECONFIG``, proxies) goes through the official ``kubernetes`` package's loader, imported
only then: its client models cost a running provisioner about 18 MB it has no use for.
"""

from __future__ import annotations

import base64
import binascii
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
import yaml

from nfs_provisioner.kube.errors import ConfigurationError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# client-go re-reads a projected token at most this long after its last read.
TOKEN_REREAD_SECONDS = 60.0
# TCP keepalive on every connection to the API server. A watch whose peer vanished without a
# FIN or RST (a NAT or load balancer that dropped the connection's state, a server that lost
# power) would otherwise stay silent until its read timeout, up to 11 minutes, with the caches
# blind all the while. Probed after 30 s of silence, then every 10 s; 6 unanswered probes end
# the connection (about 90 s), and the informer reconnects. A healthy idle watch answers the
# probes at the TCP level, so it is never cut.
KEEPALIVE_IDLE_SECONDS = 30
KEEPALIVE_INTERVAL_SECONDS = 10
KEEPALIVE_PROBES = 6
# Light-path keys: a kubeconfig user or cluster with any other key takes the full loader.
_LIGHT_USER_KEYS = frozenset({"token", "tokenFile"})
_LIGHT_CLUSTER_KEYS = frozenset(
    {
        "server",
        "certificate-authority",
        "certificate-authority-data",
        "insecure-skip-tls-verify",
        "tls-server-name",
        "extensions",
    }
)


@dataclass
class TokenFile:
    """A bearer token kept in a file that someone else rotates."""

    path: Path
    clock: Callable[[], float] = time.monotonic
    _token: str = ""
    _read_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def authorization(self) -> str:
        with self._lock:
            now = self.clock()
            if self._read_at is None or now - self._read_at >= TOKEN_REREAD_SECONDS:
                token = _read_token(self.path)
                # A rotation caught half-written keeps the token that worked until then.
                if token or not self._token:
                    self._token = token
                self._read_at = now
            return f"Bearer {self._token}"


def _read_token(path: Path) -> str:
    try:
        token = path.read_text().strip()
    except OSError as error:
        raise ConfigurationError(
            f"cannot read the token file {path}: {error.strerror or error}"
        ) from None
    if not token:
        raise ConfigurationError(f"the token file {path} is empty")
    return token


def keepalive_socket_options() -> list[tuple[int, int, int]]:
    """urllib3's own socket options (no Nagle) plus TCP keepalive, for every API connection."""
    options = list(urllib3.connection.HTTPConnection.default_socket_options)
    options.append((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1))
    for name, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE_SECONDS),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL_SECONDS),
        ("TCP_KEEPCNT", KEEPALIVE_PROBES),
    ):
        constant = getattr(socket, name, None)  # Linux has all three
        if constant is not None:
            options.append((socket.IPPROTO_TCP, constant, value))
    return options


@dataclass(frozen=True)
class Connection:
    """How to reach one API server: its URL, TLS settings and current credentials."""

    host: str
    authorization: Callable[[], str | None]
    ca_file: str | None = None
    ca_data: str | None = None
    verify: bool = True
    server_name: str | None = None
    # The full loader's own pool factory, for what only it knows (client certificates, proxies).
    pool_factory: Callable[[int, urllib3.Retry], urllib3.PoolManager] | None = None

    def pool(self, size: int, retries: urllib3.Retry) -> urllib3.PoolManager:
        if self.pool_factory is not None:
            return self.pool_factory(size, retries)
        try:
            context = ssl.create_default_context(cafile=self.ca_file, cadata=self.ca_data)
        except (OSError, ValueError) as error:  # ssl.SSLError is an OSError
            what = f"the CA certificate {self.ca_file}" if self.ca_file else "the CA data"
            raise ConfigurationError(f"cannot use {what}: {error}") from None
        options: dict[str, Any] = {}
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            options["cert_reqs"] = ssl.CERT_NONE
        if self.server_name:
            options["server_hostname"] = self.server_name
        return urllib3.PoolManager(
            num_pools=4,
            maxsize=size,
            retries=retries,
            ssl_context=context,
            socket_options=keepalive_socket_options(),
            **options,
        )


def in_cluster(
    environ: Mapping[str, str] | None = None, service_account: Path = SERVICE_ACCOUNT_DIR
) -> Connection:
    """The API server of the pod we run in, with the pod's service account."""
    environ = os.environ if environ is None else environ
    host = environ.get("KUBERNETES_SERVICE_HOST", "")
    port = environ.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise ConfigurationError(
            "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set: not running in "
            "a pod? Pass --kubeconfig (or set KUBECONFIG)"
        )
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    ca_file = service_account / "ca.crt"
    if not ca_file.is_file():
        raise ConfigurationError(f"the service account's CA certificate {ca_file} is missing")
    token = TokenFile(service_account / "token")
    token.authorization()  # a missing or empty token is an error now, not at the first call
    return Connection(
        host=f"https://{host}:{port}", authorization=token.authorization, ca_file=str(ca_file)
    )


def from_kubeconfig(path: str) -> Connection:
    """The current context of a kubeconfig file."""
    if os.pathsep in path:
        return _full_loader(path)
    try:
        document = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        detail = " ".join(str(error).split()) or type(error).__name__
        raise ConfigurationError(f"cannot load kubeconfig {path!r}: {detail}") from None
    try:
        light = _light_kubeconfig(document, Path(path).parent)
    except ConfigurationError as error:
        raise ConfigurationError(f"cannot load kubeconfig {path!r}: {error}") from None
    return light if light is not None else _full_loader(path)


def _named(document: Mapping[str, Any], section: str, name: Any) -> Mapping[str, Any] | None:
    for entry in document.get(section) or []:
        if isinstance(entry, Mapping) and entry.get("name") == name:
            value = entry.get(section[:-1])
            return value if isinstance(value, Mapping) else None
    return None


def _light_kubeconfig(document: Any, base: Path) -> Connection | None:
    """A Connection for a token-and-CA kubeconfig; None for anything the full loader needs."""
    if not isinstance(document, Mapping):
        return None
    context = _named(document, "contexts", document.get("current-context"))
    if context is None:
        return None
    cluster = _named(document, "clusters", context.get("cluster"))
    user = _named(document, "users", context.get("user"))
    if cluster is None or user is None or not cluster.get("server"):
        return None
    if set(cluster) - _LIGHT_CLUSTER_KEYS or set(user) - _LIGHT_USER_KEYS or not user:
        return None

    def relative(value: Any) -> Path:
        return base / str(value)

    authorization: Callable[[], str | None]
    if user.get("token"):
        bearer = f"Bearer {user['token']}"
        authorization = lambda: bearer  # noqa: E731
    elif user.get("tokenFile"):
        authorization = TokenFile(relative(user["tokenFile"])).authorization
        authorization()
    else:
        return None
    ca_data = None
    if cluster.get("certificate-authority-data"):
        try:
            ca_data = base64.b64decode(str(cluster["certificate-authority-data"])).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None  # the full loader says what is wrong with it
    ca_file = cluster.get("certificate-authority")
    return Connection(
        host=str(cluster["server"]).rstrip("/"),
        authorization=authorization,
        ca_file=str(relative(ca_file)) if ca_file else None,
        ca_data=ca_data,
        verify=not cluster.get("insecure-skip-tls-verify"),
        server_name=cluster.get("tls-server-name"),
    )


def _full_loader(path: str) -> Connection:
    """Everything a kubeconfig can say, through the official loader (imported only now)."""
    from kubernetes import client as k8s_client  # noqa: PLC0415
    from kubernetes import config as k8s_config  # noqa: PLC0415

    configuration = k8s_client.Configuration()
    try:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path, client_configuration=configuration
        )
    except (
        k8s_config.ConfigException,
        yaml.YAMLError,
        OSError,
        ValueError,
        TypeError,
        AttributeError,
        KeyError,
    ) as error:
        # A kubeconfig that is not YAML, or YAML of the wrong shape, is a setting to fix.
        detail = " ".join(str(error).split()) or type(error).__name__
        raise ConfigurationError(f"cannot load kubeconfig {path!r}: {detail}") from error

    def authorization() -> str | None:
        # Exec plugins and auth providers refresh the token through this call.
        value = configuration.auth_settings().get("BearerToken", {}).get("value")
        return str(value) if value else None

    def pool(size: int, retries: urllib3.Retry) -> urllib3.PoolManager:
        configuration.connection_pool_maxsize = size
        configuration.retries = retries
        configuration.socket_options = keepalive_socket_options()
        manager: urllib3.PoolManager = k8s_client.rest.RESTClientObject(configuration).pool_manager
        return manager

    return Connection(
        host=str(configuration.host).rstrip("/"), authorization=authorization, pool_factory=pool
    )


def load_connection(kubeconfig: str | None) -> Connection:
    """From a kubeconfig file when one is named, else in-cluster."""
    if kubeconfig:
        return from_kubeconfig(kubeconfig)
    try:
        return in_cluster()
    except ConfigurationError as error:
        raise ConfigurationError(f"cannot load in-cluster configuration: {error}") from None
