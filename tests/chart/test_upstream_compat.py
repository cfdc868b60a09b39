"""Side by side with the upstream charts: the names an in-place upgrade must keep.

For every (upstream chart, release name, nameOverride, fullnameOverride) of the table, the
upstream chart (tests/fixtures/upstream-charts) and ours with `compat: <that chart>` are rendered
by helm from the same values, and what an existing install depends on is compared: the
provisioner name (every PV's provisioned-by annotation), the Deployment's name and selector
(immutable), the PodDisruptionBudget's, the ServiceAccount's name, nfs.path's default, and the
static PersistentVolume and PersistentVolumeClaim of nfs.mountOptions (a bound claim's spec
cannot change).
"""

from __future__ import annotations

import json
import tarfile
from typing import Any

import pytest
import yaml

from tests.chart.helm import CHART, Rendered, render, render_error
from tests.chart.upstream import DEFAULT_PATHS, GO_IMAGES, STABLE, SUBDIR, UPSTREAM_CHARTS
from tests.chart.values import UPSTREAM_KEYS, merged

RELEASES = (
    "nfs-client-provisioner",
    "nfs-subdir-external-provisioner",
    "nfs",
    "foo",
    "my-nfs-provisioner",
    "my-nfs-client-provisioner",
    "a-release-name-of-fifty-three-characters-exactly-abcd",
)
# (nameOverride, fullnameOverride)
OVERRIDES = (
    ("", ""),
    ("foo", ""),
    ("nfs", ""),
    (STABLE, ""),
    (SUBDIR, ""),
    ("", "bar"),
    ("foo", "shared-nfs"),
)
# What both sides get; nfs.path is left out on purpose: its default must be upstream's.
BASE: dict[str, Any] = {
    "nfs": {"server": "192.0.2.10", "mountOptions": ["nfsvers=4.1", "hard"]},
}

CASES = [
    pytest.param(chart, release, name, full, id=f"{chart}-{release}-{name or '_'}-{full or '_'}")
    for chart in (STABLE, SUBDIR)
    for release in RELEASES
    for name, full in OVERRIDES
]


def _values(chart: str, name: str, full: str) -> dict[str, Any]:
    values = merged(BASE, {"nameOverride": name, "fullnameOverride": full})
    if chart == SUBDIR:
        values["podDisruptionBudget"] = {"enabled": True}
    return values


def _render_both(chart: str, release: str, values: dict[str, Any]) -> tuple[Rendered, Rendered]:
    upstream = render(release, values, chart=UPSTREAM_CHARTS[chart])
    ours = render(release, merged(values, {"compat": chart}))
    return upstream, ours


def _env(rendered: Rendered) -> dict[str, Any]:
    return {k: rendered.env[k] for k in ("PROVISIONER_NAME", "NFS_SERVER", "NFS_PATH")}


def _field(obj: dict[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        obj = obj[key]
    return obj


def _by_name(rendered: Rendered, kind: str) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for obj in rendered.all(kind)}


@pytest.mark.parametrize(("chart", "release", "name", "full"), CASES)
def test_names_an_upgrade_keeps_are_upstreams(
    chart: str, release: str, name: str, full: str
) -> None:
    upstream, ours = _render_both(chart, release, _values(chart, name, full))

    assert _env(ours) == _env(upstream)
    assert ours.env["NFS_PATH"] == DEFAULT_PATHS[chart]
    # A StorageClass's provisioner, parameters, reclaimPolicy and volumeBindingMode cannot
    # change in place (stable's omitted volumeBindingMode defaults to Immediate).
    mine_class, their_class = ours.one("StorageClass"), upstream.one("StorageClass")
    for field in ("metadata.name", "provisioner", "parameters", "reclaimPolicy"):
        assert _field(mine_class, field) == _field(their_class, field), field
    assert mine_class["volumeBindingMode"] == their_class.get("volumeBindingMode", "Immediate")

    theirs, mine = upstream.deployment, ours.deployment
    assert mine["metadata"]["name"] == theirs["metadata"]["name"]
    assert mine["spec"]["selector"] == theirs["spec"]["selector"]
    selector = mine["spec"]["selector"]["matchLabels"]
    assert selector.items() <= mine["spec"]["template"]["metadata"]["labels"].items()
    assert ours.pod["serviceAccountName"] == upstream.pod["serviceAccountName"]
    assert _by_name(ours, "ServiceAccount").keys() == _by_name(upstream, "ServiceAccount").keys()
    # The pod's volume of the export keeps its name (nfs.volumeName: stable had a fixed one).
    assert (
        ours.pod["volumes"][0]["persistentVolumeClaim"]
        == (upstream.pod["volumes"][0]["persistentVolumeClaim"])
    )

    if chart == SUBDIR:
        mine_pdb, theirs_pdb = ours.one("PodDisruptionBudget"), upstream.one("PodDisruptionBudget")
        assert mine_pdb["metadata"]["name"] == theirs_pdb["metadata"]["name"]
        assert mine_pdb["spec"] == theirs_pdb["spec"]

    # The static volume and claim that carry nfs.mountOptions.
    (volume_name,) = _by_name(upstream, "PersistentVolume")
    (claim_name,) = _by_name(upstream, "PersistentVolumeClaim")
    assert _by_name(ours, "PersistentVolume").keys() == {volume_name}
    assert _by_name(ours, "PersistentVolumeClaim").keys() == {claim_name}
    claim, their_claim = ours.one("PersistentVolumeClaim"), upstream.one("PersistentVolumeClaim")
    assert claim["spec"] == their_claim["spec"]
    volume, their_volume = ours.one("PersistentVolume"), upstream.one("PersistentVolume")
    labels = their_claim["spec"]["selector"]["matchLabels"]
    assert labels.items() <= volume["metadata"]["labels"].items()
    assert labels.items() <= their_volume["metadata"]["labels"].items()
    # Ours also reserves the volume for its claim (claimRef), and stable's volume took the
    # StorageClass's reclaim policy (Delete by default), which no provisioner can carry out for
    # a static volume: ours keeps nfs.reclaimPolicy (Retain). Both fields may change in place.
    spec = {k: v for k, v in volume["spec"].items() if k != "claimRef"}
    their_spec = dict(their_volume["spec"])
    if chart == STABLE:
        assert their_spec.pop("persistentVolumeReclaimPolicy") == "Delete"
        assert spec.pop("persistentVolumeReclaimPolicy") == "Retain"
    assert spec == their_spec
    assert volume["spec"]["claimRef"]["name"] == claim_name


@pytest.mark.parametrize("chart", [STABLE, SUBDIR])
@pytest.mark.parametrize(
    "service_account",
    [{"create": False}, {"create": False, "name": "hand-made"}, {"create": True, "name": "sa"}],
)
def test_service_account_is_upstreams(chart: str, service_account: dict[str, Any]) -> None:
    values = merged(BASE, {"serviceAccount": service_account})
    upstream, ours = _render_both(chart, "nfs", values)
    assert ours.pod["serviceAccountName"] == upstream.pod["serviceAccountName"]
    assert _by_name(ours, "ServiceAccount").keys() == _by_name(upstream, "ServiceAccount").keys()


@pytest.mark.parametrize("max_unavailable", [0, 1, 2, "2", "50%", None, ""])
def test_disruption_budget_is_upstreams(max_unavailable: Any) -> None:
    values = merged(BASE, {"podDisruptionBudget": {"enabled": True}})
    values["podDisruptionBudget"]["maxUnavailable"] = max_unavailable
    upstream, ours = _render_both(SUBDIR, "nfs", values)
    assert ours.one("PodDisruptionBudget")["spec"] == upstream.one("PodDisruptionBudget")["spec"]


@pytest.mark.parametrize("chart", [STABLE, SUBDIR])
@pytest.mark.parametrize("path", ["/srv/nfs", "/"])
def test_an_explicit_path_is_kept(chart: str, path: str) -> None:
    upstream, ours = _render_both(chart, "nfs", merged(BASE, {"nfs": {"path": path}}))
    assert _env(ours) == _env(upstream)


def test_own_names_without_compat() -> None:
    """compat unset: this chart's own names, as before (releases of this chart keep theirs)."""
    ours = render("storage", BASE)
    assert ours.deployment["spec"]["selector"]["matchLabels"] == {
        "app": "nfs-provisioner",
        "release": "storage",
    }
    assert ours.provisioner_name == "cluster.local/storage-nfs-provisioner"
    assert ours.env["NFS_PATH"] == "/nfs-storage"
    assert "volumeName" in ours.one("PersistentVolumeClaim")["spec"]


@pytest.mark.parametrize("chart", [STABLE, SUBDIR])
def test_the_go_image_is_refused_with_what_to_change(chart: str) -> None:
    repository, tag = GO_IMAGES[chart]
    values = merged(BASE, {"compat": chart, "image": {"repository": repository, "tag": tag}})
    message = render_error(values)
    assert f"image.repository {repository} is the Go provisioner's image" in message
    assert "Remove image.repository and image.tag from your values" in message
    assert "--set image.repository=ghcr.io/nfs-provisioner/nfs-provisioner" in message
    # What --reuse-values leaves when only the repository is replaced: the Go image's tag.
    values["image"]["repository"] = "ghcr.io/nfs-provisioner/nfs-provisioner"
    message = render_error(values)
    assert f"image.tag {tag} is a tag of the Go provisioner's image" in message


def test_hand_made_rbac_must_be_confirmed() -> None:
    values = merged(BASE, {"rbac": {"create": False}})
    message = render_error(values)
    assert "rbac.create=false" in message
    for missing in ("leases", "persistentvolumes patch", "persistentvolumeclaims/status patch"):
        assert missing in message
    assert "set rbac.externalRulesGranted=true" in message
    confirmed = render("nfs", merged(values, {"rbac": {"externalRulesGranted": True}}))
    assert not confirmed.all("ClusterRole")
    assert not confirmed.all("Role")


def test_compat_names_a_known_chart() -> None:
    message = render_error(merged(BASE, {"compat": "nfs-provisioner"}))
    assert "compat" in message


def _upstream_values(chart: str) -> dict[str, Any]:
    """The upstream chart's own values.yaml, every key of it, read from the tarball."""
    with tarfile.open(UPSTREAM_CHARTS[chart]) as tar:
        member = tar.extractfile(f"{chart}/values.yaml")
        assert member is not None
        return dict(yaml.safe_load(member.read()))


@pytest.mark.parametrize("chart", [STABLE, SUBDIR])
def test_every_key_of_upstreams_values_file_is_accepted(chart: str) -> None:
    """Upstream's whole values.yaml, its Go image left out, renders under our schema."""
    values = merged(_upstream_values(chart), BASE, {"compat": chart})
    del values["image"]["repository"], values["image"]["tag"]
    upstream = render("nfs", merged(_upstream_values(chart), BASE), chart=UPSTREAM_CHARTS[chart])
    ours = render("nfs", values)
    assert _env(ours) == _env(upstream)


@pytest.mark.parametrize("chart", [STABLE, SUBDIR])
def test_hidden_ci_values_are_refused_with_a_message(chart: str) -> None:
    """Upstream's ci/test-values.yaml: buildMode and PodSecurityPolicy, neither of which exists."""
    message = render_error(merged(BASE, {"buildMode": True}))
    assert "buildMode is the upstream charts' CI switch" in message
    message = render_error(merged(BASE, {"podSecurityPolicy": {"enabled": True}}))
    assert "Set podSecurityPolicy.enabled=false" in message
    # Off, they are accepted and change nothing.
    assert render("nfs", merged(BASE, {"buildMode": False})) == render("nfs", BASE)


@pytest.mark.parametrize("chart", [STABLE, SUBDIR])
def test_replica_count_as_a_string(chart: str) -> None:
    upstream, ours = _render_both(chart, "nfs", merged(BASE, {"replicaCount": "2"}))
    assert ours.deployment["spec"]["replicas"] == upstream.deployment["spec"]["replicas"] == 2


@pytest.mark.parametrize(
    "spelling", [True, False, "1", "t", "T", "TRUE", "True", "0", "F", "False"]
)
def test_archive_on_delete_go_spellings_keep_upstreams_parameters(spelling: Any) -> None:
    values = merged(BASE, {"storageClass": {"archiveOnDelete": spelling}})
    upstream, ours = _render_both(SUBDIR, "nfs", values)
    assert ours.one("StorageClass")["parameters"] == upstream.one("StorageClass")["parameters"]


def test_values_the_go_provisioner_could_not_use_are_refused_with_a_message() -> None:
    message = render_error(merged(BASE, {"storageClass": {"archiveOnDelete": "yes"}}))
    assert 'archiveOnDelete "yes" is not one of Go\'s ParseBool spellings' in message
    assert "Set storageClass.archiveOnDelete to true (archive) or false (remove)" in message
    # Go compared onDelete case-sensitively: "Delete" was ignored and the volume archived.
    message = render_error(merged(BASE, {"storageClass": {"onDelete": "Delete"}}))
    assert "The Go provisioner ignored it" in message
    assert "Set storageClass.onDelete to delete or retain" in message


def test_every_upstream_key_is_in_the_schema() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    for dotted in sorted(UPSTREAM_KEYS | {"buildMode"}):
        node = schema
        for part in dotted.split("."):
            node = node["properties"][part]

    # ... and every object refuses keys it does not list.
    def closed(node: dict[str, Any], where: str) -> None:
        if "properties" in node and where not in ("extraEnv", "topologySpreadConstraints"):
            assert node.get("additionalProperties") is False, where
        for key, child in node.get("properties", {}).items():
            closed(child, key)
        if isinstance(node.get("items"), dict):
            closed(node["items"], where)

    closed(schema, "")


def test_defaults_filled_in_for_reused_values_are_values_yaml() -> None:
    """files/defaults.yaml (what `--reuse-values` of an upstream release lacks) is values.yaml."""
    copy = CHART / "files" / "defaults.yaml"
    assert copy.read_text() == (CHART / "values.yaml").read_text()
