"""Events: repeats of one event become one object with a count, whatever the sender threads do."""

from __future__ import annotations

import threading
import time
from typing import Any

from nfs_provisioner.kube.events import EventRecorder


class _SlowApi:
    """Creates and patches events in memory, slowly, so that senders overlap."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.created: list[dict[str, Any]] = []
        self.counts: dict[str, int] = {}

    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        time.sleep(0.02)
        with self.lock:
            self.created.append(body)
            self.counts[body["metadata"]["name"]] = body["count"]
        return body

    def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        time.sleep(0.005)
        with self.lock:
            self.counts[path.rsplit("/", 1)[-1]] = patch["count"]
        return patch


def test_repeats_are_one_event_with_their_count() -> None:
    api = _SlowApi()
    recorder = EventRecorder(api, component="test", host="h", senders=4)  # type: ignore[arg-type]
    claim = {
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "c", "namespace": "ns", "uid": "u"},
    }
    for _ in range(20):
        recorder.record(claim, "Warning", "ProvisioningFailed", "the same failure")
    recorder.record(claim, "Normal", "Provisioning", "another event")
    recorder.flush()
    failures = [e for e in api.created if e["reason"] == "ProvisioningFailed"]
    assert len(failures) == 1
    assert api.counts[failures[0]["metadata"]["name"]] == 20
    assert len(api.created) == 2
