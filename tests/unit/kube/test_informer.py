"""The informer's first sync: a streaming list where the server has one, else paged lists."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from nfs_provisioner.kube.errors import ApiError
from nfs_provisioner.kube.informer import INITIAL_EVENTS_END, Handlers, Informer
from nfs_provisioner.objects import JsonDict, JsonObject


def claim(name: str, version: str) -> JsonDict:
    return {"metadata": {"namespace": "ns", "name": name, "resourceVersion": version}}


def bookmark(version: str, *, end: bool) -> JsonDict:
    annotations = {INITIAL_EVENTS_END: "true"} if end else {}
    return {
        "type": "BOOKMARK",
        "object": {"metadata": {"resourceVersion": version, "annotations": annotations}},
    }


class FakeApi:
    """Answers watches and lists from scripts; the informer stops after the last watch."""

    def __init__(self, stop: threading.Event, *, streams: bool) -> None:
        self.stop = stop
        self.streams = streams
        self.watches: list[dict[str, Any]] = []
        self.lists = 0
        self.objects = [claim("a", "5"), claim("b", "6")]

    def list_paged(self, path: str, consume: Callable[[list[JsonDict]], None]) -> str:
        self.lists += 1
        consume(self.objects)
        return "10"

    def watch(
        self,
        path: str,
        *,
        resource_version: str,
        timeout_seconds: int,
        send_initial_events: bool = False,
    ) -> Iterator[JsonDict]:
        self.watches.append(
            {"resource_version": resource_version, "send_initial_events": send_initial_events}
        )
        if send_initial_events and not self.streams:
            raise ApiError(422, "Invalid", "sendInitialEvents is forbidden for watch")
        if send_initial_events:
            yield bookmark("3", end=False)  # a periodic bookmark is not the end of the list
            for obj in self.objects:
                yield {"type": "ADDED", "object": obj}
            yield bookmark("10", end=True)
            yield {"type": "ADDED", "object": claim("c", "11")}
        else:
            yield {"type": "MODIFIED", "object": claim("a", "12")}
        self.stop.set()


def run(api: FakeApi, stop: threading.Event) -> tuple[Informer, list[str]]:
    seen: list[str] = []
    informer = Informer(
        api,  # type: ignore[arg-type]
        "/api/v1/persistentvolumeclaims",
        kind="claims",
        resync_period=0,
        stop=stop,
    )

    def added(obj: JsonObject) -> None:
        seen.append(f"add {obj['metadata']['name']}")

    def updated(old: JsonObject, new: JsonObject) -> None:
        seen.append(f"update {new['metadata']['name']}")

    informer.add_handlers(Handlers(added, updated, lambda obj: None))
    informer.start().join(timeout=10)
    return informer, seen


def test_a_streaming_list_syncs_and_goes_on_as_the_watch() -> None:
    stop = threading.Event()
    api = FakeApi(stop, streams=True)
    informer, seen = run(api, stop)
    assert informer.synced.is_set()
    assert informer.streaming is True
    assert api.lists == 0
    assert seen == ["add a", "add b", "add c"]
    assert sorted(obj["metadata"]["name"] for obj in informer.items()) == ["a", "b", "c"]
    assert api.watches == [{"resource_version": "", "send_initial_events": True}]


def test_a_server_without_streaming_lists_is_listed_in_pages() -> None:
    stop = threading.Event()
    api = FakeApi(stop, streams=False)
    informer, seen = run(api, stop)
    assert informer.synced.is_set()
    assert informer.streaming is False
    assert api.lists == 1
    assert seen == ["add a", "add b", "update a"]
    # The plain watch resumes from the list's version.
    assert api.watches[-1] == {"resource_version": "10", "send_initial_events": False}


@pytest.mark.parametrize("status", [401, 500])
def test_other_errors_of_a_streaming_list_are_not_taken_for_no_support(status: int) -> None:
    stop = threading.Event()

    class Failing(FakeApi):
        def watch(self, path: str, **kwargs: Any) -> Iterator[JsonDict]:
            stop.set()
            raise ApiError(status, "Failure", "no")

    informer, _ = run(Failing(stop, streams=True), stop)
    assert informer.streaming is None
    assert informer.last_error is not None
