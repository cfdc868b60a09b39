"""The soak's proxy against a local echo server: it forwards, stalls, drops, and passes an
upstream close on to the client (a watch through it must end when the API server goes)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from soak.proxy import FaultyProxy


@pytest.fixture
def upstream() -> Iterator[tuple[socket.socket, list[socket.socket]]]:
    """An echo server on 127.0.0.1; the list holds its side of each connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            accepted.append(connection)
            threading.Thread(target=echo, args=(connection,), daemon=True).start()

    def echo(connection: socket.socket) -> None:
        try:
            while data := connection.recv(65536):
                connection.sendall(data)
        except OSError:
            pass

    threading.Thread(target=serve, daemon=True).start()
    yield listener, accepted
    listener.close()
    for connection in accepted:
        connection.close()


@pytest.fixture
def proxy(upstream: tuple[socket.socket, list[socket.socket]]) -> Iterator[FaultyProxy]:
    running = FaultyProxy(upstream_port=upstream[0].getsockname()[1]).start()
    yield running
    running.close()


def _connect(proxy: FaultyProxy) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    return client


def test_bytes_pass_both_ways(proxy: FaultyProxy) -> None:
    with _connect(proxy) as client:
        client.sendall(b"hello")
        assert client.recv(5) == b"hello"


def test_an_upstream_close_reaches_the_client(
    proxy: FaultyProxy, upstream: tuple[socket.socket, list[socket.socket]]
) -> None:
    with _connect(proxy) as client:
        client.sendall(b"x")
        assert client.recv(1) == b"x"
        (server_side,) = upstream[1]
        server_side.shutdown(socket.SHUT_RDWR)
        server_side.close()
        # EOF within the client's timeout, not a connection that hangs on forever.
        assert client.recv(1) == b""


def test_a_stall_holds_bytes_until_healed(proxy: FaultyProxy) -> None:
    with _connect(proxy) as client:
        client.sendall(b"a")
        assert client.recv(1) == b"a"
        proxy.stall()
        client.sendall(b"b")
        client.settimeout(0.5)
        with pytest.raises(TimeoutError):
            client.recv(1)
        proxy.heal()
        client.settimeout(5)
        assert client.recv(1) == b"b"


def test_a_drop_resets_open_connections_and_refuses_new_ones_until_healed(
    proxy: FaultyProxy,
) -> None:
    with _connect(proxy) as client:
        client.sendall(b"a")
        assert client.recv(1) == b"a"
        proxy.drop()
        with pytest.raises(OSError):
            client.sendall(b"b")
            assert client.recv(1) == b""
            raise ConnectionResetError
    with _connect(proxy) as refused:
        assert refused.recv(1) == b""
    proxy.heal()
    with _connect(proxy) as client:
        client.sendall(b"c")
        assert client.recv(1) == b"c"
