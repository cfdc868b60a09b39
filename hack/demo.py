"""`make demo`: a local control plane, the provisioner on .demo/export, and the seeds' setup.

Starts etcd, kube-apiserver and kube-controller-manager on 127.0.0.1, runs
`nfs-provisioner run` with .demo/export as the export, creates the default StorageClass `nfs`
and a claim, shows the claim Bound and its directory, then keeps running until Ctrl-C.

    python hack/demo.py            # what `make demo` runs
    python hack/demo.py --nfs real # `make demo NFS=real`: a real NFS server and mount (root)
    python hack/demo.py claim NAME [SIZE]   # from a second terminal: one more claim

With ``--nfs real`` the export is a directory served by NFS-Ganesha on 127.0.0.1 with
root_squash, mounted at .demo/export with fuse-nfs (hack/nfsworld); PVs name that server and
export, so a kubelet could mount them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devcluster import start_control_plane
from devcluster.controlplane import free_port
from devcluster.versions import REPO_ROOT
from nfsworld import NfsWorld, Squash, start_nfs_world

from nfs_provisioner.kube import ApiClient, ApiError, connect, paths
from nfs_provisioner.objects import new_claim

DEMO_DIR = REPO_ROOT / ".demo"
EXPORT = DEMO_DIR / "export"
KUBECONFIG_LINK = DEMO_DIR / "kubeconfig"
PROVISIONER_NAME = "cluster.local/nfs-client-provisioner"
NAMESPACE = "default"


def client(kubeconfig: Path) -> ApiClient:
    return connect(str(kubeconfig), qps=0, burst=1, pool_size=4, user_agent="nfs-demo")


def create_claim(api: ApiClient, name: str, size: str) -> None:
    api.create(paths.namespaced("persistentvolumeclaims", NAMESPACE), new_claim(name, size=size))


def wait_bound(api: ApiClient, name: str, timeout: float = 60.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        claim = api.get(paths.claim(NAMESPACE, name))
        if claim.get("status", {}).get("phase") == "Bound":
            return claim
        time.sleep(0.3)
    raise SystemExit(f"claim {name} is not Bound after {timeout:.0f}s")


def show(api: ApiClient, name: str) -> None:
    claim = wait_bound(api, name)
    volume = api.get(f"/api/v1/persistentvolumes/{claim['spec']['volumeName']}")  # type: ignore[index]
    path = volume["spec"]["nfs"]["path"]
    directory = EXPORT / path.rsplit("/", 1)[-1]
    print(f"claim {NAMESPACE}/{name}: Bound to {volume['metadata']['name']}")
    print(f"  nfs: {volume['spec']['nfs']['server']}:{path}")
    print(
        f"  directory: {directory} (exists: {directory.is_dir()}, "
        f"mode {oct(directory.stat().st_mode & 0o777)})"
    )


def add_claim(name: str, size: str) -> None:
    if not KUBECONFIG_LINK.exists():
        raise SystemExit("no demo is running: start one with `make demo`")
    api = client(KUBECONFIG_LINK)
    create_claim(api, name, size)
    show(api, name)


@dataclass(frozen=True)
class DemoExport:
    server: str
    path: str


@contextmanager
def demo_export(real_nfs: bool) -> Iterator[DemoExport]:
    """EXPORT as a plain directory, or as a fuse-nfs mount of a real NFS-Ganesha export."""
    # The control plane is new every time, so volumes left from an earlier demo mean nothing.
    shutil.rmtree(EXPORT, ignore_errors=True)
    EXPORT.mkdir(parents=True)
    if not real_nfs:
        yield DemoExport(server="127.0.0.1", path="/exports/demo")
        return
    world: NfsWorld
    with start_nfs_world({"demo": Squash.ROOT}) as world:
        export = world.exports["demo"]
        world.mount(export.url, at=EXPORT)
        print(world.describe(), flush=True)
        yield DemoExport(server=world.server, path=str(export.path))


def demo(real_nfs: bool) -> None:
    with demo_export(real_nfs) as export, start_control_plane() as plane:
        DEMO_DIR.mkdir(exist_ok=True)
        KUBECONFIG_LINK.unlink(missing_ok=True)
        KUBECONFIG_LINK.symlink_to(plane.kubeconfig)
        metrics_port = free_port()
        env = {
            **os.environ,
            "NFS_SERVER": export.server,
            "NFS_PATH": export.path,
            "PROVISIONER_NAME": PROVISIONER_NAME,
            "KUBECONFIG": str(plane.kubeconfig),
            "NFS_MOUNT_PATH": str(EXPORT),
            "POD_NAMESPACE": "default",
            "NFS_PROVISIONER_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}",
            "NFS_PROVISIONER_LOG_FORMAT": "console",
        }
        log_path = DEMO_DIR / "provisioner.log"
        with log_path.open("w") as log:
            provisioner = subprocess.Popen(
                [sys.executable, "-m", "nfs_provisioner", "run"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            api = client(plane.kubeconfig)
            try:
                api.create(
                    "/apis/storage.k8s.io/v1/storageclasses",
                    {
                        "apiVersion": "storage.k8s.io/v1",
                        "kind": "StorageClass",
                        "metadata": {
                            "name": "nfs",
                            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                        },
                        "provisioner": PROVISIONER_NAME,
                        "reclaimPolicy": "Delete",
                        "parameters": {"archiveOnDelete": "true"},
                    },
                )
                create_claim(api, "minio-pvc", "20Gi")
            except ApiError as error:
                raise SystemExit(f"demo setup failed: {error}") from error
            print("StorageClass nfs (default) -> provisioner " + PROVISIONER_NAME)
            show(api, "minio-pvc")
            print(
                f"""
The provisioner is running (log: {log_path}, metrics: http://127.0.0.1:{metrics_port}/metrics).
  kubeconfig:  export KUBECONFIG={KUBECONFIG_LINK}
  more claims: .venv/bin/python hack/demo.py claim NAME [SIZE]
               (or any kubectl with the kubeconfig above)
Press Ctrl-C to stop everything.""",
                flush=True,
            )
            while provisioner.poll() is None:
                time.sleep(0.5)
            raise SystemExit(
                f"the provisioner exited with {provisioner.returncode}; see {log_path}"
            )
        except KeyboardInterrupt:
            print("\nstopping")
        finally:
            provisioner.send_signal(signal.SIGTERM)
            provisioner.wait(timeout=20)
            KUBECONFIG_LINK.unlink(missing_ok=True)


def main() -> None:
    if len(sys.argv) >= 3 and sys.argv[1] == "claim":
        add_claim(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "1Gi")
    elif sys.argv[1:] in ([], ["--nfs", "local"]):
        demo(real_nfs=False)
    elif sys.argv[1:] == ["--nfs", "real"]:
        demo(real_nfs=True)
    else:
        raise SystemExit("usage: demo.py [--nfs local|real] | demo.py claim NAME [SIZE]")


if __name__ == "__main__":
    main()
