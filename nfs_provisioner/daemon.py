"""``nfs-provisioner run``: wires the API layer, the generic controller and the NFS backend."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import structlog

from nfs_provisioner import __version__
from nfs_provisioner.config import ConfigError, Settings
from nfs_provisioner.controller import metrics
from nfs_provisioner.controller.controller import ControllerSettings, ProvisionController
from nfs_provisioner.controller.health import HealthServer
from nfs_provisioner.controller.leaderelection import LeaderElector, LeaseSettings
from nfs_provisioner.kube import ConfigurationError, EventRecorder, connect
from nfs_provisioner.nfs import Export, NFSBackend

log = structlog.get_logger(__name__)
# Watches hold three connections; workers and event senders need the rest.
_EXTRA_CONNECTIONS = 16


def check_mount(settings: Settings) -> None:
    mount = Path(settings.mount_path)
    if not mount.is_dir():
        raise ConfigError(
            f"the export is not mounted at {mount}: mount the NFS export there "
            "(or point --mount-path / NFS_MOUNT_PATH at it)"
        )
    for export in settings.extra_exports:
        if not Path(export.mount_path).is_dir():
            raise ConfigError(
                f"the extra export {export} is not mounted at {export.mount_path}: mount it there "
                "or correct --extra-exports / NFS_PROVISIONER_EXTRA_EXPORTS"
            )


def build_backend(settings: Settings) -> NFSBackend:
    try:
        return NFSBackend(
            server=settings.nfs_server,
            export_path=settings.nfs_path,
            mount_path=settings.mount_path,
            extra_exports=[
                Export.of(extra.server, extra.share, extra.mount_path)
                for extra in settings.extra_exports
            ],
        )
    except ValueError as error:
        raise ConfigError(f"invalid NFS_PROVISIONER_EXTRA_EXPORTS: {error}") from None


def run(settings: Settings) -> int:
    check_mount(settings)
    backend = build_backend(settings)
    try:
        api = connect(
            settings.kubeconfig,
            qps=settings.kube_api_qps,
            burst=settings.kube_api_burst,
            pool_size=2 * settings.workers + _EXTRA_CONNECTIONS,
            user_agent=f"nfs-provisioner/{__version__}",
        )
    except ConfigurationError as error:
        raise ConfigError(str(error)) from error
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    events = EventRecorder(api, component=settings.provisioner_name, host=settings.identity)
    controller = ProvisionController(
        api,
        backend,
        ControllerSettings(
            provisioner_name=settings.provisioner_name,
            workers=settings.workers,
            resync_period=settings.resync_period,
            retry_base_delay=settings.retry_base_delay,
            retry_max_delay=settings.retry_max_delay,
            usage_scan_interval=settings.usage_scan_interval,
            usage_scan_rate=settings.usage_scan_rate,
            archive_sweep_interval=settings.archive_sweep_interval,
            stuck_operation_after=settings.stuck_operation_after,
        ),
        events=events,
        stop=stop,
    )

    def readiness() -> str | None:
        for informer in controller.informers:
            if not informer.synced.is_set():
                return f"{informer.kind} cache not synced yet"
            if not informer.connected:
                return f"{informer.kind} watch disconnected: {informer.last_error}"
        return controller.watch.problem()

    def liveness() -> str | None:
        return None if controller.workers_alive() else "a worker thread died"

    health = None
    if not settings.metrics_address.endswith(":0"):
        health = HealthServer(settings.metrics_address, liveness=liveness, readiness=readiness)
        health.start()
    log.info(
        "starting",
        version=__version__,
        provisioner=settings.provisioner_name,
        nfs_server=settings.nfs_server,
        nfs_path=settings.nfs_path,
        mount_path=settings.mount_path,
        extra_exports=[f"{e}={e.mount_path}" for e in settings.extra_exports],
        identity=settings.identity,
        leader_election=settings.leader_election,
        metrics_address=settings.metrics_address,
    )
    controller.start_informers()

    def start_leading() -> None:
        metrics.IS_LEADER.set(1)
        threading.Thread(target=controller.start_workers, name="start-workers", daemon=True).start()

    def stop_leading() -> None:
        # Another instance may already act: stop every worker now, mid-operation or not.
        metrics.IS_LEADER.set(0)
        sys.stderr.flush()
        os._exit(1)

    if settings.leader_election:
        elector = LeaderElector(
            api,
            LeaseSettings(
                namespace=settings.pod_namespace,
                name=settings.leader_election_id,
                identity=settings.identity,
                lease_duration=settings.lease_duration,
                renew_deadline=settings.renew_deadline,
                retry_period=settings.retry_period,
            ),
            on_started_leading=start_leading,
            on_stopped_leading=stop_leading,
        )
        elector.run(stop)
    else:
        start_leading()
        stop.wait()
    log.info("shutting down")
    controller.shutdown()
    events.flush(timeout=5.0)
    if health is not None:
        health.stop()
    return 0
