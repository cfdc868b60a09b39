"""The bearer token is asked of the configuration (its refresh hook) once a second at most."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client as k8s_client

from nfs_provisioner.kube import client as kube_client
from nfs_provisioner.kube.client import ApiClient


def _client(refreshes: list[int]) -> ApiClient:
    configuration = k8s_client.Configuration()
    configuration.host = "https://127.0.0.1:6443"
    configuration.api_key = {"authorization": "token-0"}
    configuration.api_key_prefix = {"authorization": "Bearer"}

    def refresh(config: Any) -> None:
        refreshes.append(1)
        config.api_key["authorization"] = f"token-{len(refreshes)}"

    configuration.refresh_api_key_hook = refresh
    return ApiClient(configuration, qps=0, burst=1, pool_size=1, user_agent="test")


def test_requests_within_a_second_reuse_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(kube_client.time, "monotonic", lambda: now[0])
    refreshes: list[int] = []
    api = _client(refreshes)
    first = api._headers()["Authorization"]
    now[0] += 0.5
    assert api._headers()["Authorization"] == first == "Bearer token-1"
    assert len(refreshes) == 1


def test_a_rotated_token_is_used_after_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(kube_client.time, "monotonic", lambda: now[0])
    refreshes: list[int] = []
    api = _client(refreshes)
    api._headers()
    now[0] += 1.0
    assert api._headers()["Authorization"] == "Bearer token-2"
    assert len(refreshes) == 2
