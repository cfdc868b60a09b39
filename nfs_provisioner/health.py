"""HTTP endpoint for /metrics, /healthz (liveness) and /readyz (readiness)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

# A check returns None when healthy, else the reason it is not.
Check = Callable[[], str | None]


class HealthServer:
    def __init__(self, address: str, *, liveness: Check, readiness: Check) -> None:
        host, _, port = address.rpartition(":")
        checks = {"/healthz": liveness, "/readyz": readiness}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._reply(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
                elif path in checks:
                    problem = checks[path]()
                    if problem is None:
                        self._reply(200, b"ok\n", "text/plain")
                    else:
                        self._reply(503, problem.encode() + b"\n", "text/plain")
                else:
                    self._reply(404, b"not found\n", "text/plain")

            def _reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # probes every few seconds would drown the real logs

        self.server = ThreadingHTTPServer((host or "0.0.0.0", int(port)), Handler)
        self.server.daemon_threads = True

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        threading.Thread(target=self.server.serve_forever, name="health", daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
