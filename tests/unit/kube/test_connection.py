"""Connection settings: in-cluster (read directly), light kubeconfigs, the full loader."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
import urllib3
from devcluster.certs import write_pki

from nfs_provisioner.kube.connection import (
    KEEPALIVE_IDLE_SECONDS,
    KEEPALIVE_INTERVAL_SECONDS,
    KEEPALIVE_PROBES,
    TOKEN_REREAD_SECONDS,
    Connection,
    TokenFile,
    from_kubeconfig,
    in_cluster,
    keepalive_socket_options,
    load_connection,
)
from nfs_provisioner.kube.errors import ConfigurationError

ENV = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
RETRIES = urllib3.Retry(connect=1, read=0, redirect=0, status=0)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    write_pki(directory)
    return directory


@pytest.fixture
def service_account(tmp_path: Path, pki: Path) -> Path:
    directory = tmp_path / "serviceaccount"
    directory.mkdir()
    (directory / "token").write_text("first-token\n")
    (directory / "ca.crt").write_bytes((pki / "ca.crt").read_bytes())
    return directory


def test_in_cluster_reads_host_token_and_ca(service_account: Path) -> None:
    connection = in_cluster(ENV, service_account)
    assert connection.host == "https://10.0.0.1:443"
    assert connection.authorization() == "Bearer first-token"
    assert connection.ca_file == str(service_account / "ca.crt")
    assert connection.verify


def test_in_cluster_brackets_an_ipv6_host(service_account: Path) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}
    assert in_cluster(env, service_account).host == "https://[fd00::1]:6443"


def test_in_cluster_pool_verifies_with_the_service_account_ca(service_account: Path) -> None:
    pool = in_cluster(ENV, service_account).pool(3, RETRIES)
    context = pool.connection_pool_kw["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.get_ca_certs()  # the service account's CA was loaded
    assert pool.connection_pool_kw["maxsize"] == 3


@pytest.mark.parametrize("missing", ["KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"])
def test_in_cluster_without_the_service_environment_says_so(
    service_account: Path, missing: str
) -> None:
    env = {key: value for key, value in ENV.items() if key != missing}
    with pytest.raises(ConfigurationError, match=r"KUBERNETES_SERVICE_HOST and .* not set"):
        in_cluster(env, service_account)


def test_in_cluster_without_a_token_names_the_file(service_account: Path) -> None:
    (service_account / "token").unlink()
    with pytest.raises(ConfigurationError, match=f"cannot read the token file {service_account}"):
        in_cluster(ENV, service_account)


def test_in_cluster_with_an_empty_token_says_so(service_account: Path) -> None:
    (service_account / "token").write_text("\n")
    with pytest.raises(ConfigurationError, match=r"token file .* is empty"):
        in_cluster(ENV, service_account)


def test_in_cluster_without_the_ca_names_the_file(service_account: Path) -> None:
    (service_account / "ca.crt").unlink()
    with pytest.raises(ConfigurationError, match=r"CA certificate .*ca\.crt is missing"):
        in_cluster(ENV, service_account)


def test_a_ca_file_that_is_not_a_certificate_is_a_configuration_error(
    service_account: Path,
) -> None:
    (service_account / "ca.crt").write_text("not a certificate\n")
    connection = in_cluster(ENV, service_account)
    with pytest.raises(ConfigurationError, match="cannot use the CA certificate"):
        connection.pool(1, RETRIES)


def test_load_connection_without_kubeconfig_outside_a_pod(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ConfigurationError, match=r"^cannot load in-cluster configuration: "):
        load_connection(None)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_rotated_token_is_read_again_after_a_minute(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("old")
    clock = FakeClock()
    token = TokenFile(path, clock=clock)
    assert token.authorization() == "Bearer old"
    path.write_text("new")
    clock.now += TOKEN_REREAD_SECONDS - 1
    assert token.authorization() == "Bearer old"
    clock.now += 1
    assert token.authorization() == "Bearer new"


def test_a_token_caught_half_rotated_keeps_the_last_good_one(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("good")
    clock = FakeClock()
    token = TokenFile(path, clock=clock)
    token.authorization()
    path.write_text("")
    clock.now += TOKEN_REREAD_SECONDS
    with pytest.raises(ConfigurationError, match="is empty"):
        token.authorization()
    path.write_text("good")
    clock.now += TOKEN_REREAD_SECONDS
    assert token.authorization() == "Bearer good"


def write_kubeconfig(
    path: Path, cluster: dict[str, object], user: dict[str, object], context: str = "here"
) -> str:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "here", "context": {"cluster": "c", "user": "u"}}],
                "current-context": context,
            }
        )
    )
    return str(path)


def test_a_token_kubeconfig_is_read_without_the_kubernetes_package(
    tmp_path: Path, pki: Path
) -> None:
    (tmp_path / "ca.crt").write_bytes((pki / "ca.crt").read_bytes())
    path = write_kubeconfig(
        tmp_path / "kubeconfig",
        {"server": "https://127.0.0.1:6443/", "certificate-authority": "ca.crt"},
        {"token": "abc"},
    )
    connection = from_kubeconfig(path)
    assert connection.host == "https://127.0.0.1:6443"
    assert connection.authorization() == "Bearer abc"
    # Relative to the kubeconfig's directory, as kubectl reads it.
    assert connection.ca_file == str(tmp_path / "ca.crt")
    assert connection.pool_factory is None
    connection.pool(2, RETRIES)


def test_the_light_paths_never_import_the_kubernetes_package(
    tmp_path: Path, service_account: Path
) -> None:
    path = write_kubeconfig(
        tmp_path / "kubeconfig", {"server": "https://127.0.0.1:6443"}, {"token": "abc"}
    )
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from nfs_provisioner.kube import connect\n"
        "from nfs_provisioner.kube.connection import in_cluster\n"
        f"connect({path!r}, qps=1, burst=1, pool_size=1, user_agent='t')\n"
        f"in_cluster({ENV!r}, Path({str(service_account)!r})).pool(1, None)\n"
        "print(sorted(m for m in sys.modules if m.startswith('kubernetes')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_kubeconfig_with_a_token_file_and_ca_data(tmp_path: Path, pki: Path) -> None:
    (tmp_path / "token").write_text("from-file\n")
    ca_data = base64.b64encode((pki / "ca.crt").read_bytes()).decode()
    path = write_kubeconfig(
        tmp_path / "kubeconfig",
        {"server": "https://api.example.test", "certificate-authority-data": ca_data},
        {"tokenFile": "token"},
    )
    connection = from_kubeconfig(path)
    assert connection.authorization() == "Bearer from-file"
    assert connection.ca_data == (pki / "ca.crt").read_text()
    assert connection.pool(1, RETRIES).connection_pool_kw["ssl_context"].get_ca_certs()


def test_an_insecure_kubeconfig_does_not_verify(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "kubeconfig",
        {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True},
        {"token": "abc"},
    )
    pool = from_kubeconfig(path).pool(1, RETRIES)
    assert pool.connection_pool_kw["ssl_context"].verify_mode == ssl.CERT_NONE
    assert pool.connection_pool_kw["cert_reqs"] == ssl.CERT_NONE


def test_a_missing_token_file_in_a_kubeconfig_names_both(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "kubeconfig", {"server": "https://127.0.0.1:6443"}, {"tokenFile": "gone"}
    )
    with pytest.raises(ConfigurationError, match=r"cannot load kubeconfig .*gone"):
        from_kubeconfig(path)


def test_other_credentials_go_through_the_full_loader(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "kubeconfig",
        {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True},
        {"username": "admin", "password": "secret"},
    )
    connection = from_kubeconfig(path)
    assert connection.pool_factory is not None
    assert connection.host == "https://127.0.0.1:6443"
    assert connection.authorization() == "Basic " + base64.b64encode(b"admin:secret").decode()


def test_a_missing_context_is_reported_by_the_full_loader(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "kubeconfig", {"server": "https://x"}, {"token": "t"}, context="elsewhere"
    )
    with pytest.raises(ConfigurationError, match=r"cannot load kubeconfig .*elsewhere"):
        from_kubeconfig(path)


def test_a_kubeconfig_that_is_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("clusters: [\n  - {name: x\n")
    with pytest.raises(ConfigurationError, match=f"cannot load kubeconfig '{path}'"):
        from_kubeconfig(str(path))


def test_a_missing_kubeconfig(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"cannot load kubeconfig .*No such file"):
        load_connection(str(tmp_path / "absent"))


def test_connection_is_immutable() -> None:
    connection = Connection(host="https://x", authorization=lambda: None)
    with pytest.raises(AttributeError):
        connection.host = "https://y"  # type: ignore[misc]


def _socket_made_with(options: list[tuple[int, int, int]]) -> socket.socket:
    """A real connection to a listener on 127.0.0.1, made by urllib3 with these options."""
    listener = socket.create_server(("127.0.0.1", 0))
    connection = urllib3.connection.HTTPConnection(
        "127.0.0.1", listener.getsockname()[1], socket_options=options
    )
    connection.connect()
    listener.close()
    sock = connection.sock
    assert sock is not None
    return sock


def test_every_api_connection_has_tcp_keepalive(service_account: Path) -> None:
    pool = in_cluster(ENV, service_account).pool(1, RETRIES)
    sock = _socket_made_with(pool.connection_pool_kw["socket_options"])
    try:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == KEEPALIVE_IDLE_SECONDS
        assert (
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == KEEPALIVE_INTERVAL_SECONDS
        )
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == KEEPALIVE_PROBES
        # urllib3's own default (no Nagle) is kept, not replaced.
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        sock.close()


def test_the_full_loader_pool_has_tcp_keepalive_too(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "kubeconfig",
        {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True},
        {"username": "admin", "password": "secret"},
    )
    pool = from_kubeconfig(path).pool(1, RETRIES)
    assert pool.connection_pool_kw["socket_options"] == keepalive_socket_options()
