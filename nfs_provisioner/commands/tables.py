"""Plain-text tables like ``kubectl get`` prints: upper-case headers, columns two spaces apart.

Also the one guard every text output of the operator commands goes through: values from the
cluster or the export (names, paths, marker fields, messages) reach a terminal only as
printable text, never as escape sequences, carriage returns or bidirectional overrides.
"""

from __future__ import annotations

import argparse
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Final

# Control characters (ESC, CR, NUL, DEL, C1), format characters (bidi overrides and isolates,
# zero-width characters), line and paragraph separators, lone surrogates.
_ESCAPED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def printable(text: str) -> str:
    """text with every character a terminal would act on, or that would hide or reorder what
    follows it, shown as an escape: \\x1b, \\x0d, \\u202e."""
    if text.isprintable():
        return text
    return "".join(
        _escape(char) if unicodedata.category(char) in _ESCAPED_CATEGORIES else char
        for char in text
    )


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable_lines(text: str) -> str:
    """printable() for a text whose line breaks are meant: each line is escaped on its own."""
    return "\n".join(printable(line) for line in text.split("\n"))


def error_line(command: str | None, message: object) -> str:
    """The one line every command prints for an error it stops on:
    ``nfs-provisioner <command>: error: <message>``, line breaks folded, control characters
    escaped, so a log collector or a terminal gets exactly one line."""
    prog = f"nfs-provisioner {command}" if command else "nfs-provisioner"
    text = " ".join(str(message).split()) or type(message).__name__
    return f"{prog}: error: {printable(text)}"


def render(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = [
        [printable(str(cell)) for cell in headers],
        *([printable(str(cell)) for cell in row] for row in rows),
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def add_output_argument(parser: argparse.ArgumentParser) -> None:
    """-o/--output of the commands that print a report."""
    parser.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help="text for people, json for machines (default: text)",
    )
