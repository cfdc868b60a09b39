"""`nfs-provisioner run --help` and the README's settings tables say the same defaults."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from nfs_provisioner.config import KNOBS

README = Path(__file__).resolve().parents[2] / "README.md"
_ROW = re.compile(r"^\| `(--[a-z-]+)` \| `([A-Z_]+)` \| ([^|]+) \|", re.MULTILINE)
_HELP_DEFAULT = re.compile(r"\[env ([A-Z_]+); default: (.*?)\]")


def _readme_defaults() -> dict[str, tuple[str, str]]:
    return {
        flag: (env, default.strip().replace("`", ""))
        for flag, env, default in _ROW.findall(README.read_text())
    }


def _help_defaults() -> dict[str, tuple[str, str]]:
    result = subprocess.run(
        [sys.executable, "-m", "nfs_provisioner", "run", "--help"],
        env={**os.environ, "COLUMNS": "1000"},
        capture_output=True,
        text=True,
        check=True,
    )
    flags = {knob.env: knob.flag for knob in KNOBS}
    text = " ".join(result.stdout.split())
    return {flags[env]: (env, default) for env, default in _HELP_DEFAULT.findall(text)}


def test_every_setting_is_in_the_readme_with_the_default_help_shows() -> None:
    readme = _readme_defaults()
    shown = _help_defaults()
    assert set(shown) == {knob.flag for knob in KNOBS}
    assert {flag: readme.get(flag) for flag in shown} == shown
