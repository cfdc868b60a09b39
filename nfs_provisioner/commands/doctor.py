"""``nfs-provisioner doctor``: check the export and the cluster the way the provisioner sees them.

Run it where the provisioner runs (``kubectl exec deploy/<name> -- nfs-provisioner doctor``):
it reads the same environment variables, so it checks that pod's mount and settings. Exit code
0: every check passed; 1: warnings only; 2: at least one failure.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import secrets
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nfs_provisioner import __version__, config
from nfs_provisioner.commands import tables
from nfs_provisioner.commands.checks import (
    PROVISIONING_FAILED,
    CheckResult,
    Probe,
    Space,
    Status,
    check_default_classes,
    check_export_path,
    check_failing_claims,
    check_free_inodes,
    check_free_space,
    check_mount,
    check_nfs_version,
    check_pending_claims,
    check_provisioned_by,
    check_root_squash,
    check_storage_class,
    check_writable,
    exit_code,
    find_pending,
    is_from,
)
from nfs_provisioner.commands.claims import assigns_default_retroactively
from nfs_provisioner.commands.mounts import Mount, MountinfoError, mount_of, parse_mountinfo
from nfs_provisioner.commands.queries import (
    STORAGE_CLASSES,
    VOLUMES,
    list_objects,
    namespace_exists,
    namespaced,
    server_version,
)
from nfs_provisioner.commands.tables import printable
from nfs_provisioner.config import ConfigError
from nfs_provisioner.kube import ApiClient, ApiError, ConfigurationError, JsonObject, connect
from nfs_provisioner.nfs import Export

PROBE_PREFIX = ".nfs-provisioner-doctor-"
# Any owner other than root: changing a file's owner needs CAP_CHOWN on the server's side,
# which root squash takes away.
_PROBE_OWNER = 4242
_NAME_WIDTH = 15


def add_arguments(parser: argparse.ArgumentParser) -> None:
    config.add_arguments(parser, ["mount_path"])
    parser.add_argument(
        "--mountinfo",
        metavar="FILE",
        type=Path,
        default=Path("/proc/self/mountinfo"),
        help="mount table that tells what is mounted there (default: /proc/self/mountinfo)",
    )
    parser.add_argument(
        "--local-export",
        action="store_true",
        help="the export is a local directory on purpose (make demo, tests): a mount that is "
        "not NFS is a warning, not a failure",
    )
    # Not required here: without them the checks that need them are skipped, with a warning.
    config.add_arguments(
        parser, ["nfs_server", "nfs_path", "provisioner_name", "extra_exports"], optional=True
    )
    parser.add_argument(
        "--storage-class",
        metavar="NAME",
        help="StorageClass that must name this provisioner (default: at least one must)",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        metavar="NS",
        help="only look at claims in this namespace (default: all namespaces)",
    )
    config.add_arguments(parser, ["kubeconfig"])
    tables.add_output_argument(parser)


@dataclass(frozen=True)
class _Settings:
    mount_path: str | None
    nfs_server: str | None
    nfs_path: str | None
    provisioner_name: str | None
    kubeconfig: str | None
    extra_exports: tuple[Export, ...] = ()


def main(arguments: argparse.Namespace, env: Mapping[str, str]) -> int:
    settings, result = _settings(arguments, env)
    results = [result]
    if settings.mount_path is not None:
        results += local_checks(
            settings.mount_path,
            arguments.mountinfo,
            settings.nfs_path,
            local_export=arguments.local_export,
        )
    for export in settings.extra_exports:
        results += [
            dataclasses.replace(result, message=f"{export}: {result.message}")
            for result in local_checks(
                export.mount_path,
                arguments.mountinfo,
                export.share,
                local_export=arguments.local_export,
            )
        ]
    results += cluster_checks(settings, arguments.storage_class, arguments.namespace)
    print(render_json(results) if arguments.output == "json" else render_text(results))
    return exit_code(results)


def _settings(
    arguments: argparse.Namespace, env: Mapping[str, str]
) -> tuple[_Settings, CheckResult]:
    # A malformed setting is a finding, not a reason to stop: doctor runs to explain problems.
    values: dict[str, Any] = {}
    errors = []
    for field in (
        "mount_path",
        "nfs_server",
        "nfs_path",
        "provisioner_name",
        "kubeconfig",
        "extra_exports",
    ):
        try:
            values[field] = config.resolve(arguments, env, [field])[field]
        except ConfigError as error:
            values[field] = None
            errors.append(str(error))
    values["extra_exports"] = values.get("extra_exports") or ()
    settings = _Settings(**values)
    if errors:
        return settings, CheckResult(
            "settings", Status.FAIL, "; ".join(errors), "correct the flag or environment variable"
        )
    missing = [
        name
        for name, value in (
            ("NFS_PATH", settings.nfs_path),
            ("PROVISIONER_NAME", settings.provisioner_name),
        )
        if value is None
    ]
    if missing:
        return settings, CheckResult(
            "settings",
            Status.WARN,
            f"{' and '.join(missing)} not set: the checks that need "
            f"{'it' if len(missing) == 1 else 'them'} were skipped",
            "pass --nfs-path and --provisioner-name, or run doctor inside the provisioner's pod",
        )
    return settings, CheckResult(
        "settings",
        Status.PASS,
        f"provisioner {settings.provisioner_name}, export {settings.nfs_path} "
        f"mounted at {settings.mount_path}",
    )


def local_checks(
    mount_path: str, mountinfo: Path, nfs_path: str | None, *, local_export: bool = False
) -> list[CheckResult]:
    results = []
    path = os.path.realpath(mount_path)
    unusable = _unusable(path)
    mount: Mount | None = None
    try:
        mount = mount_of(path, parse_mountinfo(mountinfo.read_text(errors="replace")))
    except (OSError, MountinfoError) as error:
        results.append(
            CheckResult(
                "mount",
                Status.WARN,
                f"cannot tell what is mounted at {path}: {mountinfo}: {error}",
                "pass a readable mount table with --mountinfo",
            )
        )
    else:
        results.append(check_mount(path, unusable, mount, local_export=local_export))
    if unusable is not None:
        return results
    if mount is not None and mount.is_nfs:
        results.append(check_nfs_version(mount))
        if nfs_path is not None:
            results.append(check_export_path(mount, path, nfs_path))
    probe = probe_export(Path(path))
    results.append(check_writable(mount, probe))
    if probe.error is None:
        results.append(check_root_squash(probe))
    try:
        stats = os.statvfs(path)
    except OSError as error:
        results.append(CheckResult("free-space", Status.FAIL, f"cannot stat {path}: {error}"))
        return results
    space = Space(
        total_bytes=stats.f_blocks * stats.f_frsize,
        free_bytes=stats.f_bavail * stats.f_frsize,
        total_inodes=stats.f_files,
        free_inodes=stats.f_favail,
    )
    results += [check_free_space(space), check_free_inodes(space)]
    return results


def _unusable(path: str) -> str | None:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "does not exist"
    except OSError as error:
        return f"cannot be reached: {error.strerror}"
    if not stat.S_ISDIR(mode):
        return "is not a directory"
    if not os.access(path, os.X_OK):
        return f"cannot be entered by uid {os.geteuid()}"
    return None


def probe_export(directory: Path) -> Probe:
    """Do what provisioning does, on a scratch entry: mkdir, chmod 0777, write, sync, chown."""
    euid = os.geteuid()
    scratch = directory / f"{PROBE_PREFIX}{secrets.token_hex(6)}"
    step = "create a directory"
    try:
        scratch.mkdir()
        step = "chmod a directory"
        scratch.chmod(0o777)
        step = "write a file"
        descriptor = os.open(scratch / "probe", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(descriptor, b"nfs-provisioner doctor\n")
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        owner = (scratch / "probe").stat().st_uid
    except OSError as error:
        return Probe(euid, error=error, failed_step=step, cleanup_error=_remove(scratch))
    chown_error = None
    if euid == 0:
        try:
            os.chown(scratch / "probe", _PROBE_OWNER, _PROBE_OWNER)
        except OSError as error:
            chown_error = error
    return Probe(euid, owner_uid=owner, chown_error=chown_error, cleanup_error=_remove(scratch))


def _remove(scratch: Path) -> OSError | None:
    try:
        (scratch / "probe").unlink(missing_ok=True)
        scratch.rmdir()
    except FileNotFoundError:
        return None
    except OSError as error:
        return error
    return None


def cluster_checks(
    settings: _Settings, class_name: str | None, namespace: str | None
) -> list[CheckResult]:
    try:
        api = connect(
            settings.kubeconfig,
            qps=20.0,
            burst=40,
            pool_size=2,
            user_agent=f"nfs-provisioner-doctor/{__version__}",
        )
        version = server_version(api)
        classes = {str(c["metadata"]["name"]): c for c in list_objects(api, STORAGE_CLASSES)}
        if namespace is not None and not namespace_exists(api, namespace):
            return [
                CheckResult(
                    "namespace",
                    Status.FAIL,
                    f"namespace {namespace} does not exist: no claim was checked",
                    "name an existing namespace with -n, or leave -n out for all namespaces",
                )
            ]
        claims = list_objects(api, namespaced("persistentvolumeclaims", namespace))
        volumes = list_objects(api, VOLUMES)
        failures = _failure_events(api, namespace)
    except ConfigurationError as error:
        # A kubeconfig that was named but cannot be read is a setting to fix, not an absence.
        return [
            CheckResult(
                "cluster",
                Status.FAIL if settings.kubeconfig else Status.WARN,
                f"cannot reach the API server ({error}): StorageClass, claim and volume "
                "checks skipped",
                "correct --kubeconfig / KUBECONFIG"
                if settings.kubeconfig
                else "pass --kubeconfig or set KUBECONFIG, or run doctor inside the "
                "provisioner's pod",
            )
        ]
    except ApiError as error:
        return [
            CheckResult(
                "cluster",
                Status.WARN,
                f"cannot reach the API server ({error}): StorageClass, claim and volume "
                "checks skipped",
                "pass --kubeconfig or set KUBECONFIG, or run doctor inside the provisioner's pod",
            )
        ]
    name = settings.provisioner_name
    results = []
    if name is not None:
        results.append(check_storage_class(classes, name, class_name))
    results.append(check_default_classes(classes, name))
    pending = find_pending(
        claims,
        classes,
        provisioner_name=name,
        retroactive_default=assigns_default_retroactively(version),
        now=datetime.datetime.now(datetime.UTC),
    )
    unserved = [
        f"{claim['metadata']['namespace']}/{claim['metadata']['name']}"
        for claim in pending.unanswered
        if name is not None and not _has_event_from(api, claim, name)
    ]
    ours = sorted(n for n, c in classes.items() if c.get("provisioner") == name)
    target = class_name or (ours[0] if ours else "<class>")
    results.append(
        check_pending_claims(
            pending.unservable,
            unserved,
            name,
            f"nfs-provisioner adopt --all-namespaces --storage-class {target}",
        )
    )
    if name is not None:
        results.append(check_failing_claims(claims, classes, failures, name))
        results.append(
            check_provisioned_by(volumes, classes, name, settings.nfs_path, settings.nfs_server)
        )
    return results


def _failure_events(api: ApiClient, namespace: str | None) -> list[JsonObject]:
    try:
        return list_objects(
            api,
            namespaced("events", namespace),
            field_selector=f"reason={PROVISIONING_FAILED}",
        )
    except ApiError:
        # Not allowed to read events: no evidence either way.
        return []


def _has_event_from(api: ApiClient, claim: Mapping[str, Any], provisioner_name: str) -> bool:
    metadata = claim["metadata"]
    try:
        events = list_objects(
            api,
            namespaced("events", metadata["namespace"]),
            field_selector=f"involvedObject.uid={metadata['uid']}",
        )
    except ApiError:
        # Without events there is no evidence either way; do not blame the provisioner.
        return True
    return any(is_from(event, provisioner_name) for event in events)


def render_text(results: Sequence[CheckResult]) -> str:
    lines = []
    indent = " " * (6 + _NAME_WIDTH + 1)
    for result in results:
        name, message = printable(result.name), printable(result.message)
        lines.append(f"{result.status.value.upper():<4}  {name:<{_NAME_WIDTH}} {message}")
        if result.fix and result.status is not Status.PASS:
            lines.append(f"{indent}fix: {printable(result.fix)}")
    counts = {status: sum(r.status is status for r in results) for status in Status}
    lines.append(
        f"\n{counts[Status.PASS]} passed, {counts[Status.WARN]} warning(s), "
        f"{counts[Status.FAIL]} failure(s)"
    )
    return "\n".join(lines)


def render_json(results: Sequence[CheckResult]) -> str:
    return json.dumps(
        {
            "checks": [result.to_json() for result in results],
            "summary": {
                status.value: sum(r.status is status for r in results) for status in Status
            },
            "exitCode": exit_code(results),
        },
        indent=2,
    )
