"""Checks and message formatting shared by everything that handles volume paths."""

import unicodedata
from collections.abc import Sequence
from typing import Final

MAX_NAME_BYTES: Final = 255
MAX_PATH_BYTES: Final = 4095

# Event messages are cut to 1024 characters by the API machinery, so a hostile 4 KiB value must not
# crowd out the explanation that follows it.
_MAX_QUOTED_CHARS: Final = 200


def quote(text: str) -> str:
    """Double-quote text for a message, escaping what would corrupt or hide inside an event."""
    escaped: list[str] = []
    for char in text[:_MAX_QUOTED_CHARS]:
        if char in '"\\':
            escaped.append("\\" + char)
        elif unicodedata.category(char) in ("Cc", "Cs"):
            escaped.append(f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")
        else:
            escaped.append(char)
    hidden = len(text) - _MAX_QUOTED_CHARS
    suffix = f"...({hidden} more characters)" if hidden > 0 else ""
    return '"' + "".join(escaped) + '"' + suffix


def split_components(path: str) -> list[str]:
    """Split on "/" dropping empty and "." components, which a lexical clean removes harmlessly.

    ".." is kept so that callers reject it instead of resolving it against an unknown parent.
    """
    return [part for part in path.split("/") if part not in ("", ".")]


def unsafe_reason(components: Sequence[str]) -> str | None:
    """Why these components are not a safe directory path below the export, or None if they are.

    The reason reads as the end of a sentence "<subject> resolves to <path>, which <reason>".
    """
    for component in components:
        reason = unsafe_name_reason(component)
        if reason is not None:
            return reason
    for component in components:
        size = len(component.encode())
        if size > MAX_NAME_BYTES:
            return (
                f"has a component {quote(component)} of {size} bytes; "
                f"a directory name may be at most {MAX_NAME_BYTES} bytes"
            )
    size = len("/".join(components).encode())
    if size > MAX_PATH_BYTES:
        return f"is {size} bytes long; a volume path may be at most {MAX_PATH_BYTES} bytes"
    return None


def unsafe_name_reason(component: str) -> str | None:
    """Like unsafe_reason for one component, leaving out the length limits."""
    if component == "..":
        return 'leaves the export: ".." is not allowed in a volume path'
    for char in component:
        category = unicodedata.category(char)
        if category == "Cc":
            return (
                f"contains the control character U+{ord(char):04X}, "
                "which is not allowed in a volume path"
            )
        if category == "Cs":
            return f"is not valid UTF-8 (lone surrogate U+{ord(char):04X})"
    return None
