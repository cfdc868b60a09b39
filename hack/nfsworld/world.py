"""NFS-Ganesha on 127.0.0.1 with a few exports, and fuse-nfs mounts of them.

``start_nfs_world`` starts rpcbind when nothing answers on port 111 (ganesha must register its
NFS and MOUNT ports there, and fuse-nfs asks the portmapper for them, as a kernel client and a
kubelet would), then ganesha in the foreground as a child process, on free ports. Each export
is a temporary directory whose path is also its NFSv4 pseudo path, so NFSv3 and NFSv4 clients
name the same ``server:path``. When the block ends, every fuse-nfs mount is unmounted and its
daemon gone, ganesha is stopped, rpcbind too if the world started it, and the work directory
removed; anything still mounted or running is an error. One world runs at a time on a
machine (a lock in the cache directory): rpcbind maps one NFS server per machine.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from devcluster.controlplane import free_port
from devcluster.versions import cache_root

from nfsworld.tools import NfsWorldError, Tools, ensure_tools

SERVER = "127.0.0.1"
NFS_PROGRAM = 100003
MOUNT_PROGRAM = 100005
ANONYMOUS_ID = 65534
_PR_SET_PDEATHSIG = 1
# rpcbind maps each RPC program to one server per machine: a second NFS world would take
# over the first one's mapping, and remove it when it stops. So one world at a time.
WORLD_LOCK_WAIT = 300.0


class Squash(enum.StrEnum):
    ROOT = "root_squash"
    NONE = "no_root_squash"
    ALL = "all_squash"


@dataclass(frozen=True)
class Export:
    """One export: ``path`` is both the server's backing directory and the path clients name."""

    name: str
    export_id: int
    path: Path
    squash: Squash

    @property
    def url(self) -> str:
        return nfs_url(SERVER, str(self.path))


@dataclass
class Mount:
    """A fuse-nfs mount of ``url`` at ``path``; ``pid`` is its daemon."""

    url: str
    path: Path
    pid: int


def nfs_url(server: str, path: str) -> str:
    """The NFSv3 URL fuse-nfs mounts (``?version=4`` misreports results in libnfs 4.0)."""
    return f"nfs://{server}{path}"


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _mountinfo_points() -> list[Path]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split(" ")[4]
        points.append(Path(mount_point.replace("\\040", " ")))
    return points


def _is_mounted(path: Path) -> bool:
    return path in _mountinfo_points()


def _pids_with_argument(argument: str) -> list[int]:
    """Processes whose command line has ``argument`` as one of its words."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            words = (entry / "cmdline").read_bytes().split(b"\0")
            if argument.encode() in words:
                pids.append(int(entry.name))
    return pids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _export_block(export: Export) -> str:
    return f"""
EXPORT {{
    Export_Id = {export.export_id};
    Path = "{export.path}";
    Pseudo = "{export.path}";
    Protocols = 3, 4;
    Access_Type = RW;
    Squash = {export.squash.value};
    Anonymous_Uid = {ANONYMOUS_ID};
    Anonymous_Gid = {ANONYMOUS_ID};
    SecType = sys;
    FSAL {{ Name = VFS; }}
    CLIENT {{ Clients = {SERVER}; Access_Type = RW; }}
}}
"""


@dataclass
class NfsWorld:
    """A running NFS server with exports, and the mounts made of them; see start_nfs_world."""

    tools: Tools
    workdir: Path
    exports: dict[str, Export] = field(default_factory=dict)
    nfs_port: int = field(default_factory=free_port)
    mount_port: int = field(default_factory=free_port)
    mounts: list[Mount] = field(default_factory=list)
    # Every mount point this world used, to check that none is still mounted at the end.
    mount_points: set[Path] = field(default_factory=set)
    ganesha: subprocess.Popen[bytes] | None = None
    rpcbind: subprocess.Popen[bytes] | None = None
    # A tmpfs of this size (``mount -o size=``) under every export, so a test can fill it or
    # shrink it (``resize_exports``); None: the exports are plain directories.
    exports_size: str | None = None

    server = SERVER

    @property
    def exports_root(self) -> Path:
        return self.workdir / "exports"

    @property
    def config_path(self) -> Path:
        return self.workdir / "ganesha.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "ganesha.log"

    def add_exports(self, squashes: Mapping[str, Squash]) -> None:
        root = self.exports_root
        root.mkdir(exist_ok=True)
        if self.exports_size is not None and not _is_mounted(root):
            self._mount_options_on_exports(f"size={self.exports_size}", mount=True)
        root.chmod(0o755)
        for name, squash in squashes.items():
            path = root / name
            path.mkdir()
            # The export's root is writable by all, as an administrator sets it up for a
            # provisioner that meets root squash (its root becomes the anonymous user).
            path.chmod(0o777)
            self.exports[name] = Export(name, len(self.exports) + 1, path, Squash(squash))

    def write_config(self) -> None:
        recovery = self.workdir / "recovery"
        recovery.mkdir(exist_ok=True)
        core = f"""
NFS_CORE_PARAM {{
    Protocols = 3, 4;
    NFS_Port = {self.nfs_port};
    MNT_Port = {self.mount_port};
    Bind_addr = {SERVER};
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
}}
NFSV4 {{ Graceless = true; RecoveryBackend = fs; RecoveryRoot = "{recovery}"; }}
NFS_KRB5 {{ Active_krb5 = false; }}
"""
        self.config_path.write_text(core + "".join(map(_export_block, self.exports.values())))

    def _mount_options_on_exports(self, options: str, *, mount: bool = False) -> None:
        argv = ["mount", "-t", "tmpfs", "-o", f"{options},mode=0755", "nfsworld-exports"]
        if not mount:
            argv = ["mount", "-o", f"remount,{options}"]
        result = subprocess.run(
            [*argv, str(self.exports_root)], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise NfsWorldError(
                f"cannot {'mount' if mount else 'remount'} the exports' tmpfs with {options}: "
                f"{result.stderr.strip()}"
            )

    def resize_exports(self, *, size: str, inodes: str) -> None:
        """Remount the exports' tmpfs with a new size and inode count (``exports_size``
        worlds only): at or under what is in use, every new file or directory fails ENOSPC.
        The kernel refuses fewer inodes than are in use (NfsWorldError)."""
        if self.exports_size is None:
            raise NfsWorldError("resize_exports needs a world started with exports_size")
        self._mount_options_on_exports(f"size={size},nr_inodes={inodes}")

    # --- rpcbind -------------------------------------------------------------------------

    def _portmapper_answers(self) -> bool:
        result = subprocess.run(
            [str(self.tools.rpcinfo), "-p", SERVER], capture_output=True, text=True, check=False
        )
        return result.returncode == 0

    def registered_ports(self) -> dict[int, set[int]]:
        """RPC program -> TCP ports the portmapper on 127.0.0.1 maps it to."""
        result = subprocess.run(
            [str(self.tools.rpcinfo), "-p", SERVER], capture_output=True, text=True, check=False
        )
        ports: dict[int, set[int]] = {}
        for line in result.stdout.splitlines()[1:]:
            words = line.split()
            if len(words) >= 4 and words[2] == "tcp":
                ports.setdefault(int(words[0]), set()).add(int(words[3]))
        return ports

    def ensure_rpcbind(self) -> None:
        if self._portmapper_answers():
            return
        self.rpcbind = subprocess.Popen(
            [str(self.tools.rpcbind), "-f", "-w"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait(self._portmapper_answers, "rpcbind to answer on port 111", self.rpcbind)

    # --- NFS-Ganesha ---------------------------------------------------------------------

    def _ganesha_registered(self) -> bool:
        ports = self.registered_ports()
        return self.nfs_port in ports.get(NFS_PROGRAM, set()) and self.mount_port in ports.get(
            MOUNT_PROGRAM, set()
        )

    def _ganesha_serving(self) -> bool:
        if not self._ganesha_registered():
            return False
        with socket.socket() as sock:
            sock.settimeout(1)
            return sock.connect_ex((SERVER, self.nfs_port)) == 0

    def start_server(self) -> None:
        """Start ganesha (again, after stop_server: the same ports and exports)."""
        if self.ganesha is not None and self.ganesha.poll() is None:
            return
        self.write_config()
        with self.log_path.open("ab") as log:
            self.ganesha = subprocess.Popen(
                [
                    str(self.tools.ganesha),
                    "-F",
                    "-f",
                    str(self.config_path),
                    "-L",
                    str(self.log_path),
                    "-p",
                    str(self.workdir / "ganesha.pid"),
                    "-N",
                    "NIV_EVENT",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
                cwd=self.workdir,
            )
        self._wait(
            self._ganesha_serving,
            f"NFS-Ganesha to serve on {SERVER}:{self.nfs_port} and register with rpcbind "
            f"(NFS {self.nfs_port}, MOUNT {self.mount_port}; another server registered instead?)",
            self.ganesha,
        )

    def stop_server(self, *, kill: bool = False) -> None:
        """Stop ganesha: for its clients, a server outage until start_server."""
        process = self.ganesha
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def server_running(self) -> bool:
        return self.ganesha is not None and self.ganesha.poll() is None

    def _wait(
        self,
        condition: Callable[[], bool],
        what: str,
        process: subprocess.Popen[bytes],
        timeout: float = 30.0,
    ) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if process.poll() is not None:
                raise NfsWorldError(
                    f"gave up waiting for {what}: the process exited with "
                    f"{process.returncode}\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise NfsWorldError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.1)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    # --- fuse-nfs mounts -----------------------------------------------------------------

    def mount(self, url: str, at: Path | None = None) -> Mount:
        """Mount ``url`` (``nfs://server/path``) with fuse-nfs, as root, open to every user.

        Each caller's uid and gid go to the server as AUTH_SYS credentials, as through a kernel
        NFS mount (supplementary groups do not).
        """
        if at is None:
            at = Path(tempfile.mkdtemp(prefix="mnt-", dir=self.workdir))
        at.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [str(self.tools.fuse_nfs), "-n", url, "-m", str(at), "-a"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if result.returncode != 0 or not _is_mounted(at):
            raise NfsWorldError(
                f"fuse-nfs could not mount {url} at {at} (exit {result.returncode}): "
                f"{result.stdout}{result.stderr}".strip()
            )
        pids = _pids_with_argument(str(at))
        if len(pids) != 1:
            raise NfsWorldError(f"expected one fuse-nfs daemon for {at}, found {pids}")
        mount = Mount(url, at, pids[0])
        self.mounts.append(mount)
        self.mount_points.add(at)
        return mount

    def mount_export(self, name: str, subdirectory: str = "") -> Mount:
        export = self.exports[name]
        path = f"{export.path}/{subdirectory}" if subdirectory else str(export.path)
        return self.mount(nfs_url(SERVER, path))

    def unmount(self, mount: Mount) -> None:
        """Unmount and wait for the daemon to end; a busy or hung mount is detached and its
        daemon killed, which fails the calls still waiting on it with ENOTCONN."""
        if _is_mounted(mount.path):
            result = subprocess.run(
                [str(self.tools.fusermount), "-u", str(mount.path)],
                capture_output=True,
                check=False,
                timeout=30,
            )
            if result.returncode != 0:
                subprocess.run(
                    [str(self.tools.fusermount), "-u", "-z", str(mount.path)],
                    capture_output=True,
                    check=False,
                    timeout=30,
                )
        if not _wait_gone(mount.pid, 10):
            with contextlib.suppress(ProcessLookupError):
                os.kill(mount.pid, signal.SIGKILL)
            _wait_gone(mount.pid, 10)
        if mount in self.mounts:
            self.mounts.remove(mount)

    # --- the whole world -----------------------------------------------------------------

    def leftovers(self) -> list[str]:
        """What is still mounted or running that this world started."""
        found = [
            f"mounted: {p}"
            for p in _mountinfo_points()
            if self.workdir in p.parents or p in self.mount_points
        ]
        found += [f"fuse-nfs daemon {m.pid} of {m.path}" for m in self.mounts if _alive(m.pid)]
        for name, process in (("ganesha.nfsd", self.ganesha), ("rpcbind", self.rpcbind)):
            if process is not None and process.poll() is None:
                found.append(f"{name} (pid {process.pid})")
        return found

    def stop(self) -> None:
        for mount in list(self.mounts):
            self.unmount(mount)
        self.stop_server()
        if self.exports_size is not None and _is_mounted(self.exports_root):
            subprocess.run(["umount", str(self.exports_root)], capture_output=True, check=False)
        if self.rpcbind is not None and self.rpcbind.poll() is None:
            self.rpcbind.terminate()
            try:
                self.rpcbind.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.rpcbind.kill()
                self.rpcbind.wait()

    def describe(self) -> str:
        lines = [f"NFS-Ganesha on {SERVER}: NFS port {self.nfs_port}, MOUNT port {self.mount_port}"]
        lines += [f"  export {e.path} ({e.squash.value})" for e in self.exports.values()]
        lines += [f"  mount  {m.url} at {m.path} (fuse-nfs pid {m.pid})" for m in self.mounts]
        return "\n".join(lines)


@contextlib.contextmanager
def _one_world_at_a_time() -> Iterator[None]:
    timeout = WORLD_LOCK_WAIT
    path = cache_root() / "nfsworld.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as lock:
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                lock.seek(0)
                holder = lock.read().strip() or "?"
                if time.monotonic() > deadline:
                    raise NfsWorldError(
                        f"another NFS world (pid {holder}, e.g. `make demo NFS=real` or another "
                        f"test run) still holds {path} after {timeout:.0f}s: rpcbind maps one NFS "
                        "server per machine, so only one world runs at a time; stop the other"
                    ) from None
                if not told:
                    print(
                        f"[nfsworld] waiting for the NFS world of pid {holder} to end "
                        "(rpcbind maps one NFS server per machine)",
                        file=sys.stderr,
                        flush=True,
                    )
                    told = True
                time.sleep(1)
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def start_nfs_world(
    exports: Mapping[str, Squash] | None = None,
    *,
    tools: Tools | None = None,
    workdir: Path | None = None,
    exports_size: str | None = None,
) -> Iterator[NfsWorld]:
    """Run rpcbind, ganesha and the mounts made in the block; always stop and check them.

    ``exports`` maps export names to their squash (default: one ``export`` with root_squash);
    ``exports_size`` puts them on a tmpfs of that size, which ``resize_exports`` can fill.
    """
    if os.geteuid() != 0:
        raise NfsWorldError(
            "the real NFS world needs root: NFS-Ganesha serves files as every uid, and its "
            "exports are created and checked on the server's side"
        )
    tools = tools or ensure_tools()
    with (
        _one_world_at_a_time(),
        _running_world(tools, workdir, exports, exports_size) as world,
    ):
        yield world


@contextlib.contextmanager
def _running_world(
    tools: Tools,
    workdir: Path | None,
    exports: Mapping[str, Squash] | None,
    exports_size: str | None = None,
) -> Iterator[NfsWorld]:
    owned = workdir is None
    directory = Path(tempfile.mkdtemp(prefix="nfs-provisioner-nfs-")) if owned else workdir
    assert directory is not None
    directory.chmod(0o755)
    world = NfsWorld(tools=tools, workdir=directory, exports_size=exports_size)
    previous = signal.getsignal(signal.SIGTERM)
    if previous in (signal.SIG_DFL, None):
        # Turn SIGTERM into an exception so the finally block below still runs.
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        world.add_exports(exports or {"export": Squash.ROOT})
        world.ensure_rpcbind()
        world.start_server()
        yield world
    finally:
        world.stop()
        if previous in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        left = world.leftovers()
        if left:
            print(f"[nfsworld] left behind: {'; '.join(left)}", file=sys.stderr, flush=True)
        elif owned:
            shutil.rmtree(directory, ignore_errors=True)
    if left:
        raise NfsWorldError(f"the NFS world left behind: {'; '.join(left)}")


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
