"""Operations in progress, and those stuck: what an NFS server outage does to the workers.

A worker that touches an export whose server stops answering blocks in the kernel (a hard
NFS mount, or FUSE) until the server answers again: no timeout or signal ends the call, and
restarting the process cannot help either. So the provisioner does not pretend otherwise: it
counts the operations in progress and their age per queue, and readiness fails while one has
run longer than ``stuck_after``, naming it, until the server is back and it returns.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

from prometheus_client import Gauge

IN_PROGRESS = Gauge(
    "nfs_provisioner_operations_in_progress",
    "Claim, volume and resize operations being worked on now, by queue.",
    ["queue"],
)
OLDEST_SECONDS = Gauge(
    "nfs_provisioner_oldest_operation_seconds",
    "Age of the oldest operation in progress, by queue (0 when none).",
    ["queue"],
)
STUCK = Gauge(
    "nfs_provisioner_stuck_operations",
    "Operations in progress for longer than the stuck-operation threshold, by queue.",
    ["queue"],
)


@dataclass(frozen=True)
class Operation:
    queue: str
    key: str
    started: float


class OperationWatch:
    def __init__(self, stuck_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stuck_after = stuck_after
        self._clock = clock
        self._lock = threading.Lock()
        self._running: dict[int, Operation] = {}
        self._tokens = itertools.count()

    @contextmanager
    def track(self, queue: str, key: str) -> Iterator[None]:
        with self._lock:
            token = next(self._tokens)
            self._running[token] = Operation(queue, key, self._clock())
        try:
            yield
        finally:
            with self._lock:
                del self._running[token]

    def _operations(self, queue: str | None = None) -> list[Operation]:
        with self._lock:
            running = list(self._running.values())
        return [op for op in running if queue is None or op.queue == queue]

    def in_progress(self, queue: str) -> int:
        return len(self._operations(queue))

    def oldest_age(self, queue: str) -> float:
        started = [op.started for op in self._operations(queue)]
        return self._clock() - min(started) if started else 0.0

    def stuck(self, queue: str | None = None) -> list[Operation]:
        now = self._clock()
        return sorted(
            (op for op in self._operations(queue) if now - op.started >= self.stuck_after),
            key=lambda op: op.started,
        )

    def problem(self) -> str | None:
        """Why the provisioner is not making progress, for readiness; None when it is."""
        stuck = self.stuck()
        if not stuck:
            return None
        oldest = stuck[0]
        return (
            f"{len(stuck)} operation(s) in progress for over {self.stuck_after:g}s, the oldest "
            f"{oldest.queue} {oldest.key} for {self._clock() - oldest.started:.0f}s: the export "
            "is not answering (NFS server down or unreachable?); they resume when it answers"
        )

    def publish(self, queues: Iterable[str]) -> None:
        """Compute the gauges of these queues from this watch whenever metrics are scraped."""
        for queue in queues:
            IN_PROGRESS.labels(queue).set_function(partial(self.in_progress, queue))
            OLDEST_SECONDS.labels(queue).set_function(partial(self.oldest_age, queue))
            STUCK.labels(queue).set_function(partial(self._stuck_count, queue))

    def _stuck_count(self, queue: str) -> int:
        return len(self.stuck(queue))
