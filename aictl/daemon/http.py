"""``/health`` and ``/metrics`` over HTTP, on 127.0.0.1 only.

``/health`` answers 200 with the daemon's health as JSON while the loop ticks, and 503 with the
same JSON (``status: "stuck"``) when the last tick is older than the stall limit: a supervisor
or a load balancer can then restart it. ``/metrics`` is the Prometheus text format.

Connections are bounded, so that nothing that can reach the port can take the daemon's
threads or descriptors (1,500 idle connections used to hold 1,500 threads forever): each is
served by its own thread with a read timeout (:data:`READ_TIMEOUT`, closed when the client
says nothing for that long), and at most :data:`MAX_CONNECTIONS` are served at once; one more
is closed as soon as it is accepted.

With a dashboard (``aictl.dashboard.app.DashboardApp``), every other path is the dashboard's:
its pages, its live event streams (bounded apart, within these connections) and its
approvals (``POST``).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from aictl.daemon.metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from aictl.dashboard.app import DashboardApp

HOST = "127.0.0.1"
READ_TIMEOUT = 5.0
"""Seconds a connection may stay silent (before or within its request) before it is closed."""
MAX_CONNECTIONS = 64
"""Connections served at once; the next ones are closed on accept until one ends."""

Health = Callable[[], Mapping[str, Any]]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.read_timeout)

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
        elif self.server.dashboard is not None:
            self.server.dashboard.handle(self, "GET")
        else:
            body = json.dumps({"error": "not found", "paths": ["/health", "/metrics"]})
            self._send(404, "application/json", body.encode())

    def do_POST(self) -> None:
        if self.server.dashboard is not None:
            self.server.dashboard.handle(self, "POST")
        else:
            self._send(405, "application/json", b'{"error": "method not allowed"}')

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the listen backlog: a burst waits for accept, not for SYN retries

    def __init__(
        self,
        port: int,
        health: Health,
        metrics: Callable[[], bytes],
        *,
        read_timeout: float,
        max_connections: int,
        dashboard: DashboardApp | None,
    ) -> None:
        self.dashboard = dashboard
        self.health = health
        self.metrics = metrics
        self.read_timeout = read_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__((HOST, port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve ``request`` in a thread if a slot is free; close it at once otherwise (the
        accept loop never waits, so a crowd of idle clients cannot hold it either)."""
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        thread = threading.Thread(
            target=self._serve, args=(request, client_address), name="status-request", daemon=True
        )
        thread.start()

    def _serve(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client that resets or times out is not the daemon's error to print."""


class StatusServer:
    """Serves in a background thread; ``port`` is the one bound (0 picks a free one)."""

    def __init__(
        self,
        port: int,
        health: Health,
        metrics: Callable[[], bytes],
        *,
        read_timeout: float = READ_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        dashboard: DashboardApp | None = None,
    ) -> None:
        self._server = _Server(
            port,
            health,
            metrics,
            read_timeout=read_timeout,
            max_connections=max_connections,
            dashboard=dashboard,
        )
        self.port = int(self._server.server_address[1])
        self.dashboard = dashboard
        if dashboard is not None:
            dashboard.port = self.port
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="status-http", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, end the dashboard's live streams, close the socket."""
        if self.dashboard is not None:
            self.dashboard.close()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
