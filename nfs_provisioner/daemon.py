"""``nfs-provisioner run``: wires the API layer, the generic controller and the NFS backend."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from pathlib import Path

import structlog

from nfs_provisioner import __version__
from nfs_provisioner.config import ConfigError, ExportSettings, Settings, build_backend
from nfs_provisioner.controller import metrics
from nfs_provisioner.controller.controller import ProvisionController
from nfs_provisioner.controller.leaderelection import LeaderElector
from nfs_provisioner.controller.stages import StageLog
from nfs_provisioner.health import Check, HealthServer
from nfs_provisioner.kube import ApiClient, ConfigurationError, EventRecorder, connect
from nfs_provisioner.kube.preflight import check_access

log = structlog.get_logger(__name__)
# Watches hold three connections; workers and event senders need the rest.
_EXTRA_CONNECTIONS = 16
# Pace of the start-up checks while the API server cannot be worked with yet.
_FIRST_RETRY = 1.0
_MAX_RETRY = 30.0
# glibc's mallopt parameters (malloc.h) and what run sets them to.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
_MALLOC_SETTINGS = (
    (_M_ARENA_MAX, 2),
    (_M_MMAP_THRESHOLD, 256 * 1024),
    (_M_TRIM_THRESHOLD, 256 * 1024),
)


def check_mount(exports: ExportSettings) -> None:
    mount = Path(exports.mount_path)
    if not mount.is_dir():
        raise ConfigError(
            f"the export is not mounted at {mount}: mount the NFS export there "
            "(or point --mount-path / NFS_MOUNT_PATH at it)"
        )
    for export in exports.extra_exports:
        if not Path(export.mount_path).is_dir():
            raise ConfigError(
                f"the extra export {export} is not mounted at {export.mount_path}: mount it there "
                "or correct --extra-exports / NFS_PROVISIONER_EXTRA_EXPORTS"
            )


def tune_malloc(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Two malloc arenas, not one per thread that ever allocated (up to 16 on 2 cores), and
    fixed thresholds for giving freed memory back: glibc raises them after the first large
    free, after which the buffers of a burst stay resident. Worth about 1 MiB of RSS in a
    burst of 1000 claims. MALLOC_* environment variables, where set, are left to rule; False
    where the C library has no mallopt (musl)."""
    if any(name.startswith("MALLOC_") for name in environ):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    for parameter, value in _MALLOC_SETTINGS:
        mallopt(parameter, value)
    return True


def run(settings: Settings) -> int:
    tune_malloc()
    check_mount(settings.exports)
    backend = build_backend(settings.exports)
    try:
        api = connect(
            settings.api.kubeconfig,
            qps=settings.api.qps,
            burst=settings.api.burst,
            pool_size=2 * settings.controller.workers + _EXTRA_CONNECTIONS,
            user_agent=f"nfs-provisioner/{__version__}",
        )
    except ConfigurationError as error:
        raise ConfigError(str(error)) from error
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    events = EventRecorder(api, component=settings.provisioner_name, host=settings.identity)
    stages = StageLog() if settings.serving.stage_log else None
    controller = ProvisionController(
        api, backend, settings.controller, events=events, stop=stop, stages=stages
    )
    # Until the start-up checks pass, readiness says what they found.
    waiting_for = ["checking access to the API server"]

    def readiness() -> str | None:
        if waiting_for:
            return waiting_for[0]
        for informer in controller.informers:
            if not informer.synced.is_set():
                return f"{informer.kind} cache not synced yet"
            if not informer.connected:
                return f"{informer.kind} watch disconnected: {informer.last_error}"
        return controller.watch.problem()

    def liveness() -> str | None:
        return None if controller.workers_alive() else "a worker thread died"

    health = _serve_health(settings.serving.metrics_address, liveness, readiness)
    try:
        if _wait_for_access(api, settings, stop, waiting_for):
            _log_start(settings)
            _serve(settings, api, controller, stop)
    finally:
        if health is not None:
            health.stop()
    return 0


def _log_start(settings: Settings) -> None:
    log.info(
        "starting",
        version=__version__,
        provisioner=settings.provisioner_name,
        nfs_server=settings.exports.nfs_server,
        nfs_path=settings.exports.nfs_path,
        mount_path=settings.exports.mount_path,
        extra_exports=[f"{e}={e.mount_path}" for e in settings.exports.extra_exports],
        identity=settings.identity,
        leader_election=settings.election.enabled,
        metrics_address=settings.serving.metrics_address,
    )


def _serve_health(address: str, liveness: Check, readiness: Check) -> HealthServer | None:
    if address.endswith(":0"):
        return None
    try:
        health = HealthServer(address, liveness=liveness, readiness=readiness)
    except OSError as error:
        raise ConfigError(
            f"cannot serve /metrics, /healthz and /readyz on {address}: "
            f"{error.strerror or error}: choose another --metrics-address "
            "(NFS_PROVISIONER_METRICS_ADDRESS) with a local address and a free port; "
            "port 0 turns it off"
        ) from None
    health.start()
    return health


def _wait_for_access(
    api: ApiClient, settings: Settings, stop: threading.Event, waiting_for: list[str]
) -> bool:
    """True once the API server can be worked with; False if stopped first. ConfigError for a
    problem no retry can fix; transient ones are logged at error level and retried."""
    election = settings.election
    lease = (election.namespace, election.lease_name) if election.enabled else None
    delay = _FIRST_RETRY
    while not stop.is_set():
        problem = check_access(api, lease)
        if problem is None:
            waiting_for.clear()
            return True
        if problem.permanent:
            raise ConfigError(problem.message)
        waiting_for[:] = [f"not started: {problem.message}"]
        log.error("cannot start serving yet", problem=problem.message, retry_in=delay)
        stop.wait(delay)
        delay = min(delay * 2, _MAX_RETRY)
    return False


def _serve(
    settings: Settings, api: ApiClient, controller: ProvisionController, stop: threading.Event
) -> None:
    controller.start_informers()

    def start_leading() -> None:
        metrics.IS_LEADER.set(1)
        threading.Thread(target=controller.start_workers, name="start-workers", daemon=True).start()

    def stop_leading() -> None:
        # Another instance may already act: stop every worker now, mid-operation or not.
        metrics.IS_LEADER.set(0)
        sys.stderr.flush()
        os._exit(1)

    if settings.election.enabled:
        elector = LeaderElector(
            api,
            settings.election,
            identity=settings.identity,
            on_started_leading=start_leading,
            on_stopped_leading=stop_leading,
        )

        def fence() -> None:
            if not elector.holds_lease():
                log.error("the leader lease is past its renew deadline: stopping")
                stop_leading()

        controller.fence = fence
        elector.run(stop)
    else:
        start_leading()
        stop.wait()
    log.info("shutting down")
    controller.shutdown()
    controller.events.flush(timeout=5.0)
    if controller.stages is not None and settings.serving.stage_log:
        controller.stages.write(Path(settings.serving.stage_log))
