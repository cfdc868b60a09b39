"""Kubernetes events, posted off the hot path.

Events go through a bounded queue to a few sender threads, so a worker never waits for an
event write. Repeats of the same event on the same object within ten minutes bump the count
of the first one instead of creating a new object, like client-go's recorder.
"""

from __future__ import annotations

import queue
import secrets
import threading
import time
from dataclasses import dataclass

import structlog
from prometheus_client import Counter

from nfs_provisioner.kube import paths
from nfs_provisioner.kube.client import ApiClient
from nfs_provisioner.kube.errors import ApiError
from nfs_provisioner.objects import JsonObject, api_time

log = structlog.get_logger(__name__)

NORMAL = "Normal"
WARNING = "Warning"
_AGGREGATION_WINDOW = 600.0
_MAX_MESSAGE = 1024
_KEY_LOCKS = 64
_QUEUE_LIMIT = 10000
_SEND_ATTEMPTS = 4

EVENTS = Counter(
    "nfs_provisioner_events_total",
    "Kubernetes events by outcome: posted (new or aggregated), failed, or dropped because the "
    "send queue was full.",
    ["result"],
)


@dataclass(frozen=True)
class _Pending:
    involved: JsonObject
    event_type: str
    reason: str
    message: str


def _reference(obj: JsonObject) -> JsonObject:
    metadata = obj.get("metadata") or {}
    reference = {
        "kind": obj.get("kind"),
        "apiVersion": obj.get("apiVersion", "v1"),
        "name": metadata.get("name"),
        "uid": metadata.get("uid"),
        "resourceVersion": metadata.get("resourceVersion"),
    }
    if metadata.get("namespace"):
        reference["namespace"] = metadata["namespace"]
    return {k: v for k, v in reference.items() if v}


def _event_key(pending: _Pending) -> tuple[str, str, str, str]:
    """What makes two events one: the object, the type, the reason and the (cut) message."""
    reference = _reference(pending.involved)
    return (
        str(reference.get("uid", reference.get("name"))),
        pending.event_type,
        pending.reason,
        pending.message[:_MAX_MESSAGE],
    )


class EventRecorder:
    def __init__(self, api: ApiClient, *, component: str, host: str, senders: int = 4) -> None:
        self.api = api
        self.component = component
        self.host = host
        self._queue: queue.Queue[_Pending | None] = queue.Queue(maxsize=_QUEUE_LIMIT)
        self._seen: dict[tuple[str, str, str, str], tuple[str, str, int, float]] = {}
        self._seen_lock = threading.Lock()
        # Sends of one event key are serialized, so that two senders never both create it (or
        # both patch the same count); different keys go in parallel.
        self._key_locks = [threading.Lock() for _ in range(_KEY_LOCKS)]
        self._threads = [
            threading.Thread(target=self._send_loop, name=f"events-{i}", daemon=True)
            for i in range(senders)
        ]
        for thread in self._threads:
            thread.start()

    def record(self, involved: JsonObject, event_type: str, reason: str, message: str) -> None:
        try:
            self._queue.put_nowait(_Pending(involved, event_type, reason, message))
        except queue.Full:
            EVENTS.labels("dropped").inc()
            log.warning("event queue full, event dropped", reason=reason, message=message)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until queued events have been sent (best effort, for shutdown and tests)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)

    def _send_loop(self) -> None:
        while True:
            pending = self._queue.get()
            try:
                if pending is not None:
                    self._send_with_retries(pending)
            finally:
                self._queue.task_done()

    def _send_with_retries(self, pending: _Pending) -> None:
        delay = 0.5
        for attempt in range(1, _SEND_ATTEMPTS + 1):
            try:
                self._send(pending)
                EVENTS.labels("posted").inc()
                return
            except ApiError as error:
                if not error.is_transient or attempt == _SEND_ATTEMPTS:
                    EVENTS.labels("failed").inc()
                    log.warning(
                        "could not post event",
                        reason=pending.reason,
                        message=pending.message,
                        error=str(error),
                    )
                    return
            except Exception:
                EVENTS.labels("failed").inc()
                log.exception("could not post event", reason=pending.reason)
                return
            time.sleep(delay)
            delay *= 2

    def _send(self, pending: _Pending) -> None:
        key = _event_key(pending)
        with self._key_locks[hash(key) % _KEY_LOCKS]:
            self._send_serialized(pending, key)

    def _send_serialized(self, pending: _Pending, key: tuple[str, str, str, str]) -> None:
        reference = _reference(pending.involved)
        namespace = reference.get("namespace") or "default"
        message = pending.message[:_MAX_MESSAGE]
        now = time.monotonic()
        with self._seen_lock:
            previous = self._seen.get(key)
            if previous and now - previous[3] > _AGGREGATION_WINDOW:
                previous = None
        if previous is not None:
            event_namespace, name, count, _ = previous
            try:
                self.api.merge_patch(
                    paths.event(event_namespace, name),
                    {"count": count + 1, "lastTimestamp": api_time(micro=True)},
                )
                with self._seen_lock:
                    self._seen[key] = (event_namespace, name, count + 1, now)
                return
            except ApiError as error:
                if not error.is_not_found:
                    raise
        name = f"{reference.get('name', 'object')}.{secrets.token_hex(8)}"
        timestamp = api_time(micro=True)
        self.api.create(
            paths.events(namespace),
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": reference,
                "reason": pending.reason,
                "message": message,
                "type": pending.event_type,
                "source": {"component": self.component, "host": self.host},
                "reportingComponent": self.component,
                "reportingInstance": self.host,
                "firstTimestamp": timestamp,
                "lastTimestamp": timestamp,
                "count": 1,
            },
        )
        with self._seen_lock:
            if len(self._seen) > 50000:
                self._seen.clear()
            self._seen[key] = (namespace, name, 1, now)
