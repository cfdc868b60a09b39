"""The image, run as the chart runs it: podman, the chart's container spec, in-cluster config.

For each security context the chart documents, the seed line is rendered (`helm template` with
nfs.server, storageClass.name=nfs, storageClass.defaultClass=true), the chart's
ServiceAccount, RBAC and StorageClass go into the local control plane, and the Deployment's
container spec runs under podman with the ServiceAccount's TokenRequest token: nothing else
gives it credentials, so the in-cluster configuration is what is exercised. Then: the probes
and /metrics answer; a claim of class `nfs` becomes Bound and its directory appears; a second
container stands by; `podman stop` with the pod's grace period ends the leader by SIGTERM (exit
code 0, not the 137 of the SIGKILL that follows an expired grace period) and it hands the Lease
back; the standby takes over and provisions; stopped too, it leaves the Lease free.

The capabilities the chart's README asks for per mode are proven needed and enough: CHOWN and
FOWNER for StorageClass uid/gid, DAC_OVERRIDE for removing another uid's files; and
runAsNonRoot refuses the root image, as a kubelet would.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from devcluster import ControlPlane
from devcluster.controlplane import free_port
from devcluster.pods import (
    Container,
    PodRun,
    PodSpecError,
    ServiceAccountFiles,
    memory_bytes,
)

from nfs_provisioner.kube import ApiError
from tests.chart.cluster import create_all, delete_all
from tests.chart.helm import SEED_ARGS, Rendered, render
from tests.e2e.harness import Cluster, unique, wait_for
from tests.image.conftest import NOBODY

JsonObject = dict[str, Any]
_SETUP_KINDS = (
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "StorageClass",
)
# Exit codes of `podman stop`: 0 when the SIGTERM handler ran to the end, 137 after SIGKILL.
_CLEAN_EXIT = 0


@dataclass(frozen=True)
class Variant:
    """One documented way to run the image: chart values, image, owner of the export."""

    values: Mapping[str, Any]
    export_owner: int
    nobody_image: bool = False
    # uid the provisioner's new directories belong to: the process's own.
    directory_owner: int = 0
    # What podman must be told, beyond the image and mounts (checked against the translation).
    flags: tuple[str, ...] = ()


_HARDENED_FLAGS = (
    "--read-only",
    "--security-opt",
    "no-new-privileges",
    "--cap-drop=ALL",
)
_NON_ROOT = {"runAsNonRoot": True}

VARIANTS: dict[str, Variant] = {
    # Upstream's values ({} for both contexts): root with the runtime's default capabilities,
    # as the Go image runs.
    "upstream-context": Variant(
        values={"podSecurityContext": None, "securityContext": None}, export_owner=0
    ),
    # The chart's defaults: root (root squash maps it on the server), no capability, read-only
    # root filesystem, no privilege escalation, the runtime's seccomp profile.
    "chart-defaults": Variant(values={}, export_owner=0, flags=_HARDENED_FLAGS),
    # The chart's defaults plus a non-root user chosen by the chart, on the default image.
    "non-root-user": Variant(
        values={
            "podSecurityContext": {**_NON_ROOT, "runAsUser": NOBODY, "runAsGroup": NOBODY},
        },
        export_owner=NOBODY,
        directory_owner=NOBODY,
        flags=(*_HARDENED_FLAGS, "--user", f"{NOBODY}:{NOBODY}"),
    ),
    # The image built with --build-arg UID=65534: runAsNonRoot holds by the image's USER alone.
    "uid-65534-image": Variant(
        values={"podSecurityContext": _NON_ROOT},
        export_owner=NOBODY,
        nobody_image=True,
        directory_owner=NOBODY,
        flags=_HARDENED_FLAGS,
    ),
}


def service_account_token(api: Any, namespace: str, name: str) -> str:
    request = api.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        },
    )
    return str(request["status"]["token"])


def image_tag(image: str) -> str:
    return image.rpartition(":")[2]


@dataclass
class Release:
    """The chart's cluster objects in one namespace, and its pods as podman containers."""

    cluster: Cluster
    plane: ControlPlane
    namespace: str
    rendered: Rendered
    workdir: Path
    export: Path
    values: Mapping[str, Any]
    containers: list[Container] = field(default_factory=list)

    @property
    def provisioner_name(self) -> str:
        return self.rendered.provisioner_name

    @property
    def lease_path(self) -> str:
        lease = self.provisioner_name.replace("/", "-")
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{lease}"

    def lease_holder(self) -> str | None:
        try:
            lease = self.cluster.api.get(self.lease_path)
        except ApiError as error:
            if error.is_not_found:
                return None
            raise
        return str((lease.get("spec") or {}).get("holderIdentity") or "")

    def pod(self, name: str) -> Container:
        """A pod of the Deployment, on its own metrics port (the network is the host's)."""
        rendered = render(
            self.rendered.deployment["metadata"]["labels"]["app.kubernetes.io/instance"],
            {**self.values, "metrics": {"port": free_port()}},
            namespace=self.namespace,
            args=SEED_ARGS,
        )
        account = rendered.one("ServiceAccount")["metadata"]["name"]
        files = ServiceAccountFiles.write(
            self.workdir / f"{name}-serviceaccount",
            service_account_token(self.cluster.api, self.namespace, account),
            self.plane.ca_file.read_bytes(),
            self.namespace,
            self.plane.server,
        )
        container = Container(PodRun(rendered.deployment, self.namespace, name, self.export, files))
        self.containers.append(container)
        return container.start()


def wait_ready(container: Container) -> None:
    def ready() -> bool:
        if not container.running():
            raise AssertionError(
                f"{container.run.name} exited: {container.state()}\n{container.logs()[-3000:]}"
            )
        return container.probe("readinessProbe") == 200

    wait_for(ready, timeout=60, what=f"{container.run.name} /readyz")


@contextmanager
def release(
    cluster: Cluster, plane: ControlPlane, tmp_path: Path, variant: Variant, image: str
) -> Iterator[Release]:
    namespace = cluster.create_namespace("image")
    values = {**variant.values, "image": {"tag": image_tag(image)}}
    rendered = render(unique("image"), values, namespace=namespace, args=SEED_ARGS)
    objects = [obj for obj in rendered if obj["kind"] in _SETUP_KINDS]
    cluster_scoped = [obj for obj in objects if "namespace" not in obj["metadata"]]
    export = tmp_path / "export"
    export.mkdir()
    export.chmod(0o755)
    os.chown(export, variant.export_owner, variant.export_owner)
    with ExitStack() as cleanup:
        # The seed line's class is called `nfs`: one left by an interrupted run goes first.
        delete_all(cluster.api, cluster_scoped)
        cleanup.callback(delete_all, cluster.api, cluster_scoped)
        create_all(cluster.api, objects)
        state = Release(cluster, plane, namespace, rendered, tmp_path, export, values)
        cleanup.callback(lambda: [c.remove() for c in state.containers])
        yield state


@pytest.mark.parametrize("name", list(VARIANTS))
def test_the_image_runs_as_the_chart_runs_it(
    cluster: Cluster,
    control_plane: ControlPlane,
    tmp_path: Path,
    image: str,
    request: pytest.FixtureRequest,
    name: str,
) -> None:
    variant = VARIANTS[name]
    chosen = request.getfixturevalue("nobody_image") if variant.nobody_image else image
    with release(cluster, control_plane, tmp_path, variant, chosen) as state:
        first = state.pod("first")
        # In-cluster configuration: no kubeconfig, the service host and port, the token mount.
        assert "KUBECONFIG" not in first.run.environment()
        assert chosen in first.run.argv
        for flag in variant.flags:
            assert flag in first.run.argv, (flag, first.run.argv)
        wait_ready(first)
        limits = (first.run.container.get("resources") or {}).get("limits") or {}
        assert first.memory_limit() == memory_bytes(limits.get("memory", "0"))
        assert first.probe("livenessProbe") == 200
        metrics_status, metrics = first.http("/metrics", first.run.port("metrics"))
        assert metrics_status == 200
        assert "nfs_provisioner_leader" in metrics
        wait_for(
            lambda: (state.lease_holder() or "").startswith("first_"),
            timeout=30,
            what="the first container to hold the Lease",
        )

        claim = cluster.create_claim(state.namespace, "data", storage_class="nfs")
        bound = cluster.wait_bound(state.namespace, "data")
        volume = bound["spec"]["volumeName"]
        directory = state.export / f"{state.namespace}-data-{volume}"
        assert directory.is_dir()
        assert directory.stat().st_uid == variant.directory_owner
        assert claim["spec"]["storageClassName"] == "nfs"

        second = state.pod("second")
        wait_ready(second)
        assert (state.lease_holder() or "").startswith("first_")

        ended = first.stop()
        assert ended["ExitCode"] == _CLEAN_EXIT, (ended, first.logs()[-3000:])
        assert not ended["OOMKilled"]
        released = [r for r in first.log_records() if r.get("event") == "released the leader lease"]
        assert released, first.logs()[-3000:]
        wait_for(
            lambda: (state.lease_holder() or "").startswith("second_"),
            timeout=30,
            what="the second container to take the Lease over",
        )
        cluster.create_claim(state.namespace, "more", storage_class="nfs")
        more = cluster.wait_bound(state.namespace, "more")
        assert (state.export / f"{state.namespace}-more-{more['spec']['volumeName']}").is_dir()

        ended = second.stop()
        assert ended["ExitCode"] == _CLEAN_EXIT, (ended, second.logs()[-3000:])
        # Nobody holds it now: the next pod would not wait out a lease duration.
        assert state.lease_holder() == ""


def test_run_as_non_root_refuses_a_root_image(
    cluster: Cluster, control_plane: ControlPlane, tmp_path: Path, image: str
) -> None:
    """The kubelet's check, kept by the translation: the default image runs as root."""
    variant = Variant(values={"podSecurityContext": _NON_ROOT}, export_owner=0)
    with (
        release(cluster, control_plane, tmp_path, variant, image) as state,
        pytest.raises(PodSpecError, match="runAsNonRoot"),
    ):
        state.pod("refused")


_OWNER = 1000
_CHOWN = {"securityContext": {"capabilities": {"drop": ["ALL"], "add": ["CHOWN", "FOWNER"]}}}


def test_chown_of_volumes_needs_chown_and_fowner(
    cluster: Cluster, control_plane: ControlPlane, tmp_path: Path, image: str
) -> None:
    """Class uid/gid: refused with no capability, done with CAP_CHOWN and CAP_FOWNER."""
    for values, owned in (({}, False), (_CHOWN, True)):
        variant = Variant(values=values, export_owner=0)
        workdir = tmp_path / ("with" if owned else "without")
        workdir.mkdir()
        with release(cluster, control_plane, workdir, variant, image) as state:
            pod = state.pod("owner")
            wait_ready(pod)
            owned_class = cluster.create_storage_class(
                state.provisioner_name, parameters={"uid": str(_OWNER), "gid": str(_OWNER)}
            )
            try:
                cluster.create_claim(state.namespace, "owned", storage_class=owned_class)
                if owned:
                    volume = cluster.wait_bound(state.namespace, "owned")["spec"]["volumeName"]
                    directory = state.export / f"{state.namespace}-owned-{volume}"
                    stat = directory.stat()
                    assert (stat.st_uid, stat.st_gid) == (_OWNER, _OWNER)
                    assert stat.st_mode & 0o7777 == 0o777
                else:
                    event = cluster.wait_event(
                        state.namespace,
                        "owned",
                        "ProvisioningFailed",
                        source=state.provisioner_name,
                    )
                    # EPERM from chown, named with the owner asked for.
                    assert f"uid {_OWNER}" in event["message"], event["message"]
                    assert "not permitted" in event["message"], event["message"]
                    claim = cluster.claim(state.namespace, "owned")
                    assert claim is not None
                    assert (claim.get("status") or {}).get("phase") == "Pending"
            finally:
                cluster.delete_storage_class(owned_class)
                cluster.created_classes.remove(owned_class)
            pod.stop()


def _volume_gone(cluster: Cluster, volume: str, directory: Path) -> bool:
    return cluster.volume(volume) is None and not directory.exists()


_DAC = {"securityContext": {"capabilities": {"drop": ["ALL"], "add": ["DAC_OVERRIDE"]}}}


def test_removing_other_users_files_needs_dac_override(
    cluster: Cluster, control_plane: ControlPlane, tmp_path: Path, image: str
) -> None:
    """onDelete: delete of a volume a pod filled as another uid (an export without root squash):
    root with no capability cannot remove that uid's files; with CAP_DAC_OVERRIDE it can."""
    for values, removed in (({}, False), (_DAC, True)):
        variant = Variant(values=values, export_owner=0)
        workdir = tmp_path / ("with" if removed else "without")
        workdir.mkdir()
        with release(cluster, control_plane, workdir, variant, image) as state:
            pod = state.pod("remover")
            wait_ready(pod)
            deleting = cluster.create_storage_class(
                state.provisioner_name, parameters={"onDelete": "delete"}
            )
            try:
                cluster.create_claim(state.namespace, "filled", storage_class=deleting)
                volume = cluster.wait_bound(state.namespace, "filled")["spec"]["volumeName"]
                directory = state.export / f"{state.namespace}-filled-{volume}"
                # What a pod running as uid 1000 leaves: its own directory, not writable by others.
                data = directory / "data"
                data.mkdir(mode=0o755)
                (data / "file").write_text("written by uid 1000\n")
                os.chown(data / "file", _OWNER, _OWNER)
                os.chown(data, _OWNER, _OWNER)
                cluster.delete_claim(state.namespace, "filled")
                if removed:
                    gone = partial(_volume_gone, cluster, volume, directory)
                    wait_for(gone, what=f"{volume} and its directory removed")
                else:
                    event = cluster.wait_event("default", volume, "VolumeFailedDelete")
                    assert "permission denied" in event["message"].lower(), event["message"]
                    assert (data / "file").exists()
                    assert cluster.volume(volume) is not None
            finally:
                cluster.delete_storage_class(deleting)
                cluster.created_classes.remove(deleting)
            pod.stop()
