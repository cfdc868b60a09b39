"""Leader election on a coordination.k8s.io Lease, with client-go's timing semantics.

Expiry is judged on this process's monotonic clock from the moment it last saw the lease
record change, so clock skew between nodes cannot make two instances lead at once.

A leader counts its lease from the moment it *sent* the renewal that succeeded (the server
stored it later, and the others saw it later still), and no lease call may outlast the renew
deadline: a call that hangs on a stalled connection ends with the deadline, and the leader
stops leading then, before any other instance can take the lease (lease duration > renew
deadline). Waiting for the call instead would let it lead on, beside the new leader.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from nfs_provisioner.kube import ApiClient, ApiError
from nfs_provisioner.kube.leases import create_lease, get_lease, update_lease
from nfs_provisioner.objects import api_time

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ElectionSettings:
    enabled: bool = True
    # Empty: settings fill in the service account's namespace (else "default").
    namespace: str = ""
    # Empty: settings fill in the provisioner name with "/" replaced by "-".
    lease_name: str = ""
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


class LeaderElector:
    def __init__(
        self,
        api: ApiClient,
        settings: ElectionSettings,
        *,
        identity: str,
        on_started_leading: Callable[[], None],
        on_stopped_leading: Callable[[], None],
    ) -> None:
        self.api = api
        self.settings = settings
        self.identity = identity
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._observed_record: Any = None
        self._observed_at = 0.0
        self._lease: dict[str, Any] | None = None
        self.is_leader = False
        # When the last renewal that succeeded was sent, on the monotonic clock.
        self._renewed_at = 0.0

    def holds_lease(self) -> bool:
        """True while this instance leads within its renew deadline, by its own clock.

        The workers ask before every operation and every write: a process stopped past its
        deadline (SIGSTOP, a VM paused) finds it false the moment it runs again, before its
        elector thread has had a turn to notice, while another instance may already lead.
        """
        return self.is_leader and time.monotonic() - self._renewed_at < self.settings.renew_deadline

    def run(self, stop: threading.Event) -> None:
        """Acquire, then renew until the lease is lost or ``stop`` is set (then release)."""
        s = self.settings
        log.info(
            "waiting for the leader lease",
            lease=f"{s.namespace}/{s.lease_name}",
            identity=self.identity,
        )
        while not stop.is_set():
            sent = time.monotonic()
            if self._try_acquire_or_renew(timeout=s.renew_deadline):
                self._renewed_at = sent
                break
            stop.wait(s.retry_period)
        if stop.is_set():
            return
        self.is_leader = True
        log.info("became leader", lease=f"{s.namespace}/{s.lease_name}", identity=self.identity)
        self._on_started()
        while not stop.wait(s.retry_period):
            sent = time.monotonic()
            left = s.renew_deadline - (sent - self._renewed_at)
            if left > 0 and self._try_acquire_or_renew(timeout=left):
                self._renewed_at = sent
            elif time.monotonic() - self._renewed_at >= s.renew_deadline:
                self.is_leader = False
                log.error("lost the leader lease", lease=f"{s.namespace}/{s.lease_name}")
                self._on_stopped()
                return
        self._release()

    def _try_acquire_or_renew(self, *, timeout: float) -> bool:
        """One attempt, all of whose calls end within ``timeout`` seconds."""
        s = self.settings
        now = api_time(micro=True)
        deadline = time.monotonic() + timeout

        def left() -> float:
            return max(0.001, deadline - time.monotonic())

        try:
            lease = get_lease(self.api, s.namespace, s.lease_name, timeout=left())
        except ApiError as error:
            if not error.is_not_found:
                log.warning("cannot read the leader lease", error=str(error))
                return False
            try:
                self._lease = create_lease(
                    self.api,
                    s.namespace,
                    s.lease_name,
                    {
                        "holderIdentity": self.identity,
                        "leaseDurationSeconds": int(s.lease_duration),
                        "acquireTime": now,
                        "renewTime": now,
                        "leaseTransitions": 0,
                    },
                    timeout=left(),
                )
            except ApiError as create_error:
                log.info("could not create the leader lease", error=str(create_error))
                return False
            self._observe(self._lease["spec"])
            return True
        spec = lease.get("spec") or {}
        if spec != self._observed_record:
            self._observe(spec)
        holder = spec.get("holderIdentity") or ""
        duration = float(spec.get("leaseDurationSeconds") or s.lease_duration)
        held_by_other = holder not in ("", self.identity)
        if held_by_other and time.monotonic() < self._observed_at + duration:
            return False
        new_spec = dict(spec)
        if holder != self.identity:
            new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
            new_spec["acquireTime"] = now
        new_spec.update(
            holderIdentity=self.identity, renewTime=now, leaseDurationSeconds=int(s.lease_duration)
        )
        lease["spec"] = new_spec
        try:
            self._lease = update_lease(self.api, lease, timeout=left())
        except ApiError as error:
            log.info("could not update the leader lease", error=str(error))
            return False
        self._observe(new_spec)
        return True

    def _observe(self, spec: Any) -> None:
        self._observed_record = spec
        self._observed_at = time.monotonic()

    def _release(self) -> None:
        """Hand the lease back so a standby takes over at once instead of after expiry."""
        if not self.is_leader or self._lease is None:
            return
        lease = dict(self._lease)
        lease["spec"] = dict(
            lease.get("spec") or {},
            holderIdentity="",
            leaseDurationSeconds=1,
            renewTime=api_time(micro=True),
        )
        try:
            update_lease(self.api, lease, timeout=self.settings.renew_deadline)
            log.info("released the leader lease")
        except ApiError as error:
            log.warning("could not release the leader lease", error=str(error))
        self.is_leader = False
