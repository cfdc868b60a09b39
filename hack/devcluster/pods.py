"""The chart's provisioner pod, run by podman as a kubelet would run it on a node.

Used by tests/image (which asserts) and benchmarks/image.py (which measures).

`PodRun.argv` turns the rendered Deployment's pod template into one `podman run`: the image and
its command/args, the environment (the downward API's namespace resolved), the merged pod and
container securityContext, the memory and CPU limits, the export mounted where the container's
volumeMount says, and the ServiceAccount's token, CA and namespace at the path the in-cluster
configuration reads, with KUBERNETES_SERVICE_HOST/PORT naming the local API server. A
securityContext field without a translation fails the run rather than being dropped.

The network is the host's (the API server listens on 127.0.0.1), so two pods on it need two
metrics ports, as two hostNetwork pods on one node would.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from devcluster.image import PODMAN, RUN_LIMITS

JsonObject = dict[str, Any]
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# Kubernetes' default when the pod spec does not set it.
DEFAULT_GRACE_PERIOD = 30
# The runtime's default seccomp profile: what seccompProfile RuntimeDefault selects.
RUNTIME_DEFAULT_SECCOMP = "/usr/share/containers/seccomp.json"
# Pod-level fields podman can express, and container-level ones (which win on overlap).
_POD_FIELDS = {
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "fsGroup",
    "supplementalGroups",
    "seccompProfile",
}
_CONTAINER_FIELDS = {
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "readOnlyRootFilesystem",
    "allowPrivilegeEscalation",
    "capabilities",
    "privileged",
    "seccompProfile",
}
_MEMORY_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9}


class PodSpecError(AssertionError):
    """The pod spec asks for something this translation (or a kubelet) would refuse."""


def container_env(deployment: Mapping[str, Any], namespace: str) -> dict[str, str]:
    """The container's environment as the kubelet sets it (the downward API resolved)."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for variable in container["env"]:
        if "value" in variable:
            env[variable["name"]] = str(variable["value"])
            continue
        field_path = variable["valueFrom"]["fieldRef"]["fieldPath"]
        if field_path != "metadata.namespace":
            raise PodSpecError(f"no translation for the downward API field {field_path}")
        env[variable["name"]] = namespace
    return env


def memory_bytes(quantity: str) -> int:
    for suffix, factor in _MEMORY_UNITS.items():
        if quantity.endswith(suffix):
            return int(float(quantity[: -len(suffix)]) * factor)
    return int(quantity)


def cpu_cores(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def image_user(image: str) -> str:
    """The image's USER (``uid[:gid]``, empty for root), as podman reports it."""
    result = subprocess.run(
        [*PODMAN, "image", "inspect", "--format", "{{.Config.User}}", image],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


@dataclass(frozen=True)
class ServiceAccountFiles:
    """The projected service-account volume: token, ca.crt and namespace."""

    directory: Path
    api_host: str
    api_port: int

    @classmethod
    def write(
        cls, directory: Path, token: str, ca: bytes, namespace: str, server: str
    ) -> ServiceAccountFiles:
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o755)
        for name, content in (
            ("token", token.encode()),
            ("ca.crt", ca),
            ("namespace", namespace.encode()),
        ):
            path = directory / name
            path.write_bytes(content)
            # Readable by any uid, as the kubelet's projected volume is for the pod's user.
            path.chmod(0o644)
        url = urlsplit(server)
        assert url.hostname and url.port, server
        return cls(directory, url.hostname, url.port)


@dataclass
class PodRun:
    """One run of the Deployment's pod template as a podman container."""

    deployment: JsonObject
    namespace: str
    name: str
    export: Path
    service_account: ServiceAccountFiles
    argv: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.argv = self._argv()

    @property
    def pod(self) -> JsonObject:
        return dict(self.deployment["spec"]["template"]["spec"])

    @property
    def container(self) -> JsonObject:
        (container,) = self.pod["containers"]
        return dict(container)

    @property
    def grace_period(self) -> int:
        return int(self.pod.get("terminationGracePeriodSeconds", DEFAULT_GRACE_PERIOD))

    def security_context(self) -> JsonObject:
        """The effective securityContext: the container's fields over the pod's."""
        pod_level = dict(self.pod.get("securityContext") or {})
        container_level = dict(self.container.get("securityContext") or {})
        unknown = (set(pod_level) - _POD_FIELDS) | (set(container_level) - _CONTAINER_FIELDS)
        if unknown:
            raise PodSpecError(f"no podman translation for securityContext {sorted(unknown)}")
        return {**pod_level, **container_level}

    def probe(self, kind: str) -> tuple[str, int]:
        """(path, port) of the container's livenessProbe or readinessProbe."""
        http_get = self.container[kind]["httpGet"]
        return str(http_get["path"]), self.port(http_get["port"])

    def port(self, name_or_number: str | int) -> int:
        if isinstance(name_or_number, int):
            return name_or_number
        for port in self.container["ports"]:
            if port.get("name") == name_or_number:
                return int(port["containerPort"])
        raise PodSpecError(f"no container port named {name_or_number!r}")

    def _security_flags(self) -> list[str]:
        context = self.security_context()
        flags: list[str] = []
        image = str(self.container["image"])
        uid = context.get("runAsUser")
        gid = context.get("runAsGroup")
        if uid is not None:
            flags += ["--user", f"{uid}:{gid if gid is not None else uid}"]
        elif gid is not None:
            raise PodSpecError("runAsGroup without runAsUser has no podman translation")
        if context.get("runAsNonRoot"):
            # The kubelet's check: an explicit non-zero runAsUser, else a numeric non-zero
            # USER in the image; anything else is refused before the container starts.
            user = str(uid) if uid is not None else image_user(image).split(":")[0]
            if not user.isdigit() or int(user) == 0:
                raise PodSpecError(f"runAsNonRoot, but {image} runs as user {user or 'root'!r}")
        for group in [context.get("fsGroup"), *(context.get("supplementalGroups") or [])]:
            if group is not None:
                flags += ["--group-add", str(group)]
        if context.get("readOnlyRootFilesystem"):
            # No tmpfs on /tmp, /run, /var/tmp: a kubelet adds none either.
            flags += ["--read-only", "--read-only-tmpfs=false"]
        if context.get("allowPrivilegeEscalation") is False:
            flags += ["--security-opt", "no-new-privileges"]
        if context.get("privileged"):
            flags.append("--privileged")
        capabilities = context.get("capabilities") or {}
        unknown = set(capabilities) - {"add", "drop"}
        if unknown:
            raise PodSpecError(f"no podman translation for capabilities {sorted(unknown)}")
        flags += [f"--cap-drop={cap}" for cap in capabilities.get("drop") or []]
        flags += [f"--cap-add={cap}" for cap in capabilities.get("add") or []]
        seccomp = (context.get("seccompProfile") or {}).get("type", "RuntimeDefault")
        if seccomp == "RuntimeDefault":
            flags += ["--security-opt", f"seccomp={RUNTIME_DEFAULT_SECCOMP}"]
        elif seccomp == "Unconfined":
            flags += ["--security-opt", "seccomp=unconfined"]
        else:
            raise PodSpecError(f"no podman translation for seccompProfile {seccomp!r}")
        return flags

    def _resource_flags(self) -> list[str]:
        limits = (self.container.get("resources") or {}).get("limits") or {}
        flags = []
        if "memory" in limits:
            # No swap beyond the limit, as on a node with swap off.
            memory = memory_bytes(str(limits["memory"]))
            flags += ["--memory", str(memory), "--memory-swap", str(memory)]
        if "cpu" in limits:
            flags += ["--cpus", str(cpu_cores(str(limits["cpu"])))]
        return flags

    def _volume_flags(self) -> list[str]:
        volumes = {volume["name"]: volume for volume in self.pod["volumes"]}
        flags = []
        for mount in self.container.get("volumeMounts") or []:
            volume = volumes[mount["name"]]
            if "nfs" not in volume:
                raise PodSpecError(f"volume {mount['name']!r} is not the export: {volume}")
            # The kubelet's NFS mount of the export, here a directory of the host.
            flags += ["--volume", f"{self.export}:{mount['mountPath']}"]
        # Read-only, like the projected service-account volume.
        flags += ["--volume", f"{self.service_account.directory}:{SERVICE_ACCOUNT_DIR}:ro"]
        return flags

    def environment(self) -> dict[str, str]:
        return {
            **container_env(self.deployment, self.namespace),
            # What the kubelet sets for the `kubernetes` Service; here the local API server.
            "KUBERNETES_SERVICE_HOST": self.service_account.api_host,
            "KUBERNETES_SERVICE_PORT": str(self.service_account.api_port),
        }

    def _argv(self) -> list[str]:
        container = self.container
        argv = [
            *PODMAN,
            "run",
            "--detach",
            "--name",
            self.name,
            # The pod's name is its hostname, and the provisioner's identity starts with it.
            "--hostname",
            self.name,
            "--network",
            "host",
            *RUN_LIMITS,
            *self._security_flags(),
            *self._resource_flags(),
            *self._volume_flags(),
        ]
        for key, value in self.environment().items():
            argv += ["--env", f"{key}={value}"]
        if container.get("command"):
            argv += ["--entrypoint", json.dumps(container["command"])]
        if container["imagePullPolicy"] == "Always":
            raise PodSpecError("imagePullPolicy Always: no registry is reachable here")
        argv.append(str(container["image"]))
        argv += [str(arg) for arg in container.get("args") or []]
        return argv


@dataclass
class Container:
    """A started PodRun: its endpoints, logs, and how it ended."""

    run: PodRun
    started_at: float = 0.0

    def start(self) -> Container:
        subprocess.run([*PODMAN, "rm", "--force", self.run.name], capture_output=True, check=False)
        self.started_at = time.monotonic()
        result = subprocess.run(self.run.argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise AssertionError(f"podman run failed:\n{result.stderr}")
        return self

    def http(self, path: str, port: int) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as error:
            return int(error.code), error.read().decode(errors="replace")
        except OSError:
            return 0, ""

    def probe(self, kind: str) -> int:
        """Status of the container's livenessProbe or readinessProbe, at its path and port."""
        path, port = self.run.probe(kind)
        return self.http(path, port)[0]

    def state(self) -> JsonObject:
        result = subprocess.run(
            [*PODMAN, "inspect", "--format", "{{json .State}}", self.run.name],
            capture_output=True,
            text=True,
            check=True,
        )
        return dict(json.loads(result.stdout))

    def memory_limit(self) -> int:
        """The memory limit the runtime applied (0: none)."""
        result = subprocess.run(
            [*PODMAN, "inspect", "--format", "{{.HostConfig.Memory}}", self.run.name],
            capture_output=True,
            text=True,
            check=True,
        )
        return int(result.stdout.strip())

    def running(self) -> bool:
        return bool(self.state()["Running"])

    def logs(self) -> str:
        result = subprocess.run(
            [*PODMAN, "logs", self.run.name], capture_output=True, text=True, check=False
        )
        return result.stdout + result.stderr

    def log_records(self) -> list[JsonObject]:
        records = []
        for line in self.logs().splitlines():
            with suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    records.append(record)
        return records

    def stop(self) -> JsonObject:
        """`podman stop` with the pod's grace period: SIGTERM, then SIGKILL when it is over."""
        subprocess.run(
            [*PODMAN, "stop", "--time", str(self.run.grace_period), self.run.name],
            capture_output=True,
            check=False,
        )
        return self.state()

    def remove(self) -> None:
        subprocess.run([*PODMAN, "rm", "--force", self.run.name], capture_output=True, check=False)
