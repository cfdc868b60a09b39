"""Command line: ``nfs-provisioner run`` (the daemon) and the operator commands."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from nfs_provisioner import __version__
from nfs_provisioner.config import ConfigError, add_arguments, load_settings
from nfs_provisioner.daemon import run
from nfs_provisioner.logs import configure_logging


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # One clear line and exit code 1, as for a bad environment variable.
        print(f"nfs-provisioner: error: {message}", file=sys.stderr)
        raise SystemExit(1)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nfs-provisioner", description="Kubernetes dynamic provisioner for one NFS export."
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    if arguments.command is None:
        parser.print_help()
        return 1
    if arguments.command == "run":
        try:
            settings = load_settings(arguments, os.environ)
            configure_logging(settings.log_format, settings.log_level)
            return run(settings)
        except ConfigError as error:
            print(f"nfs-provisioner: error: {error}", file=sys.stderr)
            return 1
    return 1
