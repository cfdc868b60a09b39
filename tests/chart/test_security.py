"""The chart's security context and resources: hardened by default, each part switchable.

tests/image/ runs the image under each documented combination; here, what the chart renders.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.helm import render, render_error
from tests.chart.values import HARDENED_RESOURCES, HARDENED_SECURITY_CONTEXT, MINIMAL, merged


def test_defaults_are_what_a_security_review_expects() -> None:
    rendered = render(values=MINIMAL)
    container = rendered.container
    assert container["securityContext"] == HARDENED_SECURITY_CONTEXT
    assert container["resources"] == HARDENED_RESOURCES
    # Root by default (exports prepared for the Go image are often root-owned); the pod level
    # is the user's to set.
    assert "securityContext" not in rendered.pod


def test_non_root_is_one_setting_away() -> None:
    pod_context = {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534}
    rendered = render(values=merged(MINIMAL, {"podSecurityContext": pod_context}))
    assert rendered.pod["securityContext"] == pod_context
    assert rendered.container["securityContext"] == HARDENED_SECURITY_CONTEXT


def test_capabilities_for_chown_are_added_to_the_hardened_defaults() -> None:
    added = {"securityContext": {"capabilities": {"add": ["CHOWN", "FOWNER"]}}}
    context = render(values=merged(MINIMAL, added)).container["securityContext"]
    assert context == {
        **HARDENED_SECURITY_CONTEXT,
        "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "FOWNER"]},
    }


def test_null_drops_the_defaults() -> None:
    rendered = render(values=merged(MINIMAL, {"securityContext": None, "resources": None}))
    assert "securityContext" not in rendered.container
    assert "resources" not in rendered.container


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"securityContext": {"readOnlyRootFilesystem": "yes"}}, "readOnlyRootFilesystem"),
        ({"securityContext": {"capabilities": {"add": ["chown"]}}}, "capabilities"),
        ({"securityContext": {"capabilities": {"keep": ["CHOWN"]}}}, "keep"),
        ({"securityContext": {"seccompProfile": {"type": "Default"}}}, "seccompProfile"),
        ({"podSecurityContext": {"runAsUser": -1}}, "runAsUser"),
        ({"resources": {"limits": {"memory": ["256Mi"]}}}, "memory"),
    ],
)
def test_schema_refuses_malformed_contexts(values: dict[str, Any], message: str) -> None:
    assert message in render_error(merged(MINIMAL, values))
