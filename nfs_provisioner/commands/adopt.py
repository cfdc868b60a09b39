"""``nfs-provisioner adopt``: move Pending claims that nothing will serve onto a StorageClass.

A claim's class cannot be changed once set, so adoption re-creates such a claim: back it up,
delete exactly the version that was read, wait until it is gone, create it again with the
new class. A claim without a class can get one in place on Kubernetes >= 1.28, where the PV
binder also gives it the default class by itself; adoption then leaves it to the cluster.
Every step re-reads the claim and leaves alone anything that changed since the plan. If the
run stops between delete and create, ``adopt --restore DIR`` re-creates the claim from its
backup.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from nfs_provisioner import __version__, config
from nfs_provisioner.commands import tables
from nfs_provisioner.commands.backups import Backup, BackupError, read_backups, write_backup
from nfs_provisioner.commands.claims import (
    NO_PROVISIONER,
    Action,
    ClusterView,
    Decision,
    assigns_default_retroactively,
    claim_manifest,
    class_label,
    decide,
    default_class_names,
    is_bound,
    is_waiting,
    users_of,
)
from nfs_provisioner.commands.queries import (
    STORAGE_CLASSES,
    claim_path,
    list_objects,
    namespace_exists,
    namespaced,
    server_version,
)
from nfs_provisioner.config import ConfigError
from nfs_provisioner.kube import ApiClient, ApiError, ConfigurationError, JsonObject, connect
from nfs_provisioner.objects import WAIT_FOR_FIRST_CONSUMER, spec_of, status_of
from nfs_provisioner.values import parse_duration

_POLL_INTERVAL = 0.5
_PROGRESS_INTERVAL = 10.0
# Transient answers worth retrying for the create that follows a delete.
_RETRY_STATUSES = frozenset({0, 429, 500, 502, 503, 504})
_CREATE_ATTEMPTS = 4
_ATTEMPTS_PER_CLAIM = 3
_ACCESS_MODES = {
    "ReadWriteOnce": "RWO",
    "ReadOnlyMany": "ROX",
    "ReadWriteMany": "RWX",
    "ReadWriteOncePod": "RWOP",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage-class",
        metavar="NAME",
        help="class to move the claims to (default: the cluster's default class)",
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", metavar="NS", help="only claims in this namespace")
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="claims in every namespace"
    )
    parser.add_argument(
        "-l",
        "--selector",
        metavar="SELECTOR",
        help="only claims whose labels match, in kubectl syntax (e.g. app=mysql)",
    )
    parser.add_argument(
        "--from-class",
        metavar="NAME",
        action="append",
        default=[],
        help="also move Pending claims of this existing class (repeatable)",
    )
    parser.add_argument("--dry-run", action="store_true", help="show the plan and change nothing")
    parser.add_argument(
        "--backup-dir",
        metavar="DIR",
        type=Path,
        help="where each claim's manifest is saved before it is changed "
        "(default: ./adopt-backup-<UTC time>)",
    )
    parser.add_argument(
        "--restore",
        metavar="DIR",
        type=Path,
        help="re-create the claims backed up in DIR that no longer exist, then exit",
    )
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="wait until the moved claims are Bound (default: wait)",
    )
    parser.add_argument(
        "--timeout",
        metavar="DURATION",
        default="5m",
        help="longest wait for a deleted claim to go and for the claims to be Bound (default: 5m)",
    )
    config.add_arguments(parser, ["kubeconfig"])


@dataclass(frozen=True)
class Options:
    kubeconfig: str | None
    storage_class: str | None
    namespace: str | None
    selector: str | None
    from_classes: tuple[str, ...]
    dry_run: bool
    backup_dir: Path | None
    restore: Path | None
    yes: bool
    wait: bool
    timeout: float


def load_options(arguments: argparse.Namespace, env: Mapping[str, str]) -> Options:
    try:
        timeout = parse_duration(arguments.timeout)
    except ValueError as error:
        raise ConfigError(f"invalid --timeout value {arguments.timeout!r}: {error}") from None
    if arguments.restore is not None:
        extra = [
            flag
            for flag, value in (
                ("--storage-class", arguments.storage_class),
                ("--namespace", arguments.namespace),
                ("--all-namespaces", arguments.all_namespaces),
                ("--selector", arguments.selector),
                ("--from-class", arguments.from_class),
                ("--backup-dir", arguments.backup_dir),
            )
            if value
        ]
        if extra:
            raise ConfigError(
                f"--restore re-creates exactly what the backups hold; drop {', '.join(extra)}"
            )
    elif arguments.namespace is None and not arguments.all_namespaces:
        raise ConfigError("choose the claims: --namespace NS or --all-namespaces")
    return Options(
        kubeconfig=config.resolve(arguments, env, ["kubeconfig"])["kubeconfig"],
        storage_class=arguments.storage_class,
        namespace=arguments.namespace,
        selector=arguments.selector,
        from_classes=tuple(arguments.from_class),
        dry_run=arguments.dry_run,
        backup_dir=arguments.backup_dir,
        restore=arguments.restore,
        yes=arguments.yes,
        wait=arguments.wait,
        timeout=timeout,
    )


class _InterruptedError(Exception):
    """A claim was deleted and could not be created again: stop and point at ``--restore``."""


@dataclass
class _Item:
    claim: JsonObject
    decision: Decision
    users: Sequence[Mapping[str, Any]] = ()
    result: str = ""
    failed: bool = False
    wait: bool = False
    current: JsonObject | None = None

    @property
    def namespace(self) -> str:
        return str(self.claim["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.claim["metadata"]["name"])

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def main(arguments: argparse.Namespace, env: Mapping[str, str]) -> int:
    try:
        options = load_options(arguments, env)
        api = connect(
            options.kubeconfig,
            qps=50.0,
            burst=100,
            pool_size=4,
            user_agent=f"nfs-provisioner-adopt/{__version__}",
        )
    except (ConfigError, ConfigurationError) as error:
        print(tables.error_line("adopt", error), file=sys.stderr)
        return 1
    try:
        if options.restore is not None:
            return restore(api, options, options.restore)
        return adopt(api, options, sys.stdin)
    except (ApiError, BackupError, ConfigError) as error:
        print(tables.error_line("adopt", error), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _error(message: str) -> None:
    print(f"nfs-provisioner adopt: error: {tables.printable_lines(message)}", file=sys.stderr)


def _say(message: str = "") -> None:
    # Tables come escaped cell by cell already; this covers values put into sentences.
    print(tables.printable_lines(message), flush=True)


def confirm(question: str, stdin: TextIO, out: TextIO) -> bool | None:
    """The answer from a terminal; None when there is no terminal to ask on."""
    if not stdin.isatty():
        return None
    out.write(f"{tables.printable_lines(question)} [y/N] ")
    out.flush()
    return stdin.readline().strip().lower() in ("y", "yes")


def target_class(view: ClusterView, requested: str | None, from_classes: Collection[str]) -> str:
    if requested is None:
        defaults = default_class_names(view.classes)
        if not defaults:
            raise ConfigError(
                "the cluster has no default StorageClass: name one with --storage-class"
            )
        if len(defaults) > 1:
            raise ConfigError(
                f"the cluster has {len(defaults)} default StorageClasses "
                f"({', '.join(defaults)}): name one with --storage-class"
            )
        requested = defaults[0]
    storage_class = view.classes.get(requested)
    if storage_class is None:
        raise ConfigError(f"StorageClass {requested} does not exist")
    if storage_class.get("provisioner") == NO_PROVISIONER:
        raise ConfigError(
            f"StorageClass {requested} has no provisioner ({NO_PROVISIONER}): "
            "nothing would create volumes for its claims"
        )
    if requested in from_classes:
        raise ConfigError(f"--from-class {requested} is the class the claims move to")
    return requested


def _require_named_things(
    api: ApiClient, classes: Mapping[str, JsonObject], options: Options
) -> None:
    """A namespace or --from-class that does not exist is a typo, not "nothing to do"."""
    for name in options.from_classes:
        if name not in classes:
            raise ConfigError(
                f"--from-class {name}: StorageClass {name} does not exist "
                f"(existing: {', '.join(sorted(classes)) or 'none'})"
            )
    if options.namespace is not None and not namespace_exists(api, options.namespace):
        raise ConfigError(f"--namespace {options.namespace}: namespace does not exist")


def adopt(api: ApiClient, options: Options, stdin: TextIO) -> int:
    classes = {str(c["metadata"]["name"]): c for c in list_objects(api, STORAGE_CLASSES)}
    view = ClusterView(classes, assigns_default_retroactively(server_version(api)))
    target = target_class(view, options.storage_class, options.from_classes)
    _require_named_things(api, classes, options)
    claims = list_objects(
        api,
        namespaced("persistentvolumeclaims", options.namespace),
        label_selector=options.selector,
    )
    # Only namespaces with a waiting claim: listing every pod of a big cluster is costly.
    namespaces = sorted({_claim_key(claim)[0] for claim in claims if is_waiting(claim)})
    pods = [pod for ns in namespaces for pod in list_objects(api, namespaced("pods", ns))]
    items = []
    for claim in sorted(claims, key=_claim_key):
        users = users_of(claim, pods)
        decision = decide(claim, view, target, options.from_classes, users)
        if decision is not None:
            items.append(_Item(claim, decision, users))
    _say(f"StorageClass {target} (provisioner {classes[target].get('provisioner')})")
    if not items:
        _say("No Pending claim needs adoption.")
        return 0
    _say(_plan_table(items))
    changes = [i for i in items if i.decision.action in (Action.RECREATE, Action.SET_CLASS)]
    if options.dry_run:
        _say("\nDry run: nothing was changed.")
        return 0
    if changes and not options.yes:
        answer = confirm(f"\nChange {len(changes)} claim(s) as planned above?", stdin, sys.stdout)
        if answer is None:
            _error("no terminal to ask for confirmation on: pass --yes to change the claims")
            return 1
        if not answer:
            _say("Nothing was changed.")
            return 1
    backup_dir = options.backup_dir or Path(
        "adopt-backup-" + datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    )
    if changes:
        try:
            backup_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise BackupError(f"cannot create backup directory {backup_dir}: {error}") from error
        _say(f"\nBackups: {backup_dir.resolve()}")
    interrupted = _apply(api, view, options, target, changes, backup_dir)
    for item in items:
        if item.decision.action is Action.CLUSTER:
            item.result = f"class {item.decision.new_class} assigned by the cluster"
            item.wait = item.decision.new_class == target
        elif item.decision.action is Action.SKIP:
            item.result = f"skipped: {item.decision.reason}"
    if options.wait and _binds_at_once(classes[target], target):
        _wait_bound(api, items, options.timeout)
    else:
        _refresh(api, items)
    _say("\n" + _result_table(items))
    if interrupted:
        _error(
            f"{interrupted}\nFix the cause, then re-create what is missing from the backups: "
            f"nfs-provisioner adopt --restore {backup_dir.resolve()}"
        )
    return 1 if interrupted or any(item.failed for item in items) else 0


def _apply(
    api: ApiClient,
    view: ClusterView,
    options: Options,
    target: str,
    changes: Sequence[_Item],
    backup_dir: Path,
) -> str | None:
    """Carry out the changes in order; the reason when one left a claim deleted."""
    for index, item in enumerate(changes, 1):
        try:
            if item.decision.action is Action.SET_CLASS:
                _set_class(api, view, options, target, item, backup_dir)
            else:
                _recreate(api, view, options, target, item, backup_dir)
        except _InterruptedError as error:
            item.failed = True
            item.result = f"failed: {error}"
            for rest in changes[index:]:
                rest.result = "not started: stopped after an error"
            _say(f"[{index}/{len(changes)}] {item.key}: {item.result}")
            return f"{item.key} was deleted and not created again: {error}"
        except KeyboardInterrupt:
            _error(
                f"interrupted while moving {item.key}; if it is missing, re-create it with: "
                f"nfs-provisioner adopt --restore {backup_dir.resolve()}"
            )
            raise
        _say(f"[{index}/{len(changes)}] {item.key}: {item.result}")
    return None


def _recheck(
    api: ApiClient, view: ClusterView, options: Options, target: str, item: _Item
) -> JsonObject | None:
    """The claim as it is now if adoption would still do the same with it, else None."""
    claim = _get_claim(api, item.namespace, item.name)
    if claim is None:
        item.result = "gone before adoption touched it"
        return None
    decision = decide(claim, view, target, options.from_classes, item.users)
    if decision is None or decision.action is not item.decision.action:
        now = decision.action.value if decision else str(status_of(claim).get("phase"))
        item.result = f"left alone: it changed since the plan (now: {now})"
        return None
    return claim


def _set_class(
    api: ApiClient,
    view: ClusterView,
    options: Options,
    target: str,
    item: _Item,
    backup_dir: Path,
) -> None:
    for _attempt in range(_ATTEMPTS_PER_CLAIM):
        claim = _recheck(api, view, options, target, item)
        if claim is None:
            return
        backup = write_backup(backup_dir, claim, target)
        try:
            # The resourceVersion makes this lose, not overwrite, a race with the PV binder.
            api.merge_patch(
                claim_path(item.namespace, item.name),
                {
                    "metadata": {"resourceVersion": claim["metadata"]["resourceVersion"]},
                    "spec": {"storageClassName": target},
                },
            )
        except ApiError as error:
            # A backup is the record of a change made; none was.
            backup.unlink(missing_ok=True)
            if error.is_conflict:
                continue
            item.failed = True
            item.result = f"class not set: {error}"
            return
        item.result = f"class set to {target}"
        item.wait = True
        return
    item.failed = True
    item.result = "left alone: it kept changing"


def _recreate(
    api: ApiClient,
    view: ClusterView,
    options: Options,
    target: str,
    item: _Item,
    backup_dir: Path,
) -> None:
    for _attempt in range(_ATTEMPTS_PER_CLAIM):
        claim = _recheck(api, view, options, target, item)
        if claim is None:
            return
        manifest = claim_manifest(claim, target)
        refusal = _refusal_of(api, manifest)
        if refusal is not None:
            item.failed = True
            item.result = f"left alone: the new claim would be refused: {refusal}"
            return
        backup = write_backup(backup_dir, claim, target)
        metadata = claim["metadata"]
        try:
            api.delete(
                claim_path(item.namespace, item.name),
                preconditions={
                    "uid": metadata["uid"],
                    "resourceVersion": metadata["resourceVersion"],
                },
            )
        except ApiError as error:
            # Nothing was deleted, and a later --restore must not bring back a claim that
            # someone else deleted meanwhile.
            backup.unlink(missing_ok=True)
            if error.is_conflict:
                continue
            if error.is_not_found:
                item.result = "gone before adoption touched it"
                return
            item.failed = True
            item.result = f"left alone: delete failed: {error}"
            return
        break
    else:
        item.failed = True
        item.result = "left alone: it kept changing"
        return
    replacement = _wait_gone(api, item.namespace, item.name, metadata["uid"], options.timeout)
    if replacement is not None:
        item.result = "deleted, then re-created by someone else"
        item.wait = True
        return
    _create(api, manifest)
    item.result = f"re-created with class {target}"
    item.wait = True


def _refusal_of(api: ApiClient, manifest: JsonObject) -> str | None:
    """Why the API server would refuse to create ``manifest``, asked before deleting anything.

    A server-side dry run runs authorization, validation and admission (quota included) first
    and only then finds the old claim still there, so AlreadyExists means "would work".
    """
    namespace = manifest["metadata"]["namespace"]
    try:
        api.request(
            "POST",
            namespaced("persistentvolumeclaims", namespace),
            params={"dryRun": "All"},
            body=manifest,
        )
    except ApiError as error:
        return None if error.is_already_exists else str(error)
    return None


def _wait_gone(
    api: ApiClient, namespace: str, name: str, uid: str, timeout: float
) -> JsonObject | None:
    """Wait until the deleted claim is gone; a claim with another uid is returned instead."""
    deadline = time.monotonic() + timeout
    while True:
        claim = _get_claim(api, namespace, name)
        if claim is None:
            return None
        if claim["metadata"].get("uid") != uid:
            return claim
        if time.monotonic() > deadline:
            finalizers = ", ".join(claim["metadata"].get("finalizers") or []) or "none"
            raise _InterruptedError(
                f"still being deleted after {timeout:g}s (finalizers: {finalizers})"
            )
        time.sleep(_POLL_INTERVAL / 2)


def _create(api: ApiClient, manifest: JsonObject) -> None:
    namespace = manifest["metadata"]["namespace"]
    for attempt in range(_CREATE_ATTEMPTS):
        try:
            api.create(namespaced("persistentvolumeclaims", namespace), manifest)
            return
        except ApiError as error:
            if error.is_already_exists:
                return
            if error.status not in _RETRY_STATUSES or attempt == _CREATE_ATTEMPTS - 1:
                raise _InterruptedError(f"create failed: {error}") from error
            time.sleep(2.0**attempt)


def _binds_at_once(storage_class: JsonObject, name: str) -> bool:
    if storage_class.get("volumeBindingMode") != WAIT_FOR_FIRST_CONSUMER:
        return True
    _say(
        f"\nStorageClass {name} binds a claim when a pod using it is scheduled "
        f"({WAIT_FOR_FIRST_CONSUMER}): not waiting for Bound."
    )
    return False


def _wait_bound(api: ApiClient, items: Sequence[_Item], timeout: float) -> None:
    start = time.monotonic()
    last_report = start
    waiting = [item for item in items if item.wait]
    if waiting:
        _say(f"\nWaiting up to {timeout:g}s for {len(waiting)} claim(s) to be Bound...")
    _refresh(api, items)
    while True:
        waiting = [i for i in waiting if not (i.current is not None and is_bound(i.current))]
        now = time.monotonic()
        if not waiting or now - start > timeout:
            break
        if now - last_report >= _PROGRESS_INTERVAL:
            last_report = now
            names = ", ".join(item.key for item in waiting[:5])
            more = f" and {len(waiting) - 5} more" if len(waiting) > 5 else ""
            _say(f"  {now - start:.0f}s: still Pending: {names}{more}")
        time.sleep(_POLL_INTERVAL)
        _refresh(api, waiting)
    for item in waiting:
        item.failed = True
        item.result += f"; not Bound after {timeout:g}s"


def _refresh(api: ApiClient, items: Sequence[_Item]) -> None:
    for item in items:
        item.current = _get_claim(api, item.namespace, item.name)


def restore(api: ApiClient, options: Options, directory: Path) -> int:
    backups = read_backups(directory)
    if not backups:
        _error(f"no backups (*.yaml) in {directory}")
        return 1
    classes = {str(c["metadata"]["name"]): c for c in list_objects(api, STORAGE_CLASSES)}
    plan: list[tuple[Backup, JsonObject | None]] = [
        (backup, _get_claim(api, backup.namespace, backup.name)) for backup in backups
    ]
    rows = []
    for backup, existing in plan:
        spec = backup.claim["spec"]
        rows.append(
            (
                backup.namespace,
                backup.name,
                str(((spec.get("resources") or {}).get("requests") or {}).get("storage", "")),
                backup.target_class,
                _restore_action(backup, existing),
                backup.path.name,
            )
        )
    _say(tables.render(("NAMESPACE", "CLAIM", "SIZE", "CLASS", "ACTION", "BACKUP"), rows))
    if options.dry_run:
        _say("\nDry run: nothing was changed.")
        return 0
    items = []
    to_create = [(b, e) for b, e in plan if e is None or _is_original_being_deleted(b, e)]
    for index, (backup, existing) in enumerate(to_create, 1):
        item = _Item(backup.claim, Decision(Action.RECREATE, "restore", backup.target_class))
        items.append(item)
        try:
            if existing is not None:
                replacement = _wait_gone(
                    api, backup.namespace, backup.name, existing["metadata"]["uid"], options.timeout
                )
                if replacement is not None:
                    item.result = "exists: left alone"
                    _say(f"[{index}/{len(to_create)}] {item.key}: {item.result}")
                    continue
            _create(api, claim_manifest(backup.claim, backup.target_class))
        except _InterruptedError as error:
            item.failed = True
            item.result = f"failed: {error}"
        else:
            item.result = f"re-created with class {backup.target_class}"
            target = classes.get(backup.target_class)
            item.wait = target is not None and (
                target.get("volumeBindingMode") != WAIT_FOR_FIRST_CONSUMER
            )
        _say(f"[{index}/{len(to_create)}] {item.key}: {item.result}")
    if not items:
        _say("\nEvery backed-up claim exists: nothing to restore.")
        return 0
    if options.wait:
        _wait_bound(api, items, options.timeout)
    else:
        _refresh(api, items)
    _say("\n" + _result_table(items))
    return 1 if any(item.failed for item in items) else 0


def _is_original_being_deleted(backup: Backup, existing: JsonObject) -> bool:
    metadata = existing["metadata"]
    return bool(metadata.get("deletionTimestamp")) and metadata.get("uid") == (
        backup.claim["metadata"].get("uid")
    )


def _restore_action(backup: Backup, existing: JsonObject | None) -> str:
    if existing is None:
        return "re-create"
    if _is_original_being_deleted(backup, existing):
        return "re-create once its deletion ends"
    return "exists: leave alone"


def _get_claim(api: ApiClient, namespace: str, name: str) -> JsonObject | None:
    try:
        return api.get(claim_path(namespace, name))
    except ApiError as error:
        if error.is_not_found:
            return None
        raise


def _claim_key(claim: JsonObject) -> tuple[str, str]:
    metadata = claim["metadata"]
    return str(metadata["namespace"]), str(metadata["name"])


def _plan_table(items: Sequence[_Item]) -> str:
    rows = []
    for item in items:
        spec = item.claim.get("spec") or {}
        size = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "")
        modes = ",".join(_ACCESS_MODES.get(m, m) for m in spec.get("accessModes") or [])
        current = class_label(item.claim)
        new = item.decision.new_class
        action = item.decision.action
        users = ", ".join(sorted(str(p["metadata"]["name"]) for p in item.users)) or "-"
        rows.append(
            (
                item.namespace,
                item.name,
                str(size),
                modes,
                current if action is Action.SKIP else f"{current} -> {new}",
                users,
                action.value,
                item.decision.reason,
            )
        )
    headers = ("NAMESPACE", "CLAIM", "SIZE", "ACCESS MODES", "CLASS", "USED BY", "ACTION", "WHY")
    return tables.render(headers, rows)


def _result_table(items: Sequence[_Item]) -> str:
    rows = []
    for item in items:
        current = item.current
        if current is None:
            status, volume, storage_class = "missing", "-", "-"
        else:
            status = str(status_of(current).get("phase", ""))
            volume = str(spec_of(current).get("volumeName") or "-")
            storage_class = class_label(current)
        rows.append((item.namespace, item.name, storage_class, status, volume, item.result))
    return tables.render(("NAMESPACE", "CLAIM", "CLASS", "STATUS", "VOLUME", "RESULT"), rows)
