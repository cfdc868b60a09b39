"""Least privilege, proven: the chart's RBAC is enough, and every verb in it is needed.

The provisioner runs out of cluster with a token of the chart's ServiceAccount (TokenRequest;
the local API server authorizes with RBAC), its environment taken from the chart's Deployment.
It goes through a claim's whole life: caches synced, Lease held and renewed, claim provisioned,
events posted (and a repeated one counted), claim grown and its volume resized, volume archived
and deleted. With any one verb
taken out of the ClusterRole or Role, the step that needs it fails, and the provisioner's log
shows the API server refusing exactly that verb on that resource.

Where the API server streams lists (WatchList, on by default in the pinned v1.36), the caches
sync from a watch and never list; `list` is what they need on a server that cannot stream, so
those cases run on a control plane with WatchList off.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from devcluster import ControlPlane, ensure_binaries, start_control_plane

from nfs_provisioner.kube import ApiError
from tests.chart.cluster import (
    container_env,
    create_all,
    delete_all,
    like_the_pod,
    service_account_kubeconfig,
)
from tests.chart.helm import Rendered, render
from tests.e2e.harness import Cluster, Provisioner, unique, wait_for

JsonObject = dict[str, Any]
Verb = tuple[str, str]  # (resource, verb)

# Short retry timings so that every failing case ends in seconds. The renew deadline stays
# long enough for a leader that cannot renew (no `update`) to live through the READY step.
_FAST = {
    "NFS_PROVISIONER_LEASE_DURATION": "6s",
    "NFS_PROVISIONER_RENEW_DEADLINE": "5s",
    "NFS_PROVISIONER_RETRY_PERIOD": "0.2s",
    "NFS_PROVISIONER_RETRY_BASE_DELAY": "0.2s",
    "NFS_PROVISIONER_RETRY_MAX_DELAY": "2s",
}
_RBAC_KINDS = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
_STEP_TIMEOUT = 45.0
# After the refusal shows in the log, retries must not get around it for this long either.
_STILL_FAILING = 2.0
# The claim's request before and after the RESIZE step.
_SIZE, _GROWN = "1Mi", "2Mi"


class Step(enum.Enum):
    READY = "claim, volume and class caches synced (/readyz)"
    LEADER = "Lease acquired and renewed"
    PROVISION = "claim Bound to a new PersistentVolume"
    EVENTS = "Provisioning and ProvisioningSucceeded events on the claim"
    REPEATED_EVENT = "a repeated failure event counted, not duplicated"
    RESIZE = "bound claim grown: its status records the new capacity"
    DELETE = "released volume archived and its PersistentVolume deleted"


# Which step needs which verb; every verb the chart grants must be here (checked below).
NEEDED_FOR: dict[Verb, Step] = {
    ("persistentvolumeclaims", "list"): Step.READY,
    ("persistentvolumeclaims", "watch"): Step.READY,
    ("persistentvolumes", "list"): Step.READY,
    ("persistentvolumes", "watch"): Step.READY,
    ("storageclasses", "list"): Step.READY,
    ("storageclasses", "watch"): Step.READY,
    ("leases", "get"): Step.LEADER,
    ("leases", "create"): Step.LEADER,
    ("leases", "update"): Step.LEADER,
    ("persistentvolumes", "create"): Step.PROVISION,
    ("events", "create"): Step.EVENTS,
    ("events", "patch"): Step.REPEATED_EVENT,
    ("persistentvolumeclaims/status", "patch"): Step.RESIZE,
    ("persistentvolumes", "patch"): Step.RESIZE,
    ("persistentvolumes", "get"): Step.DELETE,
    ("persistentvolumes", "delete"): Step.DELETE,
}


def granted(rendered: Rendered) -> set[Verb]:
    return {
        (resource, verb)
        for kind in ("ClusterRole", "Role")
        for rule in rendered.one(kind)["rules"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def without(obj: JsonObject, removed: Verb) -> JsonObject:
    """``obj`` with one verb on one resource taken out, if it is a ClusterRole or Role."""
    if obj["kind"] not in ("ClusterRole", "Role"):
        return obj
    resource, verb = removed
    rules = []
    for rule in obj["rules"]:
        verbs = rule["verbs"]
        if resource in rule["resources"] and verb in verbs:
            # Each rule of the chart names one resource, so this narrows nothing else.
            assert rule["resources"] == [resource]
            verbs = [v for v in verbs if v != verb]
        if verbs:
            rules.append({**rule, "verbs": verbs})
    return {**obj, "rules": rules}


class _Unwaited(Provisioner):
    """start() returns once the process runs: readiness is one of the steps judged here."""

    def _ready(self) -> bool:
        return True


@dataclass
class Lifecycle:
    cluster: Cluster
    provisioner: Provisioner
    namespace: str
    storage_class: str
    broken_class: str
    lease: str
    export: Path
    volume: str = ""

    def start(self, step: Step) -> None:
        if step is Step.PROVISION:
            self.cluster.create_claim(
                self.namespace, "data", storage_class=self.storage_class, size=_SIZE
            )
        elif step is Step.REPEATED_EVENT:
            self.cluster.create_claim(self.namespace, "broken", storage_class=self.broken_class)
        elif step is Step.RESIZE:
            self.cluster.patch_claim(
                self.namespace, "data", {"spec": {"resources": {"requests": {"storage": _GROWN}}}}
            )
        elif step is Step.DELETE:
            claim = self.cluster.claim(self.namespace, "data")
            assert claim is not None
            self.volume = claim["spec"]["volumeName"]
            self.cluster.delete_claim(self.namespace, "data")

    def done(self, step: Step) -> bool:
        checks: dict[Step, Callable[[], bool]] = {
            Step.READY: self._stays_ready,
            Step.LEADER: self._lease_renewed,
            Step.PROVISION: lambda: self._claim_phase("data") == "Bound",
            Step.EVENTS: lambda: (
                {"Provisioning", "ProvisioningSucceeded"}
                <= {e["reason"] for e in self.cluster.events(self.namespace, name="data")}
            ),
            Step.REPEATED_EVENT: lambda: any(
                e.get("count", 1) >= 2
                for e in self.cluster.events(
                    self.namespace, name="broken", reason="ProvisioningFailed"
                )
            ),
            Step.RESIZE: lambda: self._claim_capacity("data") == _GROWN,
            Step.DELETE: self._archived_and_deleted,
        }
        return checks[step]()

    def refused(self, removed: Verb) -> bool:
        """The API server refused the provisioner exactly this verb on this resource."""
        resource, verb = removed
        needle = f'cannot {verb} resource "{resource}"'
        return any(
            needle in str(value)
            for record in self.provisioner.log_records()
            for value in record.values()
        )

    def _stays_ready(self) -> bool:
        # A forbidden watch fails a moment after its list succeeded: ready twice, 1 s apart.
        if self.provisioner.http_status("/readyz") != 200:
            return False
        time.sleep(1.0)
        return self.provisioner.http_status("/readyz") == 200

    def _lease_renewed(self) -> bool:
        try:
            lease = self.cluster.api.get(
                f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{self.lease}"
            )
        except ApiError as error:
            if error.is_not_found:
                return False
            raise
        spec = lease.get("spec") or {}
        return bool(spec.get("holderIdentity")) and spec.get("renewTime") != spec.get("acquireTime")

    def _claim_phase(self, name: str) -> str | None:
        claim = self.cluster.claim(self.namespace, name)
        return None if claim is None else (claim.get("status") or {}).get("phase")

    def _claim_capacity(self, name: str) -> str | None:
        claim = self.cluster.claim(self.namespace, name)
        status = (claim or {}).get("status") or {}
        return (status.get("capacity") or {}).get("storage")

    def _archived_and_deleted(self) -> bool:
        archive = self.export / f"archived-{self.namespace}-data-{self.volume}"
        return self.cluster.volume(self.volume) is None and archive.is_dir()


def _refused_or_done(lifecycle: Lifecycle, step: Step, removed: Verb) -> str | None:
    if lifecycle.refused(removed):
        return "refused"
    return "done" if lifecycle.done(step) else None


def run_lifecycle(lifecycle: Lifecycle, removed: Verb | None) -> None:
    """Every step succeeds; with ``removed``, the step that needs it fails (and only it)."""
    failing = NEEDED_FOR[removed] if removed else None
    for step in Step:
        lifecycle.start(step)
        if removed is None or step is not failing:
            wait_for(partial(lifecycle.done, step), timeout=_STEP_TIMEOUT, what=step.value)
            continue
        outcome = wait_for(
            partial(_refused_or_done, lifecycle, step, removed),
            timeout=_STEP_TIMEOUT,
            what=f"{step.value}, or the API server refusing {removed}",
        )
        assert outcome == "refused", f"{step.value} succeeded without {removed}"
        time.sleep(_STILL_FAILING)
        assert not lifecycle.done(step), f"{step.value} succeeded later without {removed}"
        return
    assert removed is None, f"every step succeeded without {removed}"


def _delete_volumes_of(cluster: Cluster, provisioner_name: str) -> None:
    for volume in cluster.volumes():
        annotations = volume["metadata"].get("annotations") or {}
        if annotations.get("pv.kubernetes.io/provisioned-by") == provisioner_name:
            cluster.delete_volume(volume["metadata"]["name"])


@contextmanager
def chart_rbac(
    cluster: Cluster, plane: ControlPlane, export: Path, removed: Verb | None
) -> Iterator[Lifecycle]:
    """The chart's ServiceAccount, RBAC (less ``removed``) and class, and a provisioner."""
    namespace = cluster.create_namespace("rbac")
    release = unique("rbac")
    values = {
        "nfs": {"server": "nfs.example.test", "path": "/exports/volumes"},
        # The chart's default, spelled out: the API server lets a claim grow only then.
        "storageClass": {"name": unique("nfs"), "allowVolumeExpansion": True},
    }
    rendered = render(release, values, namespace=namespace)
    env = container_env(rendered.deployment, namespace)
    objects = [
        without(obj, removed) if removed else obj
        for obj in rendered
        if obj["kind"] in (*_RBAC_KINDS, "ServiceAccount", "StorageClass")
    ]
    with ExitStack() as cleanup:
        # Namespaced objects go with the namespace; cluster-scoped ones must be deleted.
        cleanup.callback(
            delete_all, cluster.api, [o for o in objects if "namespace" not in o["metadata"]]
        )
        cleanup.callback(_delete_volumes_of, cluster, env["PROVISIONER_NAME"])
        create_all(cluster.api, objects)
        broken_class = cluster.create_storage_class(
            env["PROVISIONER_NAME"], parameters={"archiveOnDelete": "maybe"}
        )
        cleanup.callback(cluster.delete_storage_class, broken_class)
        kubeconfig = service_account_kubeconfig(
            cluster.api,
            plane,
            namespace,
            rendered.one("ServiceAccount")["metadata"]["name"],
            export.parent / f"{release}.kubeconfig",
        )
        provisioner = like_the_pod(
            plane, env, export, kubeconfig=kubeconfig, tuning=_FAST, kind=_Unwaited
        )
        cleanup.callback(provisioner.stop)
        provisioner.start()
        yield Lifecycle(
            cluster=cluster,
            provisioner=provisioner,
            namespace=namespace,
            storage_class=rendered.one("StorageClass")["metadata"]["name"],
            broken_class=broken_class,
            lease=env["PROVISIONER_NAME"].replace("/", "-"),
            export=export,
        )


def test_every_granted_verb_has_a_step() -> None:
    assert granted(render("r", {"nfs": {"server": "x"}})) == set(NEEDED_FOR)


def test_chart_rbac_is_enough_for_the_whole_lifecycle(
    cluster: Cluster, control_plane: ControlPlane, export: Path
) -> None:
    with chart_rbac(cluster, control_plane, export, removed=None) as lifecycle:
        run_lifecycle(lifecycle, removed=None)
        records = lifecycle.provisioner.log_records()
        assert not [r for r in records if "forbidden" in str(r).lower()]


# The caches' initial lists: made only where the server cannot stream them.
_LISTED_WITHOUT_STREAMING = {
    ("persistentvolumeclaims", "list"),
    ("persistentvolumes", "list"),
    ("storageclasses", "list"),
}


@pytest.fixture(scope="module")
def paged_control_plane() -> Iterator[ControlPlane]:
    """A control plane whose API server has no streaming lists (WatchList off)."""
    with start_control_plane(
        binaries=ensure_binaries(), apiserver_args=("--feature-gates=WatchList=false",)
    ) as plane:
        yield plane


@pytest.mark.parametrize(
    "removed",
    list(NEEDED_FOR),
    ids=[f"{verb}-{resource.replace('/', '-')}" for resource, verb in NEEDED_FOR],
)
def test_each_verb_is_needed(
    request: pytest.FixtureRequest,
    cluster: Cluster,
    control_plane: ControlPlane,
    export: Path,
    removed: Verb,
) -> None:
    if removed in _LISTED_WITHOUT_STREAMING:
        control_plane = request.getfixturevalue("paged_control_plane")
        cluster = Cluster.connect(control_plane)
    with chart_rbac(cluster, control_plane, export, removed) as lifecycle:
        run_lifecycle(lifecycle, removed)
