"""Command line: ``nfs-provisioner run`` (the daemon) and the operator commands."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from types import ModuleType

from nfs_provisioner import __version__
from nfs_provisioner.commands.tables import error_line
from nfs_provisioner.config import ConfigError, add_arguments, load_settings
from nfs_provisioner.daemon import run
from nfs_provisioner.kube import ApiError, ConfigurationError
from nfs_provisioner.logs import configure_logging

# What a command may stop on: a setting to fix, a cluster that cannot be reached or refuses,
# a file or address the system will not give. Each is one line on stderr and exit code 1;
# anything else is a bug, and its traceback is the report.
_STOPPING_ERRORS = (ConfigError, ConfigurationError, ApiError, OSError)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # One clear line and exit code 1, as for a bad environment variable; self.prog is
        # "nfs-provisioner <command>" for a command's own flags.
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(1)


_OPERATOR_COMMANDS = ("adopt", "doctor", "audit")


def _command(name: str) -> ModuleType:
    # Imported when used: `run` does not carry the operator commands (about 1 MiB resident).
    return importlib.import_module(f"nfs_provisioner.commands.{name}")


def build_parser(with_flags: Collection[str] = _OPERATOR_COMMANDS) -> argparse.ArgumentParser:
    """The parser; of the operator commands, those in ``with_flags`` get their own flags."""

    def add_command_arguments(name: str, command_parser: argparse.ArgumentParser) -> None:
        if name in with_flags:
            _command(name).add_arguments(command_parser)

    parser = _Parser(
        prog="nfs-provisioner",
        description="Kubernetes dynamic provisioner: each PersistentVolumeClaim gets a "
        "directory on an NFS export (one export, or several with --extra-exports).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    run = commands.add_parser(
        "run",
        help="run the provisioner (the container's entrypoint)",
        description="Serve the PersistentVolumeClaims of every StorageClass whose provisioner "
        "is PROVISIONER_NAME from directories on the NFS export mounted at the "
        "mount path. Every flag has an environment variable; flags win.",
    )
    add_arguments(run)
    adopt = commands.add_parser(
        "adopt",
        help="move Pending claims that nothing serves onto a StorageClass",
        description="Move Pending, unbound claims whose class is empty, missing or has no "
        "provisioner (or unset, on Kubernetes before 1.28) onto a StorageClass: each claim "
        "is backed up, then re-created with the new class, keeping its labels, annotations "
        "and request. Bound claims and claims being deleted are never touched.",
    )
    add_command_arguments("adopt", adopt)
    doctor = commands.add_parser(
        "doctor",
        help="check the export mount and the cluster setup",
        description="Check the mounted export (NFS version, writable, root squash, free "
        "space) and the cluster (StorageClasses, default class, Pending claims, volume "
        "owners). Exit code 0: all passed; 1: warnings only; 2: a failure. Settings are read "
        "like `run` reads them, so it works unchanged inside the provisioner's pod.",
    )
    add_command_arguments("doctor", doctor)
    audit = commands.add_parser(
        "audit",
        help="list orphaned directories, volumes without a directory, and archives",
        description="List the directories on the exports that no PersistentVolume uses, the "
        "PersistentVolumes of this provisioner whose directory is missing, and the archives "
        "with their age and retention. --prune removes the archives whose retention has "
        "passed; nothing else is ever deleted. Settings are read like `run` reads them. "
        "Exit code 0: nothing found; 2: directories without a volume or volumes without a "
        "directory; 1: an error (a setting, the API server, an archive --prune could not "
        "remove).",
    )
    add_command_arguments("audit", audit)
    return parser


def _run(arguments: argparse.Namespace, env: Mapping[str, str]) -> int:
    settings = load_settings(arguments, env)
    configure_logging(settings.serving.log_format, settings.serving.log_level)
    return run(settings)


def _dispatch(command: str, arguments: argparse.Namespace, env: Mapping[str, str]) -> int:
    main: Callable[[argparse.Namespace, Mapping[str, str]], int] = (
        _run if command == "run" else _command(command).main
    )
    return main(arguments, env)


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    # The command is the first word that is not a flag; only its flags are needed.
    named = next((word for word in words if not word.startswith("-")), None)
    parser = build_parser([named] if named in (*_OPERATOR_COMMANDS, "run") else _OPERATOR_COMMANDS)
    arguments, unknown = parser.parse_known_args(argv)
    if unknown:
        # Said by the command's own parser, so that the line names the command.
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        culprit = commands.choices.get(arguments.command, parser)
        culprit.error(f"unrecognized arguments: {' '.join(unknown)}")
    if arguments.command is None:
        parser.print_help()
        return 1
    try:
        return _dispatch(arguments.command, arguments, os.environ)
    except _STOPPING_ERRORS as error:
        print(error_line(arguments.command, error), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
