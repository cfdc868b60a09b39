"""`make demo`: a local control plane, the provisioner on .demo/export, and the seeds' setup.

Starts etcd, kube-apiserver and kube-controller-manager on 127.0.0.1, runs
`nfs-provisioner run` with .demo/export as the export, creates the default StorageClass `nfs`
and a claim, shows the claim Bound and its directory, then keeps running until Ctrl-C.

    python hack/demo.py                    # what `make demo` runs
    python hack/demo.py --nfs real         # `make demo NFS=real`: a real NFS server (root)
    python hack/demo.py claim NAME [SIZE]  # from a second terminal: one more claim
    python hack/demo.py delete NAME        # delete a claim; its directory is archived

One demo at a time: a second one refuses to start (a lock in .demo/) instead of taking the
first one's export and kubeconfig. ``NFS_PROVISIONER_DEMO_DIR`` puts the demo's files
somewhere other than .demo/ (the tests do).

With ``--nfs real`` the export is a directory served by NFS-Ganesha on 127.0.0.1 with
root_squash, mounted at .demo/export with fuse-nfs (hack/nfsworld); PVs name that server and
export, so a kubelet could mount them.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from devcluster import start_control_plane
from devcluster.controlplane import free_port
from devcluster.versions import REPO_ROOT
from nfsworld import NfsWorld, Squash, start_nfs_world

from nfs_provisioner.kube import ApiClient, ApiError, ConfigurationError, connect, paths
from nfs_provisioner.objects import new_claim

DEMO_DIR = Path(os.environ.get("NFS_PROVISIONER_DEMO_DIR") or REPO_ROOT / ".demo").absolute()
EXPORT = DEMO_DIR / "export"
KUBECONFIG_LINK = DEMO_DIR / "kubeconfig"
ENV_FILE = DEMO_DIR / "env"
LOCK = DEMO_DIR / "demo.lock"
_PR_SET_PDEATHSIG = 1
PROVISIONER_NAME = "cluster.local/nfs-client-provisioner"
NAMESPACE = "default"


class DemoError(Exception):
    """What stops a demo command: one line on stderr, exit code 1."""


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
    raise DemoError(
        f"claim {name} is not Bound after {timeout:.0f}s: kubectl describe pvc {name} says why"
    )


def show(api: ApiClient, name: str) -> None:
    claim = wait_bound(api, name)
    volume = api.get(paths.volume(claim["spec"]["volumeName"]))  # type: ignore[index]
    path = volume["spec"]["nfs"]["path"]
    directory = EXPORT / path.rsplit("/", 1)[-1]
    print(f"claim {NAMESPACE}/{name}: Bound to {volume['metadata']['name']}")
    print(f"  nfs: {volume['spec']['nfs']['server']}:{path}")
    print(
        f"  directory: {directory} (exists: {directory.is_dir()}, "
        f"mode {oct(directory.stat().st_mode & 0o777)})",
        flush=True,
    )


@contextmanager
def running_demo_client() -> Iterator[ApiClient]:
    """The running demo's API server, for the commands of a second terminal."""
    if not _demo_is_running() or not KUBECONFIG_LINK.exists():
        raise DemoError(f"no demo is running in {DEMO_DIR}: start one with `make demo`")
    try:
        yield client(KUBECONFIG_LINK)
    except ApiError as error:
        raise DemoError(error.message or str(error)) from None
    except ConfigurationError as error:
        raise DemoError(str(error)) from None


def add_claim(name: str, size: str) -> None:
    with running_demo_client() as api:
        create_claim(api, name, size)
        show(api, name)


def delete_claim(name: str) -> None:
    """Delete a claim and show what became of its volume: reclaimPolicy Delete with
    archiveOnDelete, so the PV goes and the directory is renamed archived-<directory>."""
    with running_demo_client() as api:
        claim = api.get(paths.claim(NAMESPACE, name))
        volume_name = (claim.get("spec") or {}).get("volumeName")
        api.delete(paths.claim(NAMESPACE, name))
        print(f"claim {NAMESPACE}/{name}: deleted")
        if not volume_name:
            return
        directory = _directory_of(api, volume_name)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                api.get(paths.volume(volume_name))
            except ApiError as error:
                if not error.is_not_found:
                    raise
                break
            time.sleep(0.3)
        else:
            raise DemoError(f"{volume_name} still exists after 60s: see {DEMO_DIR}/provisioner.log")
        print(f"  {volume_name}: deleted")
        if directory is not None:
            archived = EXPORT / f"archived-{directory}"
            print(f"  directory: {archived} (archived: {archived.is_dir()})", flush=True)


def _directory_of(api: ApiClient, volume_name: str) -> str | None:
    try:
        volume = api.get(paths.volume(volume_name))
    except ApiError:
        return None
    return str(volume["spec"]["nfs"]["path"]).rsplit("/", 1)[-1]


def _demo_is_running() -> bool:
    """Whether another process holds the demo's lock (taken and given back at once if not)."""
    try:
        with LOCK.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except FileNotFoundError:
        return False
    except BlockingIOError:
        return True
    return False


@contextmanager
def demo_lock() -> Iterator[None]:
    """One demo per directory: a second one would take the first's export and kubeconfig."""
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    lock: IO[str] = LOCK.open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "unknown"
        lock.close()
        raise DemoError(
            f"a demo is already running (pid {holder}, {DEMO_DIR}): use it from here with "
            "`hack/demo.py claim NAME` / `delete NAME`, or stop it with Ctrl-C in its terminal"
        ) from None
    try:
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield
    finally:
        lock.truncate(0)
        lock.close()


@dataclass(frozen=True)
class DemoExport:
    server: str
    path: str


def _clear_export() -> None:
    """The control plane is new every time, so what an earlier demo left means nothing: say
    so and remove it, rather than letting it look like data of this demo."""
    if EXPORT.is_dir() and not os.path.ismount(EXPORT):
        left = sorted(entry.name for entry in EXPORT.iterdir())
        if left:
            shown = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
            print(
                f"Removing what an earlier demo left in {EXPORT} ({shown}): its control plane "
                "is gone, so no volume refers to it.",
                flush=True,
            )
        shutil.rmtree(EXPORT)
    EXPORT.mkdir(parents=True, exist_ok=True)


@contextmanager
def demo_export(real_nfs: bool) -> Iterator[DemoExport]:
    """EXPORT as a plain directory, or as a fuse-nfs mount of a real NFS-Ganesha export."""
    _clear_export()
    if not real_nfs:
        yield DemoExport(server="127.0.0.1", path="/exports/demo")
        return
    world: NfsWorld
    with start_nfs_world({"demo": Squash.ROOT}) as world:
        export = world.exports["demo"]
        world.mount(export.url, at=EXPORT)
        print(world.describe(), flush=True)
        yield DemoExport(server=world.server, path=str(export.path))


def _stop_with_parent() -> None:
    """In the provisioner's process: SIGTERM when the demo dies, however it dies (a second
    Ctrl-C during the clean-up, a kill), so no provisioner outlives its demo."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _command(*words: str) -> str:
    return shlex.join(words)


def _shown(path: Path | str) -> str:
    """Relative to the current directory when inside it (as the README writes it), else whole."""
    absolute = Path(path).absolute()
    return (
        str(absolute.relative_to(Path.cwd()))
        if absolute.is_relative_to(Path.cwd())
        else str(absolute)
    )


def banner(log_path: Path, metrics_port: int, real_nfs: bool) -> str:
    demo = _shown(Path(__file__))
    python = _shown(sys.executable)
    cli = _shown(Path(sys.executable).with_name("nfs-provisioner"))
    local = [] if real_nfs else ["--local-export"]
    note = (
        "\n                   (--local-export: the demo's export is a plain directory, "
        "not an NFS mount)"
        if local
        else ""
    )
    env_file = _shown(ENV_FILE)
    return f"""
The provisioner is running (log: {_shown(log_path)}, metrics: http://127.0.0.1:{metrics_port}/metrics).
From a second terminal:
  create a claim:  {_command(python, demo, "claim", "NAME", "1Gi")}
  delete it:       {_command(python, demo, "delete", "NAME")}
                   (its directory is archived: archiveOnDelete is true)
  the settings:    . {env_file}    (KUBECONFIG, NFS_SERVER, NFS_PATH, NFS_MOUNT_PATH,
                   PROVISIONER_NAME; then any kubectl works too)
  then check it:   {_command(cli, "doctor", *local)}{note}
                   {_command(cli, "audit")}
                   {_command(cli, "adopt", "--all-namespaces", "--dry-run")}
Press Ctrl-C to stop everything."""


def demo(real_nfs: bool) -> None:
    with demo_lock(), demo_export(real_nfs) as export, start_control_plane() as plane:
        KUBECONFIG_LINK.unlink(missing_ok=True)
        KUBECONFIG_LINK.symlink_to(plane.kubeconfig)
        metrics_port = free_port()
        settings = {
            "NFS_SERVER": export.server,
            "NFS_PATH": export.path,
            "PROVISIONER_NAME": PROVISIONER_NAME,
            "KUBECONFIG": str(KUBECONFIG_LINK),
            "NFS_MOUNT_PATH": str(EXPORT),
        }
        ENV_FILE.write_text(
            "".join(f"export {key}={shlex.quote(value)}\n" for key, value in settings.items())
        )
        env = {
            **os.environ,
            **settings,
            "KUBECONFIG": str(plane.kubeconfig),
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
                preexec_fn=_stop_with_parent,
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
                raise DemoError(f"demo setup failed: {error}") from error
            print("StorageClass nfs (default) -> provisioner " + PROVISIONER_NAME)
            show(api, "minio-pvc")
            print(banner(log_path, metrics_port, real_nfs), flush=True)
            while provisioner.poll() is None:
                time.sleep(0.5)
            raise DemoError(f"the provisioner exited with {provisioner.returncode}; see {log_path}")
        except KeyboardInterrupt:
            print("\nstopping", flush=True)
        finally:
            # First what points at this demo, so a second signal cannot leave it behind.
            KUBECONFIG_LINK.unlink(missing_ok=True)
            ENV_FILE.unlink(missing_ok=True)
            provisioner.send_signal(signal.SIGTERM)
            try:
                provisioner.wait(timeout=20)
            except subprocess.TimeoutExpired:
                # Ctrl-C reaches the whole terminal group: with NFS=real the fuse-nfs mount may
                # be gone before the provisioner has finished with it.
                provisioner.kill()
                provisioner.wait()
                print(f"the provisioner did not stop within 20s and was killed; see {log_path}")


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="demo.py",
        description="The nfs-provisioner demo: a local control plane and the provisioner on "
        f"{EXPORT}. Without a command it starts the demo (one at a time).",
    )
    parser.add_argument(
        "--nfs",
        choices=("local", "real"),
        default="local",
        help="local: the export is a plain directory; real: an NFS-Ganesha export mounted "
        "with fuse-nfs (root) (default: local)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    claim = commands.add_parser("claim", help="create a claim in the running demo")
    claim.add_argument("name", metavar="NAME")
    claim.add_argument("size", metavar="SIZE", nargs="?", default="1Gi")
    delete = commands.add_parser("delete", help="delete a claim of the running demo")
    delete.add_argument("name", metavar="NAME")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    try:
        if arguments.command == "claim":
            add_claim(arguments.name, arguments.size)
        elif arguments.command == "delete":
            delete_claim(arguments.name)
        else:
            demo(real_nfs=arguments.nfs == "real")
    except DemoError as error:
        prog = f"demo.py {arguments.command}" if arguments.command else "demo.py"
        print(f"{prog}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
