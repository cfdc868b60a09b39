"""Start etcd, kube-apiserver and kube-controller-manager on 127.0.0.1 and stop them again.

Everything lives in one temporary directory (certificates, token file, kubeconfig, etcd data,
logs) that is removed on stop. Children get PR_SET_PDEATHSIG, so even a SIGKILLed parent
leaves nothing running.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devcluster.binaries import Binaries, ensure_binaries
from devcluster.certs import write_pki

# The PV binder and the two protection controllers are all a provisioner needs; the
# namespace controller lets tests delete namespaces.
CONTROLLERS = (
    "persistentvolume-binder-controller",
    "persistentvolumeclaim-protection-controller",
    "persistentvolume-protection-controller",
    "namespace-controller",
)
_PR_SET_PDEATHSIG = 1


class ControlPlaneError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    # SIGKILL, not SIGTERM: on SIGTERM kube-apiserver starts a graceful shutdown that waits
    # for etcd, which got the same signal and is gone, so it could outlive its parent.
    # The signal follows the thread that started the child: start children from a thread
    # that lives as long as they do (the main thread).
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class ControlPlane:
    """A running local control plane; use :func:`start_control_plane`."""

    binaries: Binaries
    workdir: Path
    controller_manager_qps: int | None = None
    controller_manager_burst: int | None = None
    # Extra kube-apiserver flags (an audit log, feature gates), paths relative to workdir.
    apiserver_args: tuple[str, ...] = ()
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    etcd_port: int = field(default_factory=free_port)
    etcd_peer_port: int = field(default_factory=free_port)
    apiserver_port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "ca.crt"

    @property
    def log_dir(self) -> Path:
        return self.workdir / "logs"

    def prepare(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        write_pki(self.workdir)
        (self.workdir / "tokens.csv").write_text(f'{self.token},admin,admin-uid,"system:masters"\n')
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {"server": self.server, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin"}}],
            "current-context": "local",
        }
        self.kubeconfig.write_text(json.dumps(kubeconfig, indent=2))
        self.kubeconfig.chmod(0o600)

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = (self.log_dir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
            cwd=self.workdir,
        )
        log.close()

    def start_etcd(self) -> None:
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        client = f"http://127.0.0.1:{self.etcd_port}"
        self._spawn(
            "etcd",
            [
                str(self.binaries.etcd),
                "--name=default",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=default={peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._wait_for(f"{client}/health", "etcd", tls=False)

    def start_apiserver(self) -> None:
        w = self.workdir
        self._spawn(
            "kube-apiserver",
            [
                str(self.binaries.kube_apiserver),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.apiserver_port}",
                f"--cert-dir={w / 'apiserver-certs'}",
                f"--tls-cert-file={w / 'apiserver.crt'}",
                f"--tls-private-key-file={w / 'apiserver.key'}",
                "--authorization-mode=RBAC",
                f"--token-auth-file={w / 'tokens.csv'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={w / 'sa.pub'}",
                f"--service-account-signing-key-file={w / 'sa.key'}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--disable-admission-plugins=ServiceAccount",
                "--endpoint-reconciler-type=none",
                *self.apiserver_args,
            ],
        )
        self._wait_for(f"{self.server}/readyz", "kube-apiserver", tls=True)

    def start_controller_manager(self) -> None:
        argv = [
            str(self.binaries.kube_controller_manager),
            f"--kubeconfig={self.kubeconfig}",
            f"--controllers={','.join(CONTROLLERS)}",
            "--leader-elect=false",
            "--use-service-account-credentials=false",
            "--secure-port=0",
            "--pvclaimbinder-sync-period=2s",
        ]
        if self.controller_manager_qps is not None:
            argv.append(f"--kube-api-qps={self.controller_manager_qps}")
        if self.controller_manager_burst is not None:
            argv.append(f"--kube-api-burst={self.controller_manager_burst}")
        self._spawn("kube-controller-manager", argv)

    def start(self) -> None:
        self.prepare()
        self.start_etcd()
        self.start_apiserver()
        self.start_controller_manager()

    def stop_process(self, name: str, *, kill: bool = False) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def compact_etcd(self) -> int:
        """Compact etcd to its current revision, so older watch versions answer 410 Gone."""
        base = f"http://127.0.0.1:{self.etcd_port}/v3/kv"
        # etcd's JSON gateway takes base64 keys; "AA==" is the key "\0".
        header = _post_json(f"{base}/range", {"key": "AA=="})["header"]
        revision = int(header["revision"])
        _post_json(f"{base}/compaction", {"revision": revision, "physical": True})
        return revision

    def stop(self) -> None:
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            self.stop_process(name)

    def _wait_for(self, url: str, name: str, *, tls: bool, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        context = ssl.create_default_context(cafile=str(self.ca_file)) if tls else None
        headers = {"Authorization": f"Bearer {self.token}"} if tls else {}
        last_error = ""
        while time.monotonic() < deadline:
            process = self.processes[name]
            if process.poll() is not None:
                raise ControlPlaneError(
                    f"{name} exited with {process.returncode}:\n{self.log_tail(name)}"
                )
            try:
                req = urllib.request.Request(url, headers=headers)
                with urllib.request.urlopen(req, timeout=2, context=context) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError) as error:
                last_error = str(error)
            time.sleep(0.2)
        raise ControlPlaneError(
            f"{name} not ready after {timeout:.0f}s ({last_error}):\n{self.log_tail(name)}"
        )

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _post_json(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def start_control_plane(
    *,
    binaries: Binaries | None = None,
    controller_manager_qps: int | None = None,
    controller_manager_burst: int | None = None,
    workdir: Path | None = None,
    apiserver_args: tuple[str, ...] = (),
) -> Iterator[ControlPlane]:
    """Run a control plane for the duration of the ``with`` block; always clean up."""
    owned = workdir is None
    directory = Path(tempfile.mkdtemp(prefix="nfs-provisioner-cp-")) if owned else workdir
    assert directory is not None
    plane = ControlPlane(
        binaries=binaries or ensure_binaries(),
        workdir=directory,
        controller_manager_qps=controller_manager_qps,
        controller_manager_burst=controller_manager_burst,
        apiserver_args=apiserver_args,
    )
    previous = signal.getsignal(signal.SIGTERM)
    if previous in (signal.SIG_DFL, None):
        # Turn SIGTERM into an exception so the finally block below still runs.
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        plane.start()
        yield plane
    finally:
        plane.stop()
        if previous in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if owned:
            shutil.rmtree(directory, ignore_errors=True)


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
