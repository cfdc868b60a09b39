"""Prometheus metrics: the six controller_* metrics of the Go library, plus queue state."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

PROVISION_TOTAL = Counter(
    "controller_persistentvolumeclaim_provision_total",
    "Volumes successfully provisioned, by StorageClass.",
    ["class"],
)
PROVISION_FAILED_TOTAL = Counter(
    "controller_persistentvolumeclaim_provision_failed_total",
    "Failed provisioning attempts, by StorageClass.",
    ["class"],
)
PROVISION_DURATION = Histogram(
    "controller_persistentvolumeclaim_provision_duration_seconds",
    "Time to provision a volume: storage plus saving the PV object.",
    ["class"],
    buckets=_DURATION_BUCKETS,
)
DELETE_TOTAL = Counter(
    "controller_persistentvolume_delete_total",
    "Volumes successfully deleted, by StorageClass.",
    ["class"],
)
DELETE_FAILED_TOTAL = Counter(
    "controller_persistentvolume_delete_failed_total",
    "Failed deletion attempts, by StorageClass.",
    ["class"],
)
DELETE_DURATION = Histogram(
    "controller_persistentvolume_delete_duration_seconds",
    "Time to delete a volume: storage plus the PV object.",
    ["class"],
    buckets=_DURATION_BUCKETS,
)

QUEUE_DEPTH = Gauge("nfs_provisioner_workqueue_depth", "Items ready to be processed.", ["queue"])
QUEUE_WAITING = Gauge(
    "nfs_provisioner_workqueue_waiting", "Items waiting for their retry delay.", ["queue"]
)
RETRIES_TOTAL = Counter(
    "nfs_provisioner_workqueue_retries_total",
    "Items put back for a retry after a failure.",
    ["queue"],
)
AT_MAX_BACKOFF = Gauge(
    "nfs_provisioner_workqueue_items_at_max_backoff",
    "Items that failed so often they are retried at the maximum delay.",
    ["queue"],
)
IS_LEADER = Gauge(
    "nfs_provisioner_leader", "1 while this instance holds the leader lease (or runs alone)."
)

_VOLUME_LABELS = ["namespace", "persistentvolumeclaim", "persistentvolume"]
VOLUME_USED_BYTES = Gauge(
    "nfs_provisioner_volume_used_bytes",
    "Bytes a bound volume's storage uses, as of the last usage scan (like du -x).",
    _VOLUME_LABELS,
)
VOLUME_CAPACITY_BYTES = Gauge(
    "nfs_provisioner_volume_capacity_bytes",
    "A bound volume's capacity (its PV's spec.capacity), which NFS does not enforce.",
    _VOLUME_LABELS,
)
VOLUME_USED_INODES = Gauge(
    "nfs_provisioner_volume_used_inodes",
    "Files, directories and other entries in a bound volume, as of the last usage scan.",
    _VOLUME_LABELS,
)
USAGE_SCAN_DURATION = Gauge(
    "nfs_provisioner_usage_scan_duration_seconds",
    "How long the last complete usage scan of all bound volumes took.",
)
USAGE_SCANS_TOTAL = Counter(
    "nfs_provisioner_usage_scans_total", "Complete usage scans of all bound volumes."
)
ARCHIVES_REMOVED_TOTAL = Counter(
    "nfs_provisioner_archives_removed_total",
    "Archived directories removed because their StorageClass's archiveRetention had passed.",
)
ARCHIVE_SWEEP_ERRORS_TOTAL = Counter(
    "nfs_provisioner_archive_sweep_errors_total",
    "Expired archives (or archive markers) the sweep could not handle, and sweeps that failed.",
)
VOLUME_RESIZES_TOTAL = Counter(
    "nfs_provisioner_volume_resizes_total",
    "Claim resizes by result: completed, refused (a shrink, or a class without expansion), failed.",
    ["result"],
)
CLONE_BYTES_TOTAL = Counter(
    "nfs_provisioner_clone_copied_bytes_total",
    "Bytes copied into new volumes cloned from other claims, by StorageClass of the new claim.",
    ["class"],
)
CLONES_RUNNING = Gauge(
    "nfs_provisioner_clones_running",
    "Clones whose copy is running now (at most the clone workers).",
)
