"""Per-claim stage times (--stage-log), recorded by the claim reconciler through the fake seam."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from nfs_provisioner.controller.provisioning import ClaimReconciler
from nfs_provisioner.controller.settings import ControllerSettings, RetryLaterError
from nfs_provisioner.controller.stages import STAGES, StageLog
from nfs_provisioner.kube import ApiError
from tests.unit.controller.fakes import PROVISIONER, FakeBackend, FakeCluster, claim, storage_class

KEY = "ns/data"


def _reconciler(cluster: FakeCluster, stages: StageLog) -> ClaimReconciler:
    settings = ControllerSettings(
        provisioner_name=PROVISIONER, save_attempts=1, save_retry_delay=0.0
    )
    return ClaimReconciler(cluster, FakeBackend(), settings, stop=threading.Event(), stages=stages)


@pytest.fixture
def cluster() -> FakeCluster:
    fake = FakeCluster()
    fake.add(storage_class())
    fake.add(claim())
    return fake


def test_a_provisioned_claim_has_every_stage_in_order(cluster: FakeCluster) -> None:
    stages = StageLog()
    stages.seen(KEY)
    stages.dequeued(KEY)
    _reconciler(cluster, stages).sync(KEY)
    times = stages.snapshot()[KEY]
    assert None not in times
    assert times == sorted(times)


def test_work_after_the_pv_is_saved_leaves_the_stages_alone(cluster: FakeCluster) -> None:
    stages = StageLog()
    stages.seen(KEY)
    stages.dequeued(KEY)
    reconciler = _reconciler(cluster, stages)
    reconciler.sync(KEY)
    before = stages.snapshot()[KEY]
    # The claim's next watch events (the binder binding it) queue the key again.
    stages.seen(KEY)
    stages.dequeued(KEY)
    reconciler.sync(KEY)
    assert stages.snapshot()[KEY] == before


def test_a_failed_save_has_no_saved_stage_until_the_retry_saves(cluster: FakeCluster) -> None:
    stages = StageLog()
    stages.seen(KEY)
    stages.dequeued(KEY)
    cluster.failures["create_volume"] = [ApiError(503, "ServiceUnavailable", "busy")]
    reconciler = _reconciler(cluster, stages)
    with pytest.raises(RetryLaterError):
        reconciler.sync(KEY)
    assert stages.snapshot()[KEY][STAGES.index("saved")] is None
    first_dequeue = stages.snapshot()[KEY][STAGES.index("dequeued")]
    stages.dequeued(KEY)
    reconciler.sync(KEY)
    retried = stages.snapshot()[KEY]
    assert retried[STAGES.index("saved")] is not None
    assert retried[STAGES.index("dequeued")] is not None
    assert retried[STAGES.index("dequeued")] >= first_dequeue


def test_claims_never_seen_are_not_recorded(cluster: FakeCluster) -> None:
    stages = StageLog()
    _reconciler(cluster, stages).sync(KEY)
    assert stages.snapshot() == {}


def test_the_file_holds_the_stage_names_and_every_claim(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    stages = StageLog()
    stages.seen(KEY)
    stages.seen("ns/other")
    path = tmp_path / "stages.json"
    stages.write(path)
    document = json.loads(path.read_text())
    assert document["clock"] == "CLOCK_MONOTONIC"
    assert document["stages"] == list(STAGES)
    assert set(document["claims"]) == {KEY, "ns/other"}
    assert [p.name for p in tmp_path.iterdir()] == ["stages.json"]
