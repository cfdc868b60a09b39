"""Settings of ``nfs-provisioner run``: one frozen object, from flags, then env, then defaults.

The environment variables of the Go image keep their names and meaning, so a deployment
written for it works unchanged; every knob also has a flag, and flags win.
"""

from __future__ import annotations

import argparse
import re
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


class ConfigError(Exception):
    """A missing or malformed setting; the message is one line that says how to fix it."""


def parse_go_bool(value: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("expected one of 1 t T TRUE true True 0 f F FALSE false False")


def parse_duration(value: str) -> float:
    """Seconds from a Go-style duration ("15s", "1m30s", "500ms", "2h") or a plain number."""
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        parts = _DURATION_PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ValueError("expected a duration such as 500ms, 15s, 10m or 1h30m") from None
        scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
        seconds = sum(float(n) * scale[u] for n, u in parts)
    if seconds < 0:
        raise ValueError("must not be negative")
    return seconds


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be at least 1")
    return number


def _non_negative_float(value: str) -> float:
    number = float(value)
    if number < 0:
        raise ValueError("must not be negative")
    return number


EXTRA_EXPORTS_SYNTAX = "SERVER:/SHARE=/LOCAL/MOUNT, separated by commas"


class ExportMount(NamedTuple):
    """An NFS export (server and exported path) and where the provisioner has it mounted."""

    server: str
    share: str
    mount_path: str

    def __str__(self) -> str:
        return f"{self.server}:{self.share}"


def parse_extra_exports(value: str) -> tuple[ExportMount, ...]:
    """Parse "nfs2:/data=/mnt/nfs2,nfs3:/srv/x=/mnt/nfs3"; spaces around entries are ignored."""
    exports = []
    for raw in value.split(","):
        entry = raw.strip()
        if not entry:
            continue
        source, equals, mount_path = entry.rpartition("=")
        # At ":/", not the first ":", so that an IPv6 server such as [fd00::2] stays whole.
        server, colon, rest = source.partition(":/")
        share = "/" + rest
        if not equals or not colon or not server:
            raise ValueError(f"{entry!r} is not of the form {EXTRA_EXPORTS_SYNTAX}")
        if not mount_path.startswith("/"):
            raise ValueError(f"{entry!r}: the local mount {mount_path!r} must be an absolute path")
        exports.append(ExportMount(server, share, mount_path))
    return tuple(exports)


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError("must be greater than 0")
    return number


def _absolute_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError("must be an absolute path")
    return value


def _log_format(value: str) -> str:
    if value not in ("auto", "json", "console"):
        raise ValueError("expected auto, json or console")
    return value


def _log_level(value: str) -> str:
    if value.lower() not in ("debug", "info", "warning", "error"):
        raise ValueError("expected debug, info, warning or error")
    return value.lower()


def _address(value: str) -> str:
    _host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError("expected HOST:PORT, e.g. 0.0.0.0:8080 (port 0 turns it off)")
    return value


@dataclass(frozen=True)
class Knob:
    field: str
    flag: str
    env: str
    default: Any
    parse: Callable[[str], Any]
    help: str
    metavar: str = "VALUE"


# The order here is the order of --help.
KNOBS: tuple[Knob, ...] = (
    Knob(
        "nfs_server",
        "--nfs-server",
        "NFS_SERVER",
        None,
        str,
        "NFS server name or IP written into every PV (required)",
        "HOST",
    ),
    Knob(
        "nfs_path",
        "--nfs-path",
        "NFS_PATH",
        None,
        _absolute_path,
        "path of the export on the NFS server; base of every PV's nfs.path (required)",
        "PATH",
    ),
    Knob(
        "provisioner_name",
        "--provisioner-name",
        "PROVISIONER_NAME",
        None,
        str,
        "provisioner name that StorageClasses use (required)",
        "NAME",
    ),
    Knob(
        "mount_path",
        "--mount-path",
        "NFS_MOUNT_PATH",
        "/persistentvolumes",
        _absolute_path,
        "where the export is mounted inside the provisioner",
        "PATH",
    ),
    Knob(
        "extra_exports",
        "--extra-exports",
        "NFS_PROVISIONER_EXTRA_EXPORTS",
        (),
        parse_extra_exports,
        "more NFS exports this provisioner serves, each mounted locally: "
        f"{EXTRA_EXPORTS_SYNTAX}; StorageClass parameters server and share select one",
        "EXPORTS",
    ),
    Knob(
        "kubeconfig",
        "--kubeconfig",
        "KUBECONFIG",
        None,
        str,
        "kubeconfig file; unset: in-cluster service account",
        "FILE",
    ),
    Knob(
        "leader_election",
        "--enable-leader-election",
        "ENABLE_LEADER_ELECTION",
        True,
        parse_go_bool,
        "elect one active instance through a Lease (Go ParseBool spellings)",
        "BOOL",
    ),
    Knob(
        "pod_namespace",
        "--pod-namespace",
        "POD_NAMESPACE",
        None,
        str,
        "namespace of the leader-election Lease; unset: the service account's, else default",
        "NAMESPACE",
    ),
    Knob(
        "leader_election_id",
        "--leader-election-id",
        "NFS_PROVISIONER_LEADER_ELECTION_ID",
        None,
        str,
        "name of the Lease; unset: the provisioner name with '/' replaced by '-'",
        "NAME",
    ),
    Knob(
        "lease_duration",
        "--leader-election-lease-duration",
        "NFS_PROVISIONER_LEASE_DURATION",
        15.0,
        parse_duration,
        "how long a standby waits before taking over an unrenewed lease",
        "DURATION",
    ),
    Knob(
        "renew_deadline",
        "--leader-election-renew-deadline",
        "NFS_PROVISIONER_RENEW_DEADLINE",
        10.0,
        parse_duration,
        "the leader stops all work if it cannot renew for this long",
        "DURATION",
    ),
    Knob(
        "retry_period",
        "--leader-election-retry-period",
        "NFS_PROVISIONER_RETRY_PERIOD",
        2.0,
        parse_duration,
        "interval between lease acquire/renew attempts",
        "DURATION",
    ),
    Knob(
        "workers",
        "--workers",
        "NFS_PROVISIONER_WORKERS",
        16,
        _positive_int,
        "concurrent claim workers (and as many volume workers)",
        "N",
    ),
    Knob(
        "kube_api_qps",
        "--kube-api-qps",
        "NFS_PROVISIONER_KUBE_API_QPS",
        0.0,
        _non_negative_float,
        "client-side limit of API requests per second; 0: none, the API server's priority "
        "and fairness protects it and its 429 answers are retried",
        "QPS",
    ),
    Knob(
        "kube_api_burst",
        "--kube-api-burst",
        "NFS_PROVISIONER_KUBE_API_BURST",
        400,
        _positive_int,
        "requests allowed above the QPS limit in a burst",
        "N",
    ),
    Knob(
        "resync_period",
        "--resync-period",
        "NFS_PROVISIONER_RESYNC_PERIOD",
        900.0,
        parse_duration,
        "re-examine every cached claim and volume this often",
        "DURATION",
    ),
    Knob(
        "retry_base_delay",
        "--retry-base-delay",
        "NFS_PROVISIONER_RETRY_BASE_DELAY",
        15.0,
        parse_duration,
        "first retry delay after a failure; doubles per failure",
        "DURATION",
    ),
    Knob(
        "retry_max_delay",
        "--retry-max-delay",
        "NFS_PROVISIONER_RETRY_MAX_DELAY",
        1000.0,
        parse_duration,
        "cap of the retry delay; failing items keep retrying at this pace",
        "DURATION",
    ),
    Knob(
        "stuck_operation_after",
        "--stuck-operation-after",
        "NFS_PROVISIONER_STUCK_OPERATION_AFTER",
        60.0,
        parse_duration,
        "an operation running this long is stuck (an NFS server not answering): readiness "
        "fails and nfs_provisioner_stuck_operations counts it until it returns",
        "DURATION",
    ),
    Knob(
        "usage_scan_interval",
        "--usage-scan-interval",
        "NFS_PROVISIONER_USAGE_SCAN_INTERVAL",
        600.0,
        parse_duration,
        "how often the leader measures the used bytes and inodes of every bound volume (0: never)",
        "DURATION",
    ),
    Knob(
        "usage_scan_rate",
        "--usage-scan-rate",
        "NFS_PROVISIONER_USAGE_SCAN_RATE",
        2000.0,
        _positive_float,
        "directory entries the usage scan examines per second, at most",
        "N",
    ),
    Knob(
        "archive_sweep_interval",
        "--archive-sweep-interval",
        "NFS_PROVISIONER_ARCHIVE_SWEEP_INTERVAL",
        3600.0,
        parse_duration,
        "how often the leader removes archives whose archiveRetention has passed (0: never)",
        "DURATION",
    ),
    Knob(
        "metrics_address",
        "--metrics-address",
        "NFS_PROVISIONER_METRICS_ADDRESS",
        "0.0.0.0:8080",
        _address,
        "serves /metrics, /healthz and /readyz",
        "HOST:PORT",
    ),
    Knob(
        "log_format",
        "--log-format",
        "NFS_PROVISIONER_LOG_FORMAT",
        "auto",
        _log_format,
        "json, console, or auto (console when stderr is a terminal)",
        "FORMAT",
    ),
    Knob(
        "log_level",
        "--log-level",
        "NFS_PROVISIONER_LOG_LEVEL",
        "info",
        _log_level,
        "debug, info, warning or error",
        "LEVEL",
    ),
)
_REQUIRED = ("nfs_server", "nfs_path", "provisioner_name")


@dataclass(frozen=True)
class Settings:
    nfs_server: str
    nfs_path: str
    provisioner_name: str
    mount_path: str
    extra_exports: tuple[ExportMount, ...]
    kubeconfig: str | None
    leader_election: bool
    pod_namespace: str
    leader_election_id: str
    lease_duration: float
    renew_deadline: float
    retry_period: float
    workers: int
    kube_api_qps: float
    kube_api_burst: int
    resync_period: float
    retry_base_delay: float
    retry_max_delay: float
    stuck_operation_after: float
    usage_scan_interval: float
    usage_scan_rate: float
    archive_sweep_interval: float
    metrics_address: str
    log_format: str
    log_level: str
    identity: str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for knob in KNOBS:
        default = "required" if knob.field in _REQUIRED else knob.default
        if isinstance(default, float) and knob.parse is parse_duration:
            default = f"{default:g}s"
        elif default == ():
            default = "none"
        parser.add_argument(
            knob.flag,
            dest=knob.field,
            metavar=knob.metavar,
            default=None,
            help=f"{knob.help} [env {knob.env}; default: {default}]",
        )


def _default_namespace() -> str:
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


def load_settings(arguments: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    values: dict[str, Any] = {}
    for knob in KNOBS:
        raw = getattr(arguments, knob.field, None)
        source = knob.flag
        if raw is None and env.get(knob.env, "") != "":
            raw, source = env[knob.env], knob.env
        if raw is None:
            if knob.field in _REQUIRED:
                raise ConfigError(f"{knob.env} (or {knob.flag}) is required: {knob.help}")
            values[knob.field] = knob.default
            continue
        try:
            values[knob.field] = knob.parse(raw)
        except ValueError as error:
            raise ConfigError(f"invalid {source} value {raw!r}: {error}") from None
    if values["renew_deadline"] >= values["lease_duration"]:
        raise ConfigError(
            "the leader-election renew deadline must be shorter than the lease duration"
        )
    values["pod_namespace"] = values["pod_namespace"] or _default_namespace()
    values["leader_election_id"] = values["leader_election_id"] or values[
        "provisioner_name"
    ].replace("/", "-")
    values["identity"] = f"{socket.gethostname()}_{uuid.uuid4().hex[:12]}"
    return Settings(**values)
