"""Values from the cluster or the export reach the terminal as printable text, never as controls."""

from __future__ import annotations

import datetime
import io
import unicodedata
from pathlib import PurePosixPath

import pytest

from nfs_provisioner.commands import adopt, audit, doctor
from nfs_provisioner.commands.checks import CheckResult, Status
from nfs_provisioner.commands.tables import printable, printable_lines, render
from nfs_provisioner.nfs import Export
from nfs_provisioner.nfs.inventory import Archive, OrphanDirectory, VolumeWithoutDirectory
from nfs_provisioner.nfs.retention import ArchiveMarker
from nfs_provisioner.storage import ExpiredStorage

# Clear the screen and home the cursor; a title change (OSC, ended by BEL); red text; a carriage
# return that lets the rest overwrite the line; NUL, DEL and the 8-bit CSI; a right-to-left
# override that shows "txt.exe" as "exe.txt"; isolates, zero-width space, line separator.
HOSTILE = (
    "a\x1b[2J\x1b[H\x1b]0;owned\x07\x1b[31mred\rFAKE\x00\x7f\x9b1m"
    "\u202etxt.exe\u2066x\u2069\u200b\u2028end"
)
ESCAPED = (
    "a\\x1b[2J\\x1b[H\\x1b]0;owned\\x07\\x1b[31mred\\x0dFAKE\\x00\\x7f\\x9b1m"
    "\\u202etxt.exe\\u2066x\\u2069\\u200b\\u2028end"
)
NOW = datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC)


def assert_terminal_safe(text: str) -> None:
    """Nothing a terminal acts on but the line breaks the output itself is made of."""
    unsafe = [
        f"U+{ord(char):04X}"
        for char in text
        if char != "\n" and unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Cs")
    ]
    assert unsafe == [], f"unescaped {unsafe} in {text!r}"


def test_printable_escapes_controls_and_bidi_overrides() -> None:
    assert printable(HOSTILE) == ESCAPED
    assert printable("line\nbreak\ttab") == "line\\x0abreak\\x09tab"
    assert printable("\U000e0041 tag") == "\\U000e0041 tag"
    assert printable("\ud800") == "\\ud800"


@pytest.mark.parametrize(
    "text", ["", "plain-name_1.2", "café 日本語 ünïcode", "back\\slash", "spaces  and\u00a0nbsp"]
)
def test_printable_leaves_ordinary_text_alone(text: str) -> None:
    assert printable(text) == text


def test_printable_lines_keeps_only_the_line_breaks_of_the_text_itself() -> None:
    assert printable_lines(f"first\nsecond {HOSTILE}") == f"first\nsecond {ESCAPED}"
    assert printable_lines(printable_lines(HOSTILE)) == ESCAPED


def test_table_cells_are_escaped_and_columns_stay_aligned() -> None:
    text = render(("NAME", "STATUS"), [(HOSTILE, "ok"), ("short", "ok\r\x1b[1A")])
    assert_terminal_safe(text)
    lines = text.splitlines()
    assert len(lines) == 3
    assert lines[1] == f"{ESCAPED}  ok"
    assert lines[2] == "short" + " " * (len(ESCAPED) - len("short")) + "  ok\\x0d\\x1b[1A"


def test_doctor_text_escapes_names_messages_and_fixes() -> None:
    results = [
        CheckResult("mount", Status.PASS, f"mounted {HOSTILE}"),
        CheckResult("pending-claims", Status.WARN, f"claim {HOSTILE} pending", f"fix {HOSTILE}"),
    ]
    text = doctor.render_text(results)
    assert_terminal_safe(text)
    assert f"mounted {ESCAPED}" in text
    assert f"fix: fix {ESCAPED}" in text
    assert len(text.splitlines()) == 5


def test_audit_text_escapes_directories_archives_markers_and_errors() -> None:
    export = Export.of("nfs.example", "/srv", "/persistentvolumes")
    marker = ArchiveMarker(
        archived_at=NOW - datetime.timedelta(days=1),
        retention=3600.0,
        storage_class=HOSTILE,
        volume=HOSTILE,
    )
    text = audit.render_text(
        [OrphanDirectory(export, PurePosixPath(HOSTILE) / "child")],
        [VolumeWithoutDirectory("pv-1", HOSTILE, HOSTILE, HOSTILE)],
        [Archive(export, f"archived-{HOSTILE}", marker), Archive(export, HOSTILE, None)],
        [
            ExpiredStorage(f"{export}/archived-{HOSTILE}", 7200.0),
            ExpiredStorage(f"{export}/{HOSTILE}", 0.0, error=f"cannot remove {HOSTILE}"),
        ],
        NOW,
        f"example.com/nfs{HOSTILE}",
    )
    assert_terminal_safe(text)
    assert f"{ESCAPED}/child" in text
    assert f"archived-{ESCAPED}" in text
    assert f"cannot remove {ESCAPED}" in text
    assert f"example.com/nfs{ESCAPED} without a directory" in text


def test_adopt_output_and_prompt_are_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    adopt._say(f"StorageClass {HOSTILE}\nsecond line")
    adopt._error(f"claim {HOSTILE} failed")
    captured = capsys.readouterr()
    assert captured.out == f"StorageClass {ESCAPED}\nsecond line\n"
    assert captured.err == f"nfs-provisioner adopt: error: claim {ESCAPED} failed\n"

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = io.StringIO()
    assert adopt.confirm(f"Change {HOSTILE}?", Terminal("n\n"), out) is False
    assert out.getvalue() == f"Change {ESCAPED}? [y/N] "
