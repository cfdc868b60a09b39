"""Leader election through a fake Lease API: a leader whose lease calls hang stops leading at
its renew deadline, before another instance could take the lease, never after.

Found by the soak (hack/soak, api-stall of the leader): a renewal hung for the client's 30 s
read timeout, and the leader led on past its renew deadline and past the lease duration,
beside the standby that had taken the lease meanwhile.
"""

from __future__ import annotations

import threading
import time
from typing import Any, cast

import pytest

from nfs_provisioner.controller.leaderelection import ElectionSettings, LeaderElector
from nfs_provisioner.kube import ApiClient
from tests.unit.controller.fakes import FakeLeaseApi

SETTINGS = ElectionSettings(
    namespace="default",
    lease_name="nfs",
    lease_duration=2.0,
    renew_deadline=0.6,
    retry_period=0.05,
)
# How long the test waits for an outcome: far beyond every setting, far below 30 s.
PATIENCE = 10.0


def _elector(api: FakeLeaseApi, started: threading.Event, stopped: threading.Event) -> Any:
    return LeaderElector(
        cast(ApiClient, api),
        SETTINGS,
        identity="a",
        on_started_leading=started.set,
        on_stopped_leading=stopped.set,
    )


def test_a_leader_whose_lease_calls_hang_stops_leading_at_its_renew_deadline() -> None:
    api = FakeLeaseApi()
    started, stopped, stop = threading.Event(), threading.Event(), threading.Event()
    elector = _elector(api, started, stopped)
    thread = threading.Thread(target=elector.run, args=(stop,), daemon=True)
    thread.start()
    assert started.wait(PATIENCE)
    assert api.lease is not None
    assert api.lease["spec"]["holderIdentity"] == "a"

    calls_before = len(api.timeouts)
    api.stalled.set()
    assert stopped.wait(PATIENCE), "still leading with every lease call hanging"
    assert not elector.is_leader
    # Every call was bounded by what was left of the renew deadline, so none could keep the
    # instance leading after it: not the client's 30 s default.
    assert all(0 < t <= SETTINGS.renew_deadline for t in api.timeouts)
    assert len(api.timeouts) > calls_before
    thread.join(PATIENCE)
    assert not thread.is_alive()


def test_a_leader_renews_while_calls_answer_and_releases_on_stop() -> None:
    api = FakeLeaseApi()
    started, stopped, stop = threading.Event(), threading.Event(), threading.Event()
    elector = _elector(api, started, stopped)
    thread = threading.Thread(target=elector.run, args=(stop,), daemon=True)
    thread.start()
    assert started.wait(PATIENCE)
    assert api.lease is not None
    renewed = api.lease["metadata"]["resourceVersion"]
    assert not stopped.wait(SETTINGS.renew_deadline * 3)
    assert api.lease["metadata"]["resourceVersion"] != renewed
    stop.set()
    thread.join(PATIENCE)
    assert not stopped.is_set()
    assert api.lease["spec"]["holderIdentity"] == ""


def test_the_lease_is_not_held_once_the_renew_deadline_passed_without_a_renewal() -> None:
    """What the workers ask before each operation: a process that was stopped (SIGSTOP) past
    its deadline finds it false at once, before its elector thread notices anything.

    Found by the soak (hack/soak, pause-leader): a leader continued after its lease had been
    taken finished its in-flight operations, beside the new leader.
    """
    api = FakeLeaseApi()
    started, stopped, stop = threading.Event(), threading.Event(), threading.Event()
    elector = _elector(api, started, stopped)
    thread = threading.Thread(target=elector.run, args=(stop,), daemon=True)
    thread.start()
    assert started.wait(PATIENCE)
    assert elector.holds_lease()
    api.stalled.set()
    # Renewals hang from now on: the lease stops being held at the deadline, whether or not
    # the elector thread has run since.
    assert stopped.wait(PATIENCE)
    assert not elector.holds_lease()
    thread.join(PATIENCE)


def test_an_instance_that_never_led_holds_no_lease() -> None:
    api = FakeLeaseApi()
    elector = _elector(api, threading.Event(), threading.Event())
    assert not elector.holds_lease()


def test_a_monotonic_clock_that_jumped_past_the_deadline_ends_the_lease(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGCONT after a long SIGSTOP, as the process sees it: its clock jumped past the renew
    deadline since the last renewal was sent; the lease is not held, with no call made."""
    api = FakeLeaseApi()
    started, stopped, stop = threading.Event(), threading.Event(), threading.Event()
    elector = _elector(api, started, stopped)
    thread = threading.Thread(target=elector.run, args=(stop,), daemon=True)
    thread.start()
    assert started.wait(PATIENCE)
    calls = len(api.timeouts)
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + SETTINGS.renew_deadline + 5)
    assert not elector.holds_lease()
    assert stopped.wait(PATIENCE)
    # The elector stopped on its clock alone: no lease call after the jump decided it.
    assert len(api.timeouts) <= calls + 1
    monkeypatch.undo()
    thread.join(PATIENCE)
