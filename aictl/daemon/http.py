"""``/health`` and ``/metrics`` over HTTP, on 127.0.0.1 only.

``/health`` answers 200 with the daemon's health as JSON while the loop ticks, and 503 with the
same JSON (``status: "stuck"``) when the last tick is older than the stall limit: a supervisor
or a load balancer can then restart it. ``/metrics`` is the Prometheus text format.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aictl.daemon.metrics import CONTENT_TYPE

HOST = "127.0.0.1"

Health = Callable[[], Mapping[str, Any]]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: requests are not worth a line in the daemon's log."""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/health":
            health = dict(self.server.health())
            status = 200 if health.get("status") in ("ok", "stopping") else 503
            self._send(status, "application/json", json.dumps(health).encode())
        elif path == "/metrics":
            self._send(200, CONTENT_TYPE, self.server.metrics())
        else:
            body = json.dumps({"error": "not found", "paths": ["/health", "/metrics"]})
            self._send(404, "application/json", body.encode())

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, health: Health, metrics: Callable[[], bytes]) -> None:
        super().__init__((HOST, port), _Handler)
        self.health = health
        self.metrics = metrics


class StatusServer:
    """Serves in a background thread; ``port`` is the one bound (0 picks a free one)."""

    def __init__(self, port: int, health: Health, metrics: Callable[[], bytes]) -> None:
        self._server = _Server(port, health, metrics)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="status-http", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
