"""Client-side throttling: a burst passes at once, then requests are paced at the QPS."""

from __future__ import annotations

from nfs_provisioner.kube.ratelimit import TokenBucket


def test_burst_then_paced() -> None:
    bucket = TokenBucket(qps=1000, burst=5)
    for _ in range(5):
        bucket.acquire()
    assert bucket.throttled_seconds == 0
    for _ in range(10):
        bucket.acquire()
    assert bucket.throttled_seconds > 0


def test_zero_qps_disables_throttling() -> None:
    bucket = TokenBucket(qps=0, burst=1)
    for _ in range(1000):
        bucket.acquire()
    assert bucket.throttled_seconds == 0
