"""A TCP proxy on 127.0.0.1 in front of the API server that can delay, stall and drop.

TLS passes through untouched (the API server's certificate names 127.0.0.1, whatever the
port), so a replica whose kubeconfig names the proxy talks to the real API server through it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field

_CHUNK = 65536


@dataclass
class FaultyProxy:
    upstream_port: int
    port: int = 0
    delay: float = 0.0
    stalled: threading.Event = field(default_factory=threading.Event)
    dropping: bool = False
    _listener: socket.socket | None = None
    _connections: set[socket.socket] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _closed: threading.Event = field(default_factory=threading.Event)

    def start(self) -> FaultyProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, name=f"proxy-{self.port}", daemon=True).start()
        return self

    def heal(self) -> None:
        self.delay = 0.0
        self.dropping = False
        self.stalled.clear()

    def drop(self) -> None:
        """Reset every open connection and every new one until ``heal``."""
        self.dropping = True
        self._close_all()

    def stall(self) -> None:
        """Hold every byte in flight until ``heal``: connections stay open, nothing moves."""
        self.stalled.set()

    def close(self) -> None:
        self._closed.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        self._close_all()

    def _close_all(self) -> None:
        with self._lock:
            connections = list(self._connections)
            self._connections.clear()
        for connection in connections:
            # Linger 0: the close is a reset, as a broken network path looks to the peer.
            with contextlib.suppress(OSError):
                connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
            # shutdown wakes the pump threads blocked in recv on it.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                connection.close()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.dropping:
                client.close()
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._connections |= {client, server}
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(_CHUNK)
                if not data:
                    break
                while self.stalled.is_set() and not self.dropping and not self._closed.is_set():
                    time.sleep(0.05)
                if self.delay:
                    time.sleep(self.delay)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            # shutdown, not only close: the other direction's thread is blocked in recv on
            # one of these, and a close alone would neither wake it nor send the peer a FIN
            # (the socket stays open until that recv returns), so a watch would hang.
            for end in (source, sink):
                with self._lock:
                    self._connections.discard(end)
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    end.close()
