"""Work queue semantics: dedup, one worker per key, delayed adds, per-item backoff."""

from __future__ import annotations

import threading
import time

from nfs_provisioner.controller.workqueue import ItemBackoff, WorkQueue


def _queue(base: float = 0.01, cap: float = 0.08) -> WorkQueue:
    return WorkQueue("test", ItemBackoff(base, cap))


def test_duplicate_adds_are_processed_once() -> None:
    queue = _queue()
    for _ in range(3):
        queue.add("a")
    queue.add("b")
    assert queue.depth() == 2
    assert queue.get() == "a"
    assert queue.get() == "b"


def test_key_added_while_processing_is_requeued_after_done() -> None:
    queue = _queue()
    queue.add("a")
    assert queue.get() == "a"
    queue.add("a")
    assert queue.depth() == 0  # not handed to a second worker while the first holds it
    queue.done("a")
    assert queue.depth() == 1
    assert queue.get() == "a"


def test_delayed_add_arrives_after_the_delay() -> None:
    queue = _queue()
    queue.add_after("late", 0.05)
    assert queue.depth() == 0
    assert queue.waiting() == 1
    started = time.monotonic()
    assert queue.get() == "late"
    assert time.monotonic() - started >= 0.04


def test_backoff_doubles_to_the_cap_and_forget_resets() -> None:
    backoff = ItemBackoff(15, 1000)
    delays = [backoff.next_delay("k") for _ in range(9)]
    assert delays == [15, 30, 60, 120, 240, 480, 960, 1000, 1000]
    assert backoff.failures("k") == 9
    assert backoff.at_cap() == 1
    assert backoff.next_delay("other") == 15
    backoff.forget("k")
    assert backoff.failures("k") == 0
    assert backoff.next_delay("k") == 15


def test_backoff_never_gives_up() -> None:
    backoff = ItemBackoff(1, 1000)
    for _ in range(200):
        delay = backoff.next_delay("k")
    assert delay == 1000


def test_shutdown_releases_blocked_workers() -> None:
    queue = _queue()
    results: list[str | None] = []
    worker = threading.Thread(target=lambda: results.append(queue.get()))
    worker.start()
    queue.shutdown()
    worker.join(timeout=5)
    assert results == [None]
