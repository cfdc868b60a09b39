"""Linux system calls Python's os module does not wrap, loaded from the C library if it has them."""

from __future__ import annotations

import ctypes
from typing import Any


def libc_function(name: str, argtypes: list[Any]) -> Any | None:
    """The C library's function name, returning int and setting errno; None where it is missing."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    function = getattr(libc, name, None)
    if function is None:
        return None
    function.argtypes = argtypes
    function.restype = ctypes.c_int
    return function
