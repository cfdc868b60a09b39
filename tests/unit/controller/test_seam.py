"""KubeCluster fences its writes: none is sent, and none returns to go on acting, once the
lease is not held (the soak's pause-leader fault found a continued leader acting)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from nfs_provisioner.controller.seam import KubeCluster
from nfs_provisioner.kube import ApiClient, EventRecorder, Informer


class LeaseLostError(Exception):
    pass


class RecordingApi:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def create(self, path: str, body: Any) -> dict[str, Any]:
        self.calls.append(f"create {path}")
        return dict(body)

    def delete(self, path: str, *, preconditions: Any = None) -> dict[str, Any]:
        self.calls.append(f"delete {path}")
        return {}

    def merge_patch(self, path: str, patch: Any) -> dict[str, Any]:
        self.calls.append(f"patch {path}")
        return dict(patch)


class Lease:
    """Held for the first ``checks`` fence calls, lost after."""

    def __init__(self, checks: int) -> None:
        self.left = checks

    def fence(self) -> None:
        if self.left <= 0:
            raise LeaseLostError
        self.left -= 1


def _cluster(api: RecordingApi, lease: Lease) -> KubeCluster:
    informer = cast(Informer, None)
    return KubeCluster(
        cast(ApiClient, api),
        cast(EventRecorder, None),
        claims=informer,
        volumes=informer,
        classes=informer,
        fence=lease.fence,
    )


def test_no_write_is_sent_once_the_lease_is_lost() -> None:
    api = RecordingApi()
    cluster = _cluster(api, Lease(0))
    with pytest.raises(LeaseLostError):
        cluster.create_volume({"metadata": {"name": "pv"}})
    with pytest.raises(LeaseLostError):
        cluster.delete_volume("pv", uid=None)
    with pytest.raises(LeaseLostError):
        cluster.patch_volume("pv", {})
    with pytest.raises(LeaseLostError):
        cluster.patch_claim_status("ns", "c", {})
    assert api.calls == []


def test_a_write_answered_after_the_lease_was_lost_does_not_return() -> None:
    api = RecordingApi()
    with pytest.raises(LeaseLostError):
        _cluster(api, Lease(1)).create_volume({"metadata": {"name": "pv"}})
    with pytest.raises(LeaseLostError):
        _cluster(api, Lease(1)).delete_volume("pv", uid="u")
    assert api.calls == ["create /api/v1/persistentvolumes", "delete /api/v1/persistentvolumes/pv"]


def test_writes_go_through_while_the_lease_is_held() -> None:
    api = RecordingApi()
    cluster = _cluster(api, Lease(100))
    assert cluster.create_volume({"metadata": {"name": "pv"}}) == {"metadata": {"name": "pv"}}
    cluster.patch_volume("pv", {"a": 1})
    assert len(api.calls) == 2
