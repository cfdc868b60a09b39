"""The e2e tier's hostile-input and symbolic-link tests, rerun on the real NFS mount.

The tests are the e2e tier's own; this directory's ``export`` and ``make_provisioner``
fixtures put their export on a fuse-nfs mount of a root-squashed NFS-Ganesha export.
"""

from tests.e2e.test_hostile_input import (
    outside,
    test_every_invalid_class_parameter_fails_by_name_and_others_keep_working,
    test_hostile_annotation_fails_and_creates_nothing,
    test_symlink_planted_in_the_export_is_not_followed,
    test_two_archives_with_the_same_name_both_survive,
    test_volume_pointing_outside_the_export_is_never_removed_or_renamed,
)

__all__ = [
    "outside",
    "test_every_invalid_class_parameter_fails_by_name_and_others_keep_working",
    "test_hostile_annotation_fails_and_creates_nothing",
    "test_symlink_planted_in_the_export_is_not_followed",
    "test_two_archives_with_the_same_name_both_survive",
    "test_volume_pointing_outside_the_export_is_never_removed_or_renamed",
]
