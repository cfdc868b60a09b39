"""The periodic removal of kept storage whose retention has passed; the leader alone runs it."""

from __future__ import annotations

import datetime
import threading

import structlog

from nfs_provisioner.controller import metrics
from nfs_provisioner.storage import BackendError, StorageSweeper

log = structlog.get_logger(__name__)


def run_sweeps(sweeper: StorageSweeper, *, interval: float, stop: threading.Event) -> None:
    """Sweep now, then every interval, until stop is set."""
    while not stop.is_set():
        try:
            sweep_once(sweeper)
        except BackendError as error:
            metrics.ARCHIVE_SWEEP_ERRORS_TOTAL.inc()
            log.warning("archive sweep failed", error=str(error))
        except Exception:  # a bug must not silently end the sweeps
            metrics.ARCHIVE_SWEEP_ERRORS_TOTAL.inc()
            log.exception("archive sweep failed")
        stop.wait(interval)


def sweep_once(sweeper: StorageSweeper) -> None:
    for expired in sweeper.sweep_expired(datetime.datetime.now(datetime.UTC)):
        age_days = round(expired.age_seconds / 86400, 2)
        if expired.error is None:
            log.info("expired archive removed", archive=expired.location, age_days=age_days)
            metrics.ARCHIVES_REMOVED_TOTAL.inc()
        else:
            metrics.ARCHIVE_SWEEP_ERRORS_TOTAL.inc()
            log.warning(
                "cannot remove expired archive",
                archive=expired.location,
                age_days=age_days,
                error=expired.error,
            )
