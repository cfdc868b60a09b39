"""More of the e2e tier rerun on the NFS mount: deletion, archive retention and audit, usage.

The tests are the e2e tier's own; this directory's ``export`` and ``make_provisioner``
fixtures put their export on a fuse-nfs mount of a root-squashed NFS-Ganesha export.
"""

from tests.e2e.test_beyond_retention import (
    test_archives_record_the_retention_of_their_class,
    test_audit_lists_orphans_and_archives_and_prunes_only_expired_archives,
    test_sweep_removes_only_expired_archives_and_only_on_the_leader,
)
from tests.e2e.test_beyond_usage import test_usage_is_exported_and_an_overgrown_volume_warns_once
from tests.e2e.test_deletion import (
    test_invalid_archive_on_delete_keeps_the_directory_and_reports,
    test_nested_directory_is_archived_at_the_top_of_the_export,
    test_released_volume_directory_follows_the_class,
    test_retain_reclaim_policy_touches_nothing,
    test_volume_of_another_provisioner_is_never_touched,
)

__all__ = [
    "test_archives_record_the_retention_of_their_class",
    "test_audit_lists_orphans_and_archives_and_prunes_only_expired_archives",
    "test_invalid_archive_on_delete_keeps_the_directory_and_reports",
    "test_nested_directory_is_archived_at_the_top_of_the_export",
    "test_released_volume_directory_follows_the_class",
    "test_retain_reclaim_policy_touches_nothing",
    "test_sweep_removes_only_expired_archives_and_only_on_the_leader",
    "test_usage_is_exported_and_an_overgrown_volume_warns_once",
    "test_volume_of_another_provisioner_is_never_touched",
]
