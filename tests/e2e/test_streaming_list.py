"""Informers sync from the API server's streaming list, and from paged lists where it has none."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from devcluster import ensure_binaries, start_control_plane

from nfs_provisioner.kube import ApiClient, Handlers, Informer, paths
from tests.e2e.harness import Cluster, wait_for


@contextmanager
def running_informer(api: ApiClient, namespace: str) -> Iterator[tuple[Informer, list[str]]]:
    stop = threading.Event()
    added: list[str] = []
    informer = Informer(
        api,
        paths.namespaced("persistentvolumeclaims", namespace),
        kind="claims",
        resync_period=0,
        stop=stop,
    )
    informer.add_handlers(
        Handlers(
            on_add=lambda claim: added.append(claim["metadata"]["name"]),
            on_update=lambda old, new: None,
            on_delete=lambda claim: None,
        )
    )
    thread = informer.start()
    try:
        yield informer, added
    finally:
        stop.set()
        thread.join(timeout=5)


def names(informer: Informer) -> list[str]:
    return sorted(claim["metadata"]["name"] for claim in informer.items())


def sync_and_follow(cluster: Cluster) -> Informer:
    namespace = cluster.create_namespace("stream")
    for name in ("a", "b", "c"):
        cluster.create_claim(namespace, name, storage_class="none")
    with running_informer(cluster.api, namespace) as (informer, added):
        assert informer.synced.wait(30)
        assert names(informer) == ["a", "b", "c"]
        # The watch that follows the list sees what is created afterwards.
        cluster.create_claim(namespace, "d", storage_class="none")
        wait_for(lambda: "d" in added, timeout=30, what="claim d in the cache")
        assert sorted(added) == ["a", "b", "c", "d"]
    return informer


def test_an_informer_syncs_from_a_streaming_list(cluster: Cluster) -> None:
    # kube-apiserver v1.36 has the WatchList feature on by default.
    assert sync_and_follow(cluster).streaming is True


def test_an_informer_lists_in_pages_where_the_server_cannot_stream() -> None:
    with start_control_plane(
        binaries=ensure_binaries(), apiserver_args=("--feature-gates=WatchList=false",)
    ) as plane:
        assert sync_and_follow(Cluster.connect(plane)).streaming is False
