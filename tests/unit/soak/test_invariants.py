"""The soak's invariants over hand-made snapshots: each breach found, each passing state not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from soak.invariants import (
    UNEXPLAINED_GRACE,
    ApiView,
    ClaimRecord,
    ClaimView,
    ExportView,
    LogRecord,
    Monitor,
    VolumeView,
    acts_outside_own_term,
    check,
    staging_of,
    unsettled,
)

DATA = "d" * 64


def _claim(uid: str, *, phase: str = "Bound", volume: str = "") -> ClaimView:
    return ClaimView("ns", f"c-{uid}", uid, phase, volume or f"pvc-{uid}", 1, 1)


def _volume(uid: str, *, phase: str = "Bound", directory: str | None = None) -> VolumeView:
    return VolumeView(f"pvc-{uid}", phase, uid, directory or f"ns-c-pvc-{uid}", 1, True)


def _api(claims: list[ClaimView], volumes: list[VolumeView]) -> ApiView:
    return ApiView({c.key: c for c in claims}, {v.name: v for v in volumes})


def _export(
    directories: dict[str, str],
    archives: dict[str, str] | None = None,
    markers: dict[str, str] | None = None,
) -> ExportView:
    return ExportView(directories, archives or {}, markers or {}, "sentinel")


def _record(uid: str, fate: str, **fields: object) -> ClaimRecord:
    record = ClaimRecord("ns", f"c-{uid}", "soak-" + fate, fate, 0.0, uid=uid, volume=f"pvc-{uid}")
    record.directory = f"ns-c-pvc-{uid}"
    record.provisioned = True
    record.content = DATA
    for name, value in fields.items():
        setattr(record, name, value)
    return record


def _kinds(findings: list) -> list[str]:  # type: ignore[type-arg]
    return sorted(f.kind for f in findings)


def test_a_healthy_snapshot_has_no_finding() -> None:
    api = _api([_claim("u1")], [_volume("u1")])
    export = _export({"ns-c-pvc-u1": DATA})
    assert check(api, api, export, [_record("u1", "delete")], "sentinel") == []


def test_two_volumes_for_one_claim_and_one_directory_for_two_volumes() -> None:
    twin = VolumeView("pvc-other", "Bound", "u1", "ns-c-pvc-u1", 1, True)
    api = _api([_claim("u1")], [_volume("u1"), twin])
    findings = check(api, api, _export({"ns-c-pvc-u1": ""}), [], "sentinel")
    assert _kinds(findings) == ["shared-directory", "two-volumes-one-claim"]


def test_a_bound_claim_whose_volume_names_another_claim() -> None:
    api = _api([_claim("u1", volume="pvc-u2")], [_volume("u2")])
    findings = check(api, api, _export({"ns-c-pvc-u2": ""}), [], "sentinel")
    assert _kinds(findings) == ["claim-not-bound-to-its-volume"]


def test_a_bound_volume_without_its_directory_is_found_at_once() -> None:
    api = _api([_claim("u1")], [_volume("u1")])
    findings = check(api, api, _export({}), [], "sentinel")
    assert _kinds(findings) == ["volume-without-directory"]
    assert findings[0].grace == 0


def test_a_volume_seen_in_one_read_only_is_not_judged() -> None:
    """A PV created while the directories were listed: in the second read only."""
    before = _api([], [])
    after = _api([_claim("u1")], [_volume("u1")])
    assert check(before, after, _export({}), [], "sentinel") == []


def test_a_released_volume_may_have_lost_its_directory() -> None:
    api = _api([], [_volume("u1", phase="Released")])
    assert check(api, api, _export({}), [], "sentinel") == []


def test_an_unexplained_directory_is_a_violation_only_after_its_grace() -> None:
    api = _api([], [])
    findings = check(api, api, _export({"stray": ""}), [], "sentinel")
    assert _kinds(findings) == ["unexplained-directory"]
    monitor = Monitor()
    assert monitor.observe(0.0, findings) == []
    assert monitor.observe(UNEXPLAINED_GRACE - 1, findings) == []
    assert [v.kind for v in monitor.observe(UNEXPLAINED_GRACE, findings)] == [
        "unexplained-directory"
    ]
    # Reported once, not again every snapshot.
    assert monitor.observe(UNEXPLAINED_GRACE + 1, findings) == []


def test_a_finding_that_goes_away_starts_its_grace_again() -> None:
    api = _api([], [])
    findings = check(api, api, _export({"stray": ""}), [], "sentinel")
    monitor = Monitor()
    monitor.observe(0.0, findings)
    monitor.observe(10.0, [])
    assert monitor.observe(UNEXPLAINED_GRACE + 5, findings) == []


def test_released_fates() -> None:
    api = _api([], [])
    deleted = _record("u1", "delete", deleted_at=1.0)
    archived = _record("u2", "archive", deleted_at=1.0)
    retained = _record("u3", "retain", deleted_at=1.0)
    records = [deleted, archived, retained]
    good = _export(
        {"ns-c-pvc-u3": DATA}, {"archived-ns-c-pvc-u2": DATA}, {"archived-ns-c-pvc-u2": "pvc-u2"}
    )
    assert check(api, api, good, records, "sentinel") == []

    bad = _export(
        {"ns-c-pvc-u1": DATA, "ns-c-pvc-u3": "changed"},
        {"archived-ns-c-pvc-u2": "changed"},
        {"archived-ns-c-pvc-u2": "pvc-u2"},
    )
    assert _kinds(check(api, api, bad, records, "sentinel")) == [
        "archive-content-changed",
        "deleted-volume-still-there",
        "retained-volume-changed",
        # The removed volume's directory is no one's any more.
        "unexplained-directory",
    ]
    lost = _export({}, {}, {})
    assert _kinds(check(api, api, lost, records, "sentinel")) == [
        "archive-missing",
        "retained-volume-changed",
    ]


def test_a_volume_never_provisioned_has_no_fate_to_check() -> None:
    api = _api([], [])
    record = _record("u2", "archive", deleted_at=1.0, provisioned=False)
    assert check(api, api, _export({}), [record], "sentinel") == []


def test_a_changed_sentinel_is_a_write_outside_the_export() -> None:
    api = _api([], [])
    findings = check(api, api, _export({}), [], "another")
    assert _kinds(findings) == ["written-outside-export"]


def test_live_content_that_changed_is_found() -> None:
    api = _api([_claim("u1")], [_volume("u1")])
    findings = check(api, api, _export({"ns-c-pvc-u1": "x"}), [_record("u1", "delete")], "s")
    assert "volume-content-changed" in _kinds(findings)


def _log(seconds: float, replica: str, event: str) -> LogRecord:
    return LogRecord(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds), replica, event)


def test_actions_in_the_actors_own_term_pass() -> None:
    records = [
        _log(0, "a", "became leader"),
        _log(1, "a", "volume provisioned"),
        _log(5, "b", "became leader"),
        _log(6, "b", "volume deleted"),
    ]
    assert acts_outside_own_term(records) == []


def test_an_action_after_another_replica_took_the_lease_is_found() -> None:
    records = [
        _log(0, "a", "became leader"),
        _log(5, "b", "became leader"),
        _log(6, "a", "volume deleted"),
        _log(7, "b", "volume provisioned"),
    ]
    (finding,) = acts_outside_own_term(records)
    assert finding.kind == "two-replicas-in-one-term"
    assert "a logged 'volume deleted'" in finding.message


def test_an_action_before_any_term_is_found() -> None:
    assert _kinds(acts_outside_own_term([_log(0, "a", "volume resized")])) == [
        "two-replicas-in-one-term"
    ]


def test_unsettled_names_what_has_not_converged() -> None:
    pending = _record("u1", "delete", created_at=1.0)
    gone = _record("u2", "delete", deleted_at=2.0)
    grown = _record("u3", "delete", requested_mi=2, resize_at=2.0)
    later = _record("u4", "delete", created_at=50.0)
    api = _api(
        [_claim("u1", phase="Pending"), ClaimView("ns", "c-u3", "u3", "Bound", "pvc-u3", 2, 1)],
        [_volume("u2", phase="Released")],
    )
    left = unsettled(api, [pending, gone, grown, later], before=10.0)
    assert left == [
        "claim ns/c-u1 not Bound",
        "PV pvc-u2 of deleted claim ns/c-u2 not released",
        "claim ns/c-u3 not resized to 2Mi",
    ]


def test_an_archive_whose_marker_could_not_be_written_is_found_by_its_name() -> None:
    """A full export: the directory was renamed, its registry marker not written (documented:
    such an archive never expires). The content must still be there, byte for byte."""
    api = _api([], [])
    archived = _record("u2", "archive", deleted_at=1.0)
    kept = _export({}, {"archived-ns-c-pvc-u2": DATA}, {})
    assert check(api, api, kept, [archived], "sentinel") == []
    changed = _export({}, {"archived-ns-c-pvc-u2": "changed"}, {})
    assert _kinds(check(api, api, changed, [archived], "sentinel")) == ["archive-content-changed"]
    # An unregistered archive of no released volume is unexplained.
    stray = _export({}, {"archived-someone-else": DATA}, {})
    assert "unexplained-directory" in _kinds(check(api, api, stray, [archived], "sentinel"))


def test_a_staging_directory_is_explained_only_while_its_volume_exists() -> None:
    left_behind = {"ns-c-pvc-u1": DATA, staging_of("ns-c-pvc-u1"): ""}
    live = _api([_claim("u1")], [_volume("u1")])
    assert check(live, live, _export(left_behind), [_record("u1", "delete")], "sentinel") == []
    gone = _api([], [])
    record = _record("u1", "delete", deleted_at=1.0)
    findings = check(gone, gone, _export({staging_of("ns-c-pvc-u1"): ""}), [record], "sentinel")
    assert _kinds(findings) == ["unexplained-directory"]
