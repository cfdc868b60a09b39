"""When each claim passed each stage of provisioning: for finding where claims wait.

Opt-in (``--stage-log``); the controller holds ``None`` otherwise and pays nothing. Times are
``time.monotonic()``, which on Linux is CLOCK_MONOTONIC: one clock for every process of the
machine, so a benchmark harness can line them up with its own timestamps.

The stages of one claim:

- ``seen``: its first watch event reached the controller (decoded, handed to the handler);
- ``dequeued``: the last time a worker took its key from the queue before the PV was saved;
- ``made``: the backend returned, its directory made and the PV body built;
- ``saved``: the API server acknowledged the PV's create.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

STAGES = ("seen", "dequeued", "made", "saved")
_SEEN, _DEQUEUED, _MADE, _SAVED = range(len(STAGES))


class StageLog:
    def __init__(self) -> None:
        self._claims: dict[str, list[float | None]] = {}
        self._lock = threading.Lock()

    def seen(self, key: str) -> None:
        now = time.monotonic()
        with self._lock:
            if key not in self._claims:
                self._claims[key] = [now, None, None, None]

    def dequeued(self, key: str) -> None:
        self._mark(key, _DEQUEUED)

    def made(self, key: str) -> None:
        self._mark(key, _MADE)

    def saved(self, key: str) -> None:
        self._mark(key, _SAVED)

    def _mark(self, key: str, stage: int) -> None:
        now = time.monotonic()
        with self._lock:
            times = self._claims.get(key)
            # Work on a claim whose PV is saved (a re-queued key finding the PV) changes nothing.
            if times is not None and times[_SAVED] is None:
                times[stage] = now

    def snapshot(self) -> dict[str, list[float | None]]:
        with self._lock:
            return {key: list(times) for key, times in self._claims.items()}

    def write(self, path: Path) -> None:
        """The stage times as JSON, written whole (a reader never sees half a file)."""
        document = {"clock": "CLOCK_MONOTONIC", "stages": STAGES, "claims": self.snapshot()}
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(json.dumps(document))
        os.replace(partial, path)
