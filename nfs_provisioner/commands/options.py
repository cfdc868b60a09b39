"""Flags of the operator commands that share a setting with ``run``: same flag, same env var.

Running a command inside the provisioner's container (``kubectl exec ... nfs-provisioner
doctor``) then needs no arguments: it reads the environment the Deployment already sets.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from nfs_provisioner.config import KNOBS, ConfigError, Knob


def _knob(field: str) -> Knob:
    return next(knob for knob in KNOBS if knob.field == field)


def add_knob_argument(parser: argparse.ArgumentParser, field: str, help_text: str) -> None:
    knob = _knob(field)
    default = f"; default: {knob.default}" if knob.default is not None else ""
    parser.add_argument(
        knob.flag,
        dest=knob.field,
        metavar=knob.metavar,
        default=None,
        help=f"{help_text} [env {knob.env}{default}]",
    )


def knob_value(arguments: argparse.Namespace, env: Mapping[str, str], field: str) -> Any:
    """The flag, else the env var, else the default of ``run``; ConfigError if malformed."""
    knob = _knob(field)
    raw = getattr(arguments, field, None)
    source = knob.flag
    if raw is None and env.get(knob.env, "") != "":
        raw, source = env[knob.env], knob.env
    if raw is None:
        return knob.default
    try:
        return knob.parse(raw)
    except ValueError as error:
        raise ConfigError(f"invalid {source} value {raw!r}: {error}") from None
