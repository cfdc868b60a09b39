from typing import Literal

import pytest

from nfs_provisioner.nfs import (
    ClassOptions,
    DeletePolicy,
    InvalidParameterError,
    deletion_policy,
    parse_class_parameters,
)
from nfs_provisioner.values import parse_go_bool

BOOL_SPELLINGS = "true, false (also 1, 0, t, f, TRUE, FALSE, True, False)"


@pytest.mark.parametrize("value", ["1", "t", "T", "TRUE", "true", "True"])
def test_parse_bool_true_spellings(value: str) -> None:
    assert parse_go_bool(value) is True


@pytest.mark.parametrize("value", ["0", "f", "F", "FALSE", "false", "False"])
def test_parse_bool_false_spellings(value: str) -> None:
    assert parse_go_bool(value) is False


@pytest.mark.parametrize(
    "value", ["", "yes", "no", "tRUE", "FaLsE", " true", "true ", "2", "on", "y", "maybe"]
)
def test_parse_bool_rejects_everything_else(value: str) -> None:
    with pytest.raises(ValueError):
        parse_go_bool(value)


def test_no_parameters_is_the_default_class() -> None:
    assert parse_class_parameters(None) == ClassOptions()
    assert parse_class_parameters({}) == ClassOptions(
        on_delete=None, archive_on_delete=True, path_pattern=None
    )


def test_all_parameters_parsed() -> None:
    options = parse_class_parameters(
        {"archiveOnDelete": "false", "onDelete": "retain", "pathPattern": "${.PVC.namespace}"}
    )
    assert options == ClassOptions(
        on_delete="retain", archive_on_delete=False, path_pattern="${.PVC.namespace}"
    )


@pytest.mark.parametrize(("value", "expected"), [("delete", "delete"), ("retain", "retain")])
def test_on_delete_values(value: str, expected: str) -> None:
    assert parse_class_parameters({"onDelete": value}).on_delete == expected


def test_empty_path_pattern_means_not_set() -> None:
    assert parse_class_parameters({"pathPattern": ""}).path_pattern is None


@pytest.mark.parametrize("value", ["maybe", "", "yes", "tRuE"])
def test_bad_archive_on_delete(value: str) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        parse_class_parameters({"archiveOnDelete": value})
    assert caught.value.parameter == "archiveOnDelete"
    assert caught.value.value == value
    assert str(caught.value) == (
        f'StorageClass parameter "archiveOnDelete" has invalid value "{value}": '
        f"accepted values are {BOOL_SPELLINGS}"
    )


@pytest.mark.parametrize("value", ["Delete", "RETAIN", "archive", "", "remove"])
def test_bad_on_delete(value: str) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        parse_class_parameters({"onDelete": value})
    assert caught.value.parameter == "onDelete"
    assert str(caught.value) == (
        f'StorageClass parameter "onDelete" has invalid value "{value}": '
        "accepted values are delete, retain"
    )


@pytest.mark.parametrize("key", ["archiveOndelete", "pathpattern", "Server", "owner", ""])
def test_unknown_parameter(key: str) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        parse_class_parameters({"onDelete": "delete", key: "x"})
    assert caught.value.parameter == key
    assert caught.value.value == "x"
    assert str(caught.value) == (
        f'unknown StorageClass parameter "{key}": '
        "accepted parameters are archiveOnDelete, onDelete, pathPattern, uid, gid, mode, "
        "allowClaimOwnership, claimUidRange, claimGidRange, allowClaimSpecialModes, "
        "allowSharedDirectories, allowRestore, archiveRetention, server, share"
    )


def test_bad_value_with_control_characters_is_escaped_in_the_message() -> None:
    with pytest.raises(InvalidParameterError) as caught:
        parse_class_parameters({"onDelete": 'x"\n\x00'})
    assert '"x\\"\\x0a\\x00"' in str(caught.value)


@pytest.mark.parametrize(
    ("on_delete", "archive", "expected"),
    [
        ("delete", True, DeletePolicy.REMOVE),
        ("delete", False, DeletePolicy.REMOVE),
        ("retain", True, DeletePolicy.RETAIN),
        ("retain", False, DeletePolicy.RETAIN),
        (None, True, DeletePolicy.ARCHIVE),
        (None, False, DeletePolicy.REMOVE),
    ],
)
def test_deletion_policy_table(
    on_delete: Literal["delete", "retain"] | None, archive: bool, expected: DeletePolicy
) -> None:
    options = ClassOptions(on_delete=on_delete, archive_on_delete=archive)
    assert deletion_policy(options) is expected


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({}, DeletePolicy.ARCHIVE),
        ({"archiveOnDelete": "true"}, DeletePolicy.ARCHIVE),
        ({"archiveOnDelete": "1"}, DeletePolicy.ARCHIVE),
        ({"archiveOnDelete": "false"}, DeletePolicy.REMOVE),
        ({"archiveOnDelete": "F"}, DeletePolicy.REMOVE),
        ({"onDelete": "delete", "archiveOnDelete": "true"}, DeletePolicy.REMOVE),
        ({"onDelete": "retain", "archiveOnDelete": "false"}, DeletePolicy.RETAIN),
        ({"onDelete": "retain"}, DeletePolicy.RETAIN),
    ],
)
def test_deletion_policy_from_parameters(
    parameters: dict[str, str], expected: DeletePolicy
) -> None:
    assert deletion_policy(parse_class_parameters(parameters)) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [*((spelling, True) for spelling in ("1", "t", "T", "TRUE", "true", "True"))]
    + [(spelling, False) for spelling in ("0", "f", "F", "FALSE", "false", "False")],
)
def test_allow_shared_directories_takes_go_booleans(value: str, expected: bool) -> None:
    options = parse_class_parameters({"allowSharedDirectories": value})
    assert options.allow_shared_directories is expected


def test_shared_directories_are_refused_by_default() -> None:
    assert parse_class_parameters({}).allow_shared_directories is False


@pytest.mark.parametrize("value", ["yes", "", "on", "tRuE"])
def test_bad_allow_shared_directories(value: str) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        parse_class_parameters({"allowSharedDirectories": value})
    assert str(caught.value) == (
        f'StorageClass parameter "allowSharedDirectories" has invalid value "{value}": '
        f"accepted values are {BOOL_SPELLINGS}"
    )
