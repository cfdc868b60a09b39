"""The first calls of ``run``: whether this process can work with the API server at all.

Answers that no retry can change (credentials refused, the Lease's namespace missing, a Lease
name the server will not accept) are permanent: ``run`` stops with one line. Answers that time
or another actor can change (server not there yet, RBAC not applied yet, overload) are
transient: ``run`` keeps trying and says why in its log and in ``/readyz``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nfs_provisioner.kube import paths
from nfs_provisioner.kube.client import ApiClient
from nfs_provisioner.kube.errors import ApiError
from nfs_provisioner.kube.leases import create_lease


@dataclass(frozen=True)
class Problem:
    """Why the provisioner cannot work yet: one line naming the cause and the fix."""

    message: str
    permanent: bool


def check_access(api: ApiClient, lease: tuple[str, str] | None) -> Problem | None:
    """None when the API server answers this process and, if ``lease`` (namespace, name) is
    given, would accept that Lease; else the first problem found."""
    try:
        api.request("GET", paths.VOLUMES, params={"limit": 1})
    except ApiError as error:
        return _access_problem(api.server, error)
    if lease is None:
        return None
    namespace, name = lease
    try:
        create_lease(api, namespace, name, {"holderIdentity": ""}, dry_run=True)
    except ApiError as error:
        # Only answers that no retry changes stop the start here. Anything else (the Lease
        # exists; no right to create one, which a pre-created Lease does not need) is left
        # to the leader election, which retries and logs it.
        return _lease_problem(namespace, name, error) if error.status in (404, 422) else None
    return None


def _access_problem(server: str, error: ApiError) -> Problem:
    if error.status == 401:
        return Problem(
            f"the API server at {server} refused the credentials (401 Unauthorized): fix the "
            "token or client certificate in the kubeconfig (--kubeconfig / KUBECONFIG; in a pod, "
            "the service account's token)",
            permanent=True,
        )
    if error.status == 403:
        return Problem(
            f"not allowed to list PersistentVolumes ({error}): grant the provisioner's "
            "RBAC (the chart's ClusterRole and binding)",
            permanent=False,
        )
    if error.status == 0:
        return Problem(
            f"cannot reach the API server at {server} ({_reason(error.message)}): check the server "
            "address in the kubeconfig and that the API server is running",
            permanent=False,
        )
    return Problem(f"the API server at {server} answered {error}", permanent=False)


def _lease_problem(namespace: str, name: str, error: ApiError) -> Problem:
    """For a 404 or 422 answer to creating the Lease."""
    if error.status == 404:
        return Problem(
            f"the namespace {namespace} of the leader-election Lease does not exist: create "
            "it, or set --pod-namespace / POD_NAMESPACE to an existing namespace",
            permanent=True,
        )
    return Problem(
        f"the API server refuses {name!r} as the leader-election Lease's name "
        f"({error.message}): choose a provisioner name of lower-case letters, digits, "
        "'-', '.' and '/', or set --leader-election-id / NFS_PROVISIONER_LEADER_ELECTION_ID",
        permanent=True,
    )


def _reason(transport_error: str) -> str:
    """The operating system's words ("[Errno 111] Connection refused") out of urllib3's nest of
    wrappers, when there are some; else the whole text."""
    found = re.findall(r"\[Errno -?\d+\] [^'\")]+", transport_error)
    return found[-1].strip() if found else transport_error
