"""Runs the pinned helm binary on charts/nfs-provisioner and reads what it renders."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from devcluster import ensure_binaries

REPOSITORY = Path(__file__).resolve().parents[2]
CHART = REPOSITORY / "charts" / "nfs-provisioner"
JsonObject = dict[str, Any]

# The operators' install line (the issue's seed), minus `helm install <release>` and the chart.
SEED_RELEASE = "nfs-client-provisioner"
SEED_SERVER = "192.0.2.10"
SEED_ARGS = (
    "--set",
    f"nfs.server={SEED_SERVER}",
    "--set",
    "nfs.path=/exported/path",
    "--set",
    "storageClass.name=nfs",
    "--set",
    "storageClass.defaultClass=true",
)


@functools.cache
def helm_binary() -> Path:
    return ensure_binaries().helm


def helm_environment(home: Path | None = None) -> dict[str, str]:
    """helm's own config, cache and data directories somewhere private, never in ~."""
    base = home or Path(tempfile.gettempdir()) / "nfs-provisioner-chart-tests"
    return {
        **os.environ,
        "HELM_CACHE_HOME": str(base / "cache"),
        "HELM_CONFIG_HOME": str(base / "config"),
        "HELM_DATA_HOME": str(base / "data"),
    }


def helm(
    *args: str, check: bool = True, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(helm_binary()), *args],
        env=helm_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result


def values_file(values: Mapping[str, Any], directory: Path) -> Path:
    """Values as a file: unlike --set, a file keeps types (strings stay strings)."""
    path = directory / "values.yaml"
    path.write_text(json.dumps(values), encoding="utf-8")
    return path


@dataclass(frozen=True)
class Rendered:
    """The objects of one `helm template` run."""

    objects: tuple[JsonObject, ...]

    def __iter__(self) -> Iterator[JsonObject]:
        return iter(self.objects)

    def kinds(self) -> list[str]:
        return sorted(obj["kind"] for obj in self.objects)

    def all(self, kind: str) -> list[JsonObject]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def one(self, kind: str) -> JsonObject:
        found = self.all(kind)
        assert len(found) == 1, f"expected one {kind}, rendered {len(found)}: {self.kinds()}"
        return found[0]

    @property
    def deployment(self) -> JsonObject:
        return self.one("Deployment")

    @property
    def pod(self) -> JsonObject:
        return dict(self.deployment["spec"]["template"]["spec"])

    @property
    def container(self) -> JsonObject:
        containers = self.pod["containers"]
        assert len(containers) == 1
        return dict(containers[0])

    @property
    def env(self) -> dict[str, Any]:
        """Container env by name: the value, or the valueFrom mapping."""
        return {e["name"]: e.get("value", e.get("valueFrom")) for e in self.container["env"]}

    @property
    def provisioner_name(self) -> str:
        return str(self.env["PROVISIONER_NAME"])


def template(
    release: str = "nfs-provisioner",
    values: Mapping[str, Any] | None = None,
    *,
    namespace: str = "default",
    args: Sequence[str] = (),
    chart: Path = CHART,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """`helm template`, with ``values`` passed as a file."""
    with tempfile.TemporaryDirectory() as directory:
        files = [] if values is None else ["--values", str(values_file(values, Path(directory)))]
        return helm(
            "template", release, str(chart), "--namespace", namespace, *files, *args, check=check
        )


def render(
    release: str = "nfs-provisioner",
    values: Mapping[str, Any] | None = None,
    *,
    namespace: str = "default",
    args: Sequence[str] = (),
    chart: Path = CHART,
    tests: bool = False,
) -> Rendered:
    """The objects `helm install` creates; with ``tests``, also the `helm test` hooks."""
    skip = () if tests else ("--skip-tests",)
    result = template(release, values, namespace=namespace, args=(*args, *skip), chart=chart)
    return Rendered(tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc))


def render_error(values: Mapping[str, Any] | None = None, *, args: Sequence[str] = ()) -> str:
    """helm's error message for values that the chart must refuse."""
    result = template("r", values, args=args, check=False)
    assert result.returncode != 0, f"helm accepted values it must refuse: {values} {args}"
    return result.stderr
