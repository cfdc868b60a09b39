"""The bearer token is asked of the connection (a loader's refresh hook) once a second at most."""

from __future__ import annotations

import pytest

from nfs_provisioner.kube import client as kube_client
from nfs_provisioner.kube.client import ApiClient
from nfs_provisioner.kube.connection import Connection


def _client(refreshes: list[int]) -> ApiClient:
    def authorization() -> str:
        # Like an exec plugin's refresh: every call may give a new token.
        refreshes.append(1)
        return f"Bearer token-{len(refreshes)}"

    connection = Connection(host="https://127.0.0.1:6443", authorization=authorization)
    return ApiClient(connection, qps=0, burst=1, pool_size=1, user_agent="test")


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
