"""Client-side request throttling: a token bucket like client-go's QPS/burst limiter."""

from __future__ import annotations

import threading
import time


class TokenBucket:
    """``qps`` tokens per second, at most ``burst`` saved up; qps <= 0 disables throttling."""

    def __init__(self, qps: float, burst: int) -> None:
        self.qps = qps
        self.burst = max(burst, 1)
        self._tokens = float(self.burst)
        self._updated = time.monotonic()
        self._lock = threading.Lock()
        self.throttled_seconds = 0.0

    def acquire(self) -> None:
        if self.qps <= 0:
            return
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.qps)
            self._updated = now
            self._tokens -= 1
            wait = -self._tokens / self.qps if self._tokens < 0 else 0.0
            self.throttled_seconds += wait
        # Sleeping outside the lock: the debt is already booked, so waiters queue up fairly.
        if wait > 0:
            time.sleep(wait)
