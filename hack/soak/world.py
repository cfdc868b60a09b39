"""What the soak runs on and breaks: the control plane, the NFS world, two replicas behind
their proxies, and the faults applied to them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from devcluster import ControlPlane, ensure_binaries, start_control_plane
from devcluster.harness import FAST_LEADER_ELECTION, Cluster, Provisioner
from nfsworld import Mount, NfsWorld, NfsWorldError, Squash, start_nfs_world

from soak.proxy import FaultyProxy
from soak.schedule import CLASSES, LATE_CLASS, NAMESPACES, PATTERN_CLASS, Fault

PROVISIONER: Final = "soak.local/nfs"
EXPORTS_SIZE: Final = "1g"
EXPORTS_INODES: Final = "1m"
# The directory of the export the provisioner serves, inside the server's export.
EXPORT_DIRECTORY: Final = "soak"
_CLASS_PARAMETERS: Final = {
    "soak-delete": {"onDelete": "delete"},
    "soak-archive": {"archiveOnDelete": "true"},
    "soak-retain": {"onDelete": "retain"},
    PATTERN_CLASS: {"pathPattern": "${.PVC.namespace}/${.PVC.name}", "archiveOnDelete": "true"},
    LATE_CLASS: {"onDelete": "delete"},
}


@dataclass
class Replica:
    provisioner: Provisioner
    proxy: FaultyProxy
    # Set while a fault keeps it down (killed, not yet restarted): the supervisor leaves it.
    held: bool = False
    restarts: int = 0

    @property
    def pid(self) -> int:
        process = self.provisioner.process
        return process.pid if process is not None else 0

    def running(self) -> bool:
        process = self.provisioner.process
        return process is not None and process.poll() is None

    def is_leader(self) -> bool:
        url = f"http://127.0.0.1:{self.provisioner.metrics_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                text = response.read().decode()
        except (OSError, urllib.error.URLError):
            return False
        return any(
            line.startswith("nfs_provisioner_leader ") and float(line.split()[1]) == 1
            for line in text.splitlines()
        )


@dataclass
class SoakWorld:
    plane: ControlPlane
    nfs: NfsWorld
    cluster: Cluster
    mount: Mount
    backing: Path
    nfs_path: str
    sentinels: tuple[Path, ...]
    replicas: list[Replica] = field(default_factory=list)

    # --- the replicas ----------------------------------------------------------------------

    def leader(self) -> Replica | None:
        leaders = [r for r in self.replicas if r.running() and r.is_leader()]
        return leaders[0] if len(leaders) == 1 else None

    def target(self, which: str) -> list[Replica]:
        """The replicas ``leader``, ``standby`` or ``both`` name now."""
        if which == "both":
            return list(self.replicas)
        leader = self.leader() or self.replicas[0]
        if which == "leader":
            return [leader]
        return [r for r in self.replicas if r is not leader]

    def supervise(self) -> int:
        """Restart replicas that exited while no fault holds them down, as a kubelet would."""
        restarted = 0
        for replica in self.replicas:
            if replica.held or replica.running():
                continue
            try:
                replica.provisioner.start()
            except AssertionError:
                continue
            replica.restarts += 1
            restarted += 1
        return restarted

    # --- faults ----------------------------------------------------------------------------

    def inject(self, fault: Fault) -> str:
        """Apply ``fault``; return what it hit."""
        kind = fault.kind
        if kind in ("kill-leader", "kill-standby"):
            (replica,) = self.target(kind.removeprefix("kill-"))
            replica.held = True
            pid = replica.pid
            replica.provisioner.stop(kill=True)
            return f"pid {pid}"
        if kind in ("pause-leader", "pause-standby"):
            (replica,) = self.target(kind.removeprefix("pause-"))
            with contextlib.suppress(ProcessLookupError):
                os.kill(replica.pid, signal.SIGSTOP)
            return f"pid {replica.pid}"
        if kind == "apiserver-restart":
            self.plane.stop_process("kube-apiserver")
        elif kind == "etcd-compaction":
            return f"revision {self.plane.compact_etcd()}"
        elif kind == "controller-manager-restart":
            self.plane.stop_process("kube-controller-manager")
        elif kind == "nfs-restart":
            self.nfs.stop_server()
        elif kind == "export-full":
            return self._fill_exports()
        elif kind == "export-read-only":
            # Root-owned and 0755 on the server: the root-squashed provisioner cannot write.
            self.backing.chmod(0o755)
        elif kind.startswith("api-"):
            proxies = [r.proxy for r in self.target(fault.target)]
            for proxy in proxies:
                if kind == "api-delay":
                    proxy.delay = fault.delay_ms / 1000
                elif kind == "api-stall":
                    proxy.stall()
                else:
                    proxy.drop()
            return ", ".join(f"proxy {p.port}" for p in proxies)
        else:
            raise ValueError(f"unknown fault {kind!r}")
        return ""

    def heal(self, fault: Fault, hit: str) -> None:
        kind = fault.kind
        if kind in ("kill-leader", "kill-standby"):
            for replica in self.replicas:
                replica.held = False
        elif kind in ("pause-leader", "pause-standby"):
            pid = int(hit.removeprefix("pid "))
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        elif kind == "apiserver-restart":
            self.plane.start_apiserver()
        elif kind == "controller-manager-restart":
            self.plane.start_controller_manager()
        elif kind == "nfs-restart":
            self.nfs.start_server()
        elif kind == "export-full":
            self.nfs.resize_exports(size=EXPORTS_SIZE, inodes=EXPORTS_INODES)
        elif kind == "export-read-only":
            self.backing.chmod(0o777)
        elif kind.startswith("api-"):
            for replica in self.replicas:
                replica.proxy.heal()

    def _fill_exports(self) -> str:
        """Shrink the exports' tmpfs to what is in use; usage moves, so try a few times."""
        last = ""
        for _ in range(20):
            stat = os.statvfs(self.nfs.exports_root)
            used_bytes = (stat.f_blocks - stat.f_bfree) * stat.f_frsize
            used_inodes = stat.f_files - stat.f_ffree
            try:
                self.nfs.resize_exports(size=str(max(used_bytes, 4096)), inodes=str(used_inodes))
            except NfsWorldError as error:
                last = str(error)
                time.sleep(0.05)
                continue
            return f"{used_bytes} bytes, {used_inodes} inodes"
        raise NfsWorldError(f"could not fill the export: {last}")

    def heal_everything(self) -> None:
        """Whatever state a stopped run left: continue paused replicas, servers up, export
        writable, proxies clear."""
        for replica in self.replicas:
            replica.held = False
            replica.proxy.heal()
            if replica.running():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(replica.pid, signal.SIGCONT)
        self.backing.chmod(0o777)
        with contextlib.suppress(NfsWorldError):
            self.nfs.resize_exports(size=EXPORTS_SIZE, inodes=EXPORTS_INODES)
        self.nfs.start_server()
        for name, start in (
            ("kube-apiserver", self.plane.start_apiserver),
            ("kube-controller-manager", self.plane.start_controller_manager),
        ):
            process = self.plane.processes.get(name)
            if process is None or process.poll() is not None:
                self.plane.processes.pop(name, None)
                start()


def _proxied_kubeconfig(plane: ControlPlane, proxy: FaultyProxy, path: Path) -> Path:
    config = json.loads(plane.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


def _write_sentinel(directory: Path) -> None:
    directory.mkdir(mode=0o755)
    (directory / "keep").mkdir()
    (directory / "keep" / "file").write_bytes(b"outside the export: never to change\n")
    (directory / "top").write_bytes(b"sentinel\n")


@contextlib.contextmanager
def soak_world(workdir: Path, *, workers: int = 4) -> Iterator[SoakWorld]:
    """Everything started, classes and namespaces made, both replicas running; all stopped
    (paused replicas continued first) when the block ends."""
    if os.geteuid() != 0:
        raise NfsWorldError(
            "the soak needs root: it runs NFS-Ganesha, mounts with fuse-nfs and resizes the "
            "export's tmpfs (CI runs as root)"
        )
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with (
        start_control_plane(
            binaries=ensure_binaries(), controller_manager_qps=500, controller_manager_burst=1000
        ) as plane,
        start_nfs_world({"export": Squash.ROOT}, exports_size=EXPORTS_SIZE) as nfs,
    ):
        nfs.resize_exports(size=EXPORTS_SIZE, inodes=EXPORTS_INODES)
        export = nfs.exports["export"]
        backing = export.path / EXPORT_DIRECTORY
        backing.mkdir()
        backing.chmod(0o777)
        mount = nfs.mount_export("export", EXPORT_DIRECTORY)
        # One next to the served directory on the server, one next to the mount point.
        sentinels = (export.path / "sentinel", mount.path.parent / "sentinel")
        for sentinel in sentinels:
            _write_sentinel(sentinel)
        cluster = Cluster.connect(plane)
        for namespace in NAMESPACES:
            cluster.api.create(
                "/api/v1/namespaces",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
            )
        for name in CLASSES:
            cluster.create_storage_class(
                PROVISIONER,
                name=name,
                parameters=_CLASS_PARAMETERS[name],
                binding_mode="WaitForFirstConsumer" if name == LATE_CLASS else "Immediate",
            )
            cluster.api.merge_patch(
                f"/apis/storage.k8s.io/v1/storageclasses/{name}", {"allowVolumeExpansion": True}
            )
        world = SoakWorld(
            plane, nfs, cluster, mount, backing, f"{export.path}/{EXPORT_DIRECTORY}", sentinels
        )
        try:
            for index in range(2):
                proxy = FaultyProxy(upstream_port=plane.apiserver_port).start()
                provisioner = Provisioner(
                    plane=plane,
                    name=PROVISIONER,
                    export=mount.path,
                    server=nfs.server,
                    nfs_path=world.nfs_path,
                    leader_election=True,
                    extra_env={
                        **FAST_LEADER_ELECTION["extra_env"],
                        "NFS_PROVISIONER_WORKERS": str(workers),
                    },
                    log_path=logs / f"replica-{index}.log",
                    kubeconfig=_proxied_kubeconfig(plane, proxy, workdir / f"kubeconfig-{index}"),
                )
                world.replicas.append(Replica(provisioner.start(), proxy))
            yield world
        finally:
            for replica in world.replicas:
                replica.proxy.heal()
                if replica.running():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(replica.pid, signal.SIGCONT)
                replica.provisioner.stop()
                replica.proxy.close()
            nfs.start_server()
            backing.chmod(0o777)
