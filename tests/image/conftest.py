"""The image tier: the chart's image, built by `make image`'s code, run by podman as the chart
runs it, against the same kind of local control plane as tests/e2e."""

from __future__ import annotations

import pytest
from devcluster.image import chart_image, ensure_image

# The session's control plane and cluster fixtures come from tests/conftest.py, shared with
# tests/e2e and tests/nfs.

# The image a non-root deployment uses: the Dockerfile built with --build-arg UID/GID.
NOBODY = 65534


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/image" in str(item.path):
            item.add_marker(pytest.mark.image)


@pytest.fixture(scope="session")
def image() -> str:
    """The chart's default image, built unless podman holds it from the same sources."""
    return ensure_image()


@pytest.fixture(scope="session")
def nobody_image() -> str:
    repository, _, tag = chart_image().rpartition(":")
    return ensure_image(f"{repository}:{tag}-uid{NOBODY}", {"UID": str(NOBODY), "GID": str(NOBODY)})
