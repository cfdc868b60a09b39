"""List+watch caches of one resource type, with resume, relist and periodic resync.

An informer lists the collection, then watches from the list's resourceVersion. The list is
a streaming list where the API server has them (a watch with ``sendInitialEvents=true`` that
starts with every object: no pages held whole on either side), else paged. A dropped watch
resumes from the last version it saw (bookmarks keep that fresh); a 410 Gone
(the version was compacted away) leads to a fresh list, whose differences to the cache are
delivered as adds, updates and deletes, so no change is lost across the gap.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client import Counter, Gauge

from nfs_provisioner.kube.client import ApiClient
from nfs_provisioner.kube.errors import ApiError
from nfs_provisioner.objects import JsonDict, JsonObject, metadata_of

log = structlog.get_logger(__name__)

RELISTS = Counter(
    "nfs_provisioner_informer_relists_total",
    "Full lists of a resource: the first one, and each after a watch expired (410 Gone).",
    ["kind"],
)
WATCH_FAILURES = Counter(
    "nfs_provisioner_informer_watch_failures_total",
    "Watches that broke (connection lost, server error) and were resumed.",
    ["kind"],
)
CACHED_OBJECTS = Gauge(
    "nfs_provisioner_informer_cached_objects", "Objects in the local cache.", ["kind"]
)

_WATCH_TIMEOUT_RANGE = (300, 600)
# The bookmark of a streaming list that says every existing object has been sent.
INITIAL_EVENTS_END = "k8s.io/initial-events-end"
_MAX_RETRY_DELAY = 10.0


def object_key(obj: JsonObject) -> str:
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace")
    name = str(metadata.get("name", ""))
    return f"{namespace}/{name}" if namespace else name


@dataclass
class Handlers:
    on_add: Callable[[JsonObject], None]
    on_update: Callable[[JsonObject, JsonObject], None]
    on_delete: Callable[[JsonObject], None]


class Informer:
    def __init__(
        self,
        api: ApiClient,
        path: str,
        *,
        kind: str,
        resync_period: float,
        stop: threading.Event,
        transform: Callable[[JsonObject], JsonObject] | None = None,
        streaming: bool | None = None,
    ) -> None:
        self.api = api
        self.path = path
        self.kind = kind
        # Applied to every object before it is cached or handed to handlers: the cache keeps
        # what the controller needs, not whole objects with their managedFields.
        self._transform = transform or (lambda obj: obj)
        self.resync_period = resync_period
        self._stop = stop
        self._store: dict[str, JsonObject] = {}
        self._lock = threading.Lock()
        self._handlers: list[Handlers] = []
        self.synced = threading.Event()
        self.connected = False
        self.last_error: str | None = None
        self._cached = CACHED_OBJECTS.labels(kind)
        self._resource_version = ""
        # Whether the first sync uses a streaming list: None tries it and falls back to
        # paged lists for good if the server refuses; False never tries.
        self.streaming = streaming

    def add_handlers(self, handlers: Handlers) -> None:
        self._handlers.append(handlers)

    def get(self, key: str) -> JsonObject | None:
        with self._lock:
            return self._store.get(key)

    def items(self) -> list[JsonObject]:
        with self._lock:
            return list(self._store.values())

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name=f"informer-{self.kind}", daemon=True)
        thread.start()
        if self.resync_period > 0:
            threading.Thread(
                target=self._resync_loop, name=f"resync-{self.kind}", daemon=True
            ).start()
        return thread

    def _run(self) -> None:
        delay = 0.5
        need_list = True
        while not self._stop.is_set():
            try:
                if need_list and self.streaming is not False:
                    # The stream goes on as the watch; where the server cannot stream,
                    # the next round lists instead.
                    need_list = not self._stream()
                else:
                    if need_list:
                        self._relist()
                        need_list = False
                    self._watch_once()
                delay = 0.5
            except ApiError as error:
                self.connected = False
                self.last_error = str(error)
                if error.is_gone:
                    log.info("watch expired, relisting", kind=self.kind)
                    need_list = True
                    continue
                WATCH_FAILURES.labels(self.kind).inc()
                log.warning(
                    "watch failed, retrying",
                    kind=self.kind,
                    error=str(error),
                    retry_in=round(delay, 1),
                )
                self._stop.wait(delay)
                delay = min(delay * 2, _MAX_RETRY_DELAY)
            except Exception as error:  # a bug must not silently kill the cache
                self.connected = False
                self.last_error = repr(error)
                log.exception("informer error, relisting", kind=self.kind)
                need_list = True
                self._stop.wait(delay)
                delay = min(delay * 2, _MAX_RETRY_DELAY)

    def _stream(self) -> bool:
        """Sync from a streaming list (a watch that starts with every object), then go on
        watching on the same stream. True once synced; False when the server cannot stream
        (``streaming`` is then False) or the stream ended before the initial state did.

        The list arrives one object at a time instead of in pages of 500 whole objects, so
        neither the API server nor we hold a page of them in memory.
        """
        fresh: dict[str, JsonObject] = {}
        synced = False
        timeout = random.randint(*_WATCH_TIMEOUT_RANGE)
        try:
            events = self.api.watch(
                self.path,
                resource_version="",
                timeout_seconds=timeout,
                send_initial_events=True,
            )
            for event in events:
                if self._stop.is_set():
                    return synced
                if synced:
                    self._apply(event)
                    continue
                kind = event.get("type")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    raise _event_error(obj)
                if kind == "ADDED":
                    compact = self._transform(obj)
                    fresh[object_key(compact)] = compact
                elif kind == "BOOKMARK" and _ends_initial_events(obj):
                    self._install(fresh, str(metadata_of(obj).get("resourceVersion", "")))
                    fresh = {}
                    synced = True
                    self.streaming = True
        except ApiError as error:
            # 400/422: an API server without streaming lists (WatchList off, or too old).
            if not synced and error.status in (400, 422):
                log.info("no streaming list, listing in pages", kind=self.kind)
                self.streaming = False
                return False
            raise
        if not synced and self.streaming is None:
            # The stream ended without the end-of-list bookmark: a server that ignores
            # sendInitialEvents. Paged lists are what it understands.
            self.streaming = False
        return synced

    def _relist(self) -> None:
        fresh: dict[str, JsonObject] = {}

        def keep(page: list[JsonDict]) -> None:
            for item in page:
                compact = self._transform(item)
                fresh[object_key(compact)] = compact

        self._install(fresh, self.api.list_paged(self.path, keep))

    def _install(self, fresh: dict[str, JsonObject], resource_version: str) -> None:
        """Replace the cache with a full list; its differences go to the handlers."""
        with self._lock:
            previous = self._store
            self._store = fresh
        self._resource_version = resource_version
        self.connected = True
        self.last_error = None
        RELISTS.labels(self.kind).inc()
        self._cached.set(len(fresh))
        for key, obj in fresh.items():
            old = previous.get(key)
            if old is None:
                self._dispatch_add(obj)
            elif _version(old) != _version(obj):
                self._dispatch_update(old, obj)
        for key, obj in previous.items():
            if key not in fresh:
                self._dispatch_delete(obj)
        self.synced.set()
        log.debug("listed", kind=self.kind, count=len(fresh), resource_version=resource_version)

    def _watch_once(self) -> None:
        timeout = random.randint(*_WATCH_TIMEOUT_RANGE)
        for event in self.api.watch(
            self.path, resource_version=self._resource_version, timeout_seconds=timeout
        ):
            if self._stop.is_set():
                return
            self._apply(event)

    def _apply(self, event: JsonDict) -> None:
        """One watch event into the cache and to the handlers."""
        self.connected = True
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            raise _event_error(obj)
        version = metadata_of(obj).get("resourceVersion")
        if version:
            self._resource_version = str(version)
        if kind == "BOOKMARK":
            return
        obj = self._transform(obj)
        key = object_key(obj)
        with self._lock:
            old = self._store.get(key)
            if kind == "DELETED":
                self._store.pop(key, None)
            else:
                self._store[key] = obj
        self._cached.set(len(self._store))
        if kind == "DELETED":
            self._dispatch_delete(obj)
        elif old is None:
            self._dispatch_add(obj)
        else:
            self._dispatch_update(old, obj)

    def _resync_loop(self) -> None:
        # Jitter so that several informers do not resync in the same instant.
        while not self._stop.wait(self.resync_period * random.uniform(0.9, 1.1)):
            for obj in self.items():
                self._dispatch_update(obj, obj)

    def _dispatch_add(self, obj: JsonObject) -> None:
        for handlers in self._handlers:
            _safely(handlers.on_add, obj)

    def _dispatch_update(self, old: JsonObject, new: JsonObject) -> None:
        for handlers in self._handlers:
            _safely(handlers.on_update, old, new)

    def _dispatch_delete(self, obj: JsonObject) -> None:
        for handlers in self._handlers:
            _safely(handlers.on_delete, obj)


def _event_error(status: JsonObject) -> ApiError:
    code = int(status.get("code") or 0)
    return ApiError(code, str(status.get("reason", "")), str(status.get("message", "")))


def _ends_initial_events(bookmark: JsonObject) -> bool:
    annotations = metadata_of(bookmark).get("annotations") or {}
    return annotations.get(INITIAL_EVENTS_END) == "true"


def _version(obj: JsonObject) -> Any:
    return metadata_of(obj).get("resourceVersion")


def _safely(handler: Callable[..., None], *args: JsonObject) -> None:
    try:
        handler(*args)
    except Exception:
        log.exception("event handler failed")
