"""The only code that talks HTTP to the API server: plain JSON dicts in and out.

Where the server is and how to authenticate come from :mod:`nfs_provisioner.kube.connection`
(in-cluster, or a kubeconfig); requests go straight through urllib3 so the hot path pays no
model (de)serialisation.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

import urllib3

from nfs_provisioner.kube.connection import Connection, load_connection
from nfs_provisioner.kube.errors import ApiError
from nfs_provisioner.kube.ratelimit import TokenBucket
from nfs_provisioner.objects import JsonDict, JsonObject

_REQUEST_TIMEOUT = 30.0
# How long a bearer token is reused before the configuration is asked again. Asking runs the
# loader's refresh hook (token file, exec plugin) and rewrites the configuration: about 5% of
# the provisioner's CPU in a burst when done for every request. Rotated tokens stay valid for
# far longer than this.
_TOKEN_REUSE_SECONDS = 1.0


class ApiClient:
    """Thread-safe: one pool of keep-alive connections shared by every worker."""

    def __init__(
        self, connection: Connection, *, qps: float, burst: int, pool_size: int, user_agent: str
    ) -> None:
        self._connection = connection
        self._pool = connection.pool(
            pool_size, urllib3.Retry(connect=3, read=0, redirect=0, status=0)
        )
        self._base = connection.host
        self._user_agent = user_agent
        self.limiter = TokenBucket(qps, burst)
        self._token: str | None = None
        self._token_expires = float("-inf")

    @property
    def server(self) -> str:
        """The API server's URL, for messages."""
        return str(self._base)

    def _bearer_token(self) -> str | None:
        now = time.monotonic()
        if now >= self._token_expires:
            # Two threads may both ask at the turn of a period; both get the same answer.
            self._token = self._connection.authorization()
            self._token_expires = now + _TOKEN_REUSE_SECONDS
        return self._token

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": self._user_agent}
        token = self._bearer_token()
        if token:
            headers["Authorization"] = token
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def _url(self, path: str, params: Mapping[str, Any] | None) -> str:
        url: str = self._base + path
        if params:
            url += "?" + urlencode({k: v for k, v in params.items() if v is not None})
        return url

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = _REQUEST_TIMEOUT,
    ) -> JsonDict:
        self.limiter.acquire()
        data = None if body is None else json.dumps(body).encode()
        try:
            response = self._pool.request(
                method,
                self._url(path, params),
                body=data,
                headers=self._headers(content_type if data is not None else None),
                timeout=urllib3.Timeout(connect=min(10.0, timeout), read=timeout),
            )
        except urllib3.exceptions.HTTPError as error:
            raise ApiError(0, "TransportError", f"{method} {path}: {error}") from error
        payload = response.data
        if response.status >= 300:
            raise _api_error(response.status, payload)
        return json.loads(payload) if payload else {}

    def get(self, path: str) -> JsonDict:
        return self.request("GET", path)

    def create(self, path: str, body: JsonObject) -> JsonDict:
        return self.request("POST", path, body=body)

    def replace(self, path: str, body: JsonObject) -> JsonDict:
        return self.request("PUT", path, body=body)

    def merge_patch(self, path: str, patch: JsonObject) -> JsonDict:
        return self.request("PATCH", path, body=patch, content_type="application/merge-patch+json")

    def delete(self, path: str, *, preconditions: JsonObject | None = None) -> JsonDict:
        body = None
        if preconditions:
            body = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": preconditions}
        return self.request("DELETE", path, body=body)

    def list_paged(
        self,
        path: str,
        consume: Callable[[list[JsonDict]], None],
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
    ) -> str:
        """Hand a collection to ``consume`` page by page; returns the list's resourceVersion.

        A caller that keeps only part of each object digests one page before the next arrives,
        so a cluster with 10 000 claims never has 10 000 whole claims in memory at once.
        """
        params: dict[str, Any] = {
            "limit": page_size,
            "labelSelector": label_selector,
            "fieldSelector": field_selector,
        }
        while True:
            page = self.request("GET", path, params=params, timeout=120.0)
            consume(page.get("items") or [])
            metadata = page.get("metadata") or {}
            token = metadata.get("continue")
            if not token:
                return str(metadata.get("resourceVersion", ""))
            params["continue"] = token

    def list_all(
        self,
        path: str,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
    ) -> tuple[list[JsonDict], str]:
        """All items of a collection; returns (items, list resourceVersion)."""
        items: list[JsonDict] = []
        resource_version = self.list_paged(
            path,
            items.extend,
            label_selector=label_selector,
            field_selector=field_selector,
            page_size=page_size,
        )
        return items, resource_version

    def watch(
        self,
        path: str,
        *,
        resource_version: str,
        timeout_seconds: int,
        send_initial_events: bool = False,
    ) -> Iterator[JsonDict]:
        """Stream watch events (dicts with ``type`` and ``object``) until the server ends it.

        With ``send_initial_events`` (a streaming list), the stream starts with an ``ADDED``
        for every object as of now (``resource_version`` empty) or at least as new as
        ``resource_version``, then a bookmark annotated ``k8s.io/initial-events-end``.
        """
        self.limiter.acquire()
        params: dict[str, Any] = {
            "watch": "true",
            "resourceVersion": resource_version or None,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": timeout_seconds,
        }
        if send_initial_events:
            params["sendInitialEvents"] = "true"
            params["resourceVersionMatch"] = "NotOlderThan"
        try:
            response = self._pool.request(
                "GET",
                self._url(path, params),
                headers=self._headers(),
                preload_content=False,
                timeout=urllib3.Timeout(connect=10.0, read=timeout_seconds + 30.0),
            )
        except urllib3.exceptions.HTTPError as error:
            raise ApiError(0, "TransportError", f"watch {path}: {error}") from error
        try:
            if response.status >= 300:
                raise _api_error(response.status, response.read())
            buffer = b""
            for chunk in response.stream(65536, decode_content=True):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        except urllib3.exceptions.HTTPError as error:
            raise ApiError(0, "TransportError", f"watch {path}: {error}") from error
        finally:
            response.release_conn()


def _api_error(status: int, payload: bytes) -> ApiError:
    try:
        decoded = json.loads(payload)
        return ApiError(status, str(decoded.get("reason", "")), str(decoded.get("message", "")))
    except (ValueError, AttributeError):
        return ApiError(status, "", payload[:500].decode(errors="replace"))


def connect(
    kubeconfig: str | None, *, qps: float, burst: int, pool_size: int, user_agent: str
) -> ApiClient:
    return ApiClient(
        load_connection(kubeconfig),
        qps=qps,
        burst=burst,
        pool_size=pool_size,
        user_agent=user_agent,
    )
