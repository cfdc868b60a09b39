"""A deduplicating work queue with delayed adds and per-item exponential backoff.

Same contract as client-go's rate-limited queue: a key is handed to at most one worker at a
time; a key added while it is being processed is queued again once that worker is done; a
key added several times while waiting is processed once.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque


class ItemBackoff:
    """Delay for the n-th consecutive failure of an item: base * 2**n, capped."""

    def __init__(self, base: float, cap: float) -> None:
        self.base = base
        self.cap = cap
        self._failures: dict[str, int] = {}
        self._lock = threading.Lock()

    def next_delay(self, key: str) -> float:
        with self._lock:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        return min(self.base * 2.0 ** min(failures, 62), self.cap)

    def failures(self, key: str) -> int:
        with self._lock:
            return self._failures.get(key, 0)

    def forget(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def at_cap(self) -> int:
        """How many items currently wait the maximum delay."""
        with self._lock:
            return sum(
                1 for n in self._failures.values() if self.base * 2 ** min(n, 62) >= self.cap
            )


class WorkQueue:
    def __init__(self, name: str, backoff: ItemBackoff) -> None:
        self.name = name
        self.backoff = backoff
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._delayed: list[tuple[float, int, str]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._shutdown = False

    def add(self, key: str) -> None:
        with self._cond:
            if self._shutdown or key in self._dirty:
                return
            self._dirty.add(key)
            if key not in self._processing:
                self._queue.append(key)
                self._cond.notify()

    def add_after(self, key: str, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            if self._shutdown:
                return
            heapq.heappush(self._delayed, (time.monotonic() + delay, next(self._counter), key))
            self._cond.notify()

    def add_rate_limited(self, key: str) -> float:
        delay = self.backoff.next_delay(key)
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        self.backoff.forget(key)

    def get(self) -> str | None:
        """Block until a key is ready; None once the queue is shut down."""
        with self._cond:
            while True:
                self._promote_due()
                if self._shutdown:
                    return None
                if self._queue:
                    key = self._queue.popleft()
                    self._dirty.discard(key)
                    self._processing.add(key)
                    return key
                timeout = self._delayed[0][0] - time.monotonic() if self._delayed else None
                self._cond.wait(timeout)

    def _promote_due(self) -> None:
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, key = heapq.heappop(self._delayed)
            if key not in self._dirty:
                self._dirty.add(key)
                if key not in self._processing:
                    self._queue.append(key)

    def done(self, key: str) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.append(key)
                self._cond.notify()

    def shutdown(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    def depth(self) -> int:
        with self._cond:
            return len(self._queue)

    def waiting(self) -> int:
        with self._cond:
            return len(self._delayed)
