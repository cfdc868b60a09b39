"""Settings of every command: one knob table, one resolver, one frozen object made of parts.

A knob is declared once: its flag, its environment variable, its parser and help here, its
default on the field of the part it sets (``ExportSettings``, ``ApiSettings``,
``ControllerSettings``, ``ElectionSettings``, ``ServingSettings``). ``run`` resolves them all;
``audit``, ``doctor`` and ``adopt`` resolve the ones they share with it, the same way: the flag,
else the environment variable, else the default. The environment variables of the Go image keep
their names and meaning, so a deployment written for it works unchanged.
"""

from __future__ import annotations

import argparse
import math
import socket
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from nfs_provisioner import values
from nfs_provisioner.controller.leaderelection import ElectionSettings
from nfs_provisioner.controller.settings import ControllerSettings
from nfs_provisioner.nfs import Export, NFSBackend
from nfs_provisioner.values import parse_go_bool

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class ConfigError(Exception):
    """A missing or malformed setting; the message is one line that says how to fix it."""


def parse_duration(value: str) -> float:
    """A setting's duration (values.parse_duration); a bare number is seconds, as it always
    was for these settings and as the chart's schema allows."""
    return values.parse_duration(value, bare_seconds=True)


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError("expected a whole number of at least 1") from None
    if number < 1:
        raise ValueError("must be at least 1")
    return number


def _number(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise ValueError("expected a number such as 5 or 2.5")
    return number


def _non_negative_float(value: str) -> float:
    number = _number(value)
    if number < 0:
        raise ValueError("must not be negative")
    return number


EXTRA_EXPORTS_SYNTAX = "SERVER:/SHARE=/LOCAL/MOUNT, separated by commas"


def parse_extra_exports(value: str) -> tuple[Export, ...]:
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
        exports.append(Export.of(server, share, mount_path))
    return tuple(exports)


def _positive_float(value: str) -> float:
    number = _number(value)
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
class ExportSettings:
    """The default export (NFS_SERVER:NFS_PATH at mount_path) and any extra ones."""

    nfs_server: str
    nfs_path: str
    mount_path: str = "/persistentvolumes"
    extra_exports: tuple[Export, ...] = ()


@dataclass(frozen=True)
class ApiSettings:
    # None: the in-cluster service account.
    kubeconfig: str | None = None
    qps: float = 0.0
    burst: int = 400


@dataclass(frozen=True)
class ServingSettings:
    metrics_address: str = "0.0.0.0:8080"
    log_format: str = "auto"
    log_level: str = "info"
    # Where to write each claim's stage times at exit (benchmarks); None: not recorded.
    stage_log: str | None = None


@dataclass(frozen=True)
class Settings:
    exports: ExportSettings
    api: ApiSettings
    controller: ControllerSettings
    election: ElectionSettings
    serving: ServingSettings
    # This process in the Lease and in events: host name and a random suffix.
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}_{uuid.uuid4().hex[:12]}")

    @property
    def provisioner_name(self) -> str:
        return self.controller.provisioner_name


_PARTS: dict[str, type[Any]] = {
    "exports": ExportSettings,
    "api": ApiSettings,
    "controller": ControllerSettings,
    "election": ElectionSettings,
    "serving": ServingSettings,
}


@dataclass(frozen=True)
class Knob:
    """One setting: where it lands (part.field), how it is spelled, how it is read."""

    name: str
    target: str
    flag: str
    env: str
    parse: Callable[[str], Any]
    help: str
    metavar: str = "VALUE"
    # How --help shows a default that is computed or means something (the README's words).
    shown_default: str | None = None

    @property
    def default(self) -> Any:
        """The default declared on the target field; None when the setting is required."""
        part, attribute = self.target.split(".")
        declared = {f.name: f for f in fields(_PARTS[part])}[attribute]
        if declared.default is not MISSING:
            return declared.default
        return None

    @property
    def required(self) -> bool:
        part, attribute = self.target.split(".")
        declared = {f.name: f for f in fields(_PARTS[part])}[attribute]
        return declared.default is MISSING and declared.default_factory is MISSING


# The order here is the order of --help.
KNOBS: tuple[Knob, ...] = (
    Knob(
        "nfs_server",
        "exports.nfs_server",
        "--nfs-server",
        "NFS_SERVER",
        str,
        "NFS server name or IP written into every PV",
        "HOST",
    ),
    Knob(
        "nfs_path",
        "exports.nfs_path",
        "--nfs-path",
        "NFS_PATH",
        _absolute_path,
        "path of the export on the NFS server; base of every PV's nfs.path",
        "PATH",
    ),
    Knob(
        "provisioner_name",
        "controller.provisioner_name",
        "--provisioner-name",
        "PROVISIONER_NAME",
        str,
        "provisioner name that StorageClasses use",
        "NAME",
    ),
    Knob(
        "mount_path",
        "exports.mount_path",
        "--mount-path",
        "NFS_MOUNT_PATH",
        _absolute_path,
        "where the export is mounted inside the provisioner",
        "PATH",
    ),
    Knob(
        "extra_exports",
        "exports.extra_exports",
        "--extra-exports",
        "NFS_PROVISIONER_EXTRA_EXPORTS",
        parse_extra_exports,
        "more NFS exports this provisioner serves, each mounted locally: "
        f"{EXTRA_EXPORTS_SYNTAX}; StorageClass parameters server and share select one",
        "EXPORTS",
    ),
    Knob(
        "kubeconfig",
        "api.kubeconfig",
        "--kubeconfig",
        "KUBECONFIG",
        str,
        "kubeconfig file",
        "FILE",
        "in-cluster",
    ),
    Knob(
        "leader_election",
        "election.enabled",
        "--enable-leader-election",
        "ENABLE_LEADER_ELECTION",
        parse_go_bool,
        "elect one active instance through a Lease (Go ParseBool spellings)",
        "BOOL",
    ),
    Knob(
        "pod_namespace",
        "election.namespace",
        "--pod-namespace",
        "POD_NAMESPACE",
        str,
        "namespace of the leader-election Lease",
        "NAMESPACE",
        "the service account's namespace, else default",
    ),
    Knob(
        "leader_election_id",
        "election.lease_name",
        "--leader-election-id",
        "NFS_PROVISIONER_LEADER_ELECTION_ID",
        str,
        "name of the Lease",
        "NAME",
        "the provisioner name with '/' replaced by '-'",
    ),
    Knob(
        "lease_duration",
        "election.lease_duration",
        "--leader-election-lease-duration",
        "NFS_PROVISIONER_LEASE_DURATION",
        parse_duration,
        "how long a standby waits before taking over an unrenewed lease",
        "DURATION",
    ),
    Knob(
        "renew_deadline",
        "election.renew_deadline",
        "--leader-election-renew-deadline",
        "NFS_PROVISIONER_RENEW_DEADLINE",
        parse_duration,
        "the leader stops all work if it cannot renew for this long",
        "DURATION",
    ),
    Knob(
        "retry_period",
        "election.retry_period",
        "--leader-election-retry-period",
        "NFS_PROVISIONER_RETRY_PERIOD",
        parse_duration,
        "interval between lease acquire/renew attempts",
        "DURATION",
    ),
    Knob(
        "workers",
        "controller.workers",
        "--workers",
        "NFS_PROVISIONER_WORKERS",
        _positive_int,
        "concurrent claim workers (and as many volume workers)",
        "N",
    ),
    Knob(
        "kube_api_qps",
        "api.qps",
        "--kube-api-qps",
        "NFS_PROVISIONER_KUBE_API_QPS",
        _non_negative_float,
        "client-side limit of API requests per second; 0: none, the API server's priority "
        "and fairness protects it and its 429 answers are retried",
        "QPS",
    ),
    Knob(
        "kube_api_burst",
        "api.burst",
        "--kube-api-burst",
        "NFS_PROVISIONER_KUBE_API_BURST",
        _positive_int,
        "requests allowed above the QPS limit in a burst",
        "N",
    ),
    Knob(
        "resync_period",
        "controller.resync_period",
        "--resync-period",
        "NFS_PROVISIONER_RESYNC_PERIOD",
        parse_duration,
        "re-examine every cached claim and volume this often",
        "DURATION",
    ),
    Knob(
        "retry_base_delay",
        "controller.retry_base_delay",
        "--retry-base-delay",
        "NFS_PROVISIONER_RETRY_BASE_DELAY",
        parse_duration,
        "first retry delay after a failure; doubles per failure",
        "DURATION",
    ),
    Knob(
        "retry_max_delay",
        "controller.retry_max_delay",
        "--retry-max-delay",
        "NFS_PROVISIONER_RETRY_MAX_DELAY",
        parse_duration,
        "cap of the retry delay; failing items keep retrying at this pace",
        "DURATION",
    ),
    Knob(
        "stuck_operation_after",
        "controller.stuck_operation_after",
        "--stuck-operation-after",
        "NFS_PROVISIONER_STUCK_OPERATION_AFTER",
        parse_duration,
        "an operation running this long is stuck (an NFS server not answering): readiness "
        "fails and nfs_provisioner_stuck_operations counts it until it returns",
        "DURATION",
    ),
    Knob(
        "usage_scan_interval",
        "controller.usage_scan_interval",
        "--usage-scan-interval",
        "NFS_PROVISIONER_USAGE_SCAN_INTERVAL",
        parse_duration,
        "how often the leader measures the used bytes and inodes of every bound volume (0: never)",
        "DURATION",
    ),
    Knob(
        "usage_scan_rate",
        "controller.usage_scan_rate",
        "--usage-scan-rate",
        "NFS_PROVISIONER_USAGE_SCAN_RATE",
        _positive_float,
        "directory entries the usage scan examines per second, at most",
        "N",
    ),
    Knob(
        "archive_sweep_interval",
        "controller.archive_sweep_interval",
        "--archive-sweep-interval",
        "NFS_PROVISIONER_ARCHIVE_SWEEP_INTERVAL",
        parse_duration,
        "how often the leader removes archives whose archiveRetention has passed (0: never)",
        "DURATION",
    ),
    Knob(
        "clone_workers",
        "controller.clone_workers",
        "--clone-workers",
        "NFS_PROVISIONER_CLONE_WORKERS",
        _positive_int,
        "copies of cloned volumes (dataSource: another claim) running at once, beside the workers",
        "N",
    ),
    Knob(
        "clone_progress_interval",
        "controller.clone_progress_interval",
        "--clone-progress-interval",
        "NFS_PROVISIONER_CLONE_PROGRESS_INTERVAL",
        parse_duration,
        "how often a running copy reports its progress in an event",
        "DURATION",
    ),
    Knob(
        "metrics_address",
        "serving.metrics_address",
        "--metrics-address",
        "NFS_PROVISIONER_METRICS_ADDRESS",
        _address,
        "serves /metrics, /healthz and /readyz; port 0 turns it off",
        "HOST:PORT",
    ),
    Knob(
        "log_format",
        "serving.log_format",
        "--log-format",
        "NFS_PROVISIONER_LOG_FORMAT",
        _log_format,
        "json, console, or auto (console when stderr is a terminal)",
        "FORMAT",
    ),
    Knob(
        "log_level",
        "serving.log_level",
        "--log-level",
        "NFS_PROVISIONER_LOG_LEVEL",
        _log_level,
        "debug, info, warning or error",
        "LEVEL",
    ),
    Knob(
        "stage_log",
        "serving.stage_log",
        "--stage-log",
        "NFS_PROVISIONER_STAGE_LOG",
        _absolute_path,
        "record when each claim was seen, dequeued, its directory made and its PV saved "
        "(CLOCK_MONOTONIC seconds) and write them to this JSON file at exit; for benchmarks",
        "FILE",
    ),
)
_BY_NAME: dict[str, Knob] = {knob.name: knob for knob in KNOBS}


def add_arguments(
    parser: argparse.ArgumentParser,
    names: Iterable[str] | None = None,
    *,
    help_texts: Mapping[str, str] | None = None,
    optional: bool = False,
) -> None:
    """Add the flags of these knobs (all by default), each with its env var and default;
    ``optional``: the command works without the knobs ``run`` requires (doctor)."""
    for name in names if names is not None else _BY_NAME:
        knob = _BY_NAME[name]
        text = (help_texts or {}).get(name, knob.help)
        default = "required" if knob.required and not optional else _show_default(knob)
        parser.add_argument(
            knob.flag,
            dest=knob.name,
            metavar=knob.metavar,
            default=None,
            help=f"{text} [env {knob.env}; default: {default}]",
        )


def _show_default(knob: Knob) -> str:
    default = knob.default
    if knob.shown_default is not None:
        return knob.shown_default
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, float) and knob.parse is parse_duration:
        return values.format_duration(default)
    if default in ((), None, ""):
        return "none"
    return f"{default:g}" if isinstance(default, float) else str(default)


def resolve(
    arguments: argparse.Namespace, env: Mapping[str, str], names: Iterable[str]
) -> dict[str, Any]:
    """The value of each knob: its flag, else its env var, else its default (None if required).

    ConfigError names the flag or variable of the first malformed value.
    """
    values: dict[str, Any] = {}
    for name in names:
        knob = _BY_NAME[name]
        raw = getattr(arguments, knob.name, None)
        source = knob.flag
        if raw is None and env.get(knob.env, "") != "":
            raw, source = env[knob.env], knob.env
        # Empty is unset, for a flag as for a variable (NFS_SERVER= and --nfs-server '').
        if raw is None or raw == "":
            values[name] = knob.default
            continue
        try:
            values[name] = knob.parse(raw)
        except ValueError as error:
            raise ConfigError(f"invalid {source} value {raw!r}: {error}") from None
    return values


def require(values: Mapping[str, Any], names: Iterable[str]) -> None:
    """ConfigError for the first of names that has no value."""
    for name in names:
        if values.get(name) is None:
            knob = _BY_NAME[name]
            raise ConfigError(f"{knob.env} (or {knob.flag}) is required: {knob.help}")


def load_settings(arguments: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    """Every setting of ``run``."""
    values = resolve(arguments, env, _BY_NAME)
    require(values, [knob.name for knob in KNOBS if knob.required])
    parts: dict[str, dict[str, Any]] = {part: {} for part in _PARTS}
    for knob in KNOBS:
        part, attribute = knob.target.split(".")
        parts[part][attribute] = values[knob.name]
    election = parts["election"]
    if election["renew_deadline"] >= election["lease_duration"]:
        raise ConfigError(
            "the leader-election renew deadline must be shorter than the lease duration"
        )
    election["namespace"] = election["namespace"] or _default_namespace()
    election["lease_name"] = election["lease_name"] or values["provisioner_name"].replace("/", "-")
    return Settings(**{part: _PARTS[part](**kwargs) for part, kwargs in parts.items()})


def export_settings(values: Mapping[str, Any]) -> ExportSettings:
    """The export part from resolved knob values (the commands resolve only what they need)."""
    require(values, ("nfs_server", "nfs_path"))
    return ExportSettings(
        nfs_server=values["nfs_server"],
        nfs_path=values["nfs_path"],
        mount_path=values.get("mount_path") or _BY_NAME["mount_path"].default,
        extra_exports=values.get("extra_exports") or (),
    )


def build_backend(exports: ExportSettings) -> NFSBackend:
    """The NFS backend of these exports; ConfigError if they cannot be served together."""
    try:
        return NFSBackend(
            server=exports.nfs_server,
            export_path=exports.nfs_path,
            mount_path=exports.mount_path,
            extra_exports=exports.extra_exports,
        )
    except ValueError as error:
        raise ConfigError(
            f"invalid --extra-exports (NFS_PROVISIONER_EXTRA_EXPORTS): {error}"
        ) from None


def _default_namespace() -> str:
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"
