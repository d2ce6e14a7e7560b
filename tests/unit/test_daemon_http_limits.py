"""The status server under idle and surplus connections, with real sockets on 127.0.0.1.

Before: 1,500 idle connections to the daemon's port were never timed out, one thread each.
Now an idle connection is closed after the read timeout, connections past the cap are closed
at once, and ``/health`` keeps answering throughout.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from aictl.daemon.http import StatusServer


@contextmanager
def server(**limits: float) -> Iterator[StatusServer]:
    status = StatusServer(0, lambda: {"status": "ok"}, lambda: b"m 1\n", **limits)  # type: ignore[arg-type]
    status.start()
    try:
        yield status
    finally:
        status.stop()


def connect(port: int) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    return connection


def health(port: int) -> dict[str, object]:
    with connect(port) as connection:
        connection.sendall(b"GET /health HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := connection.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200"), head
    return json.loads(body)  # type: ignore[no-any-return]


def closed_by_server(connection: socket.socket, within: float) -> bool:
    """True when the server closes ``connection`` (EOF or reset) within ``within`` seconds."""
    connection.settimeout(within)
    try:
        return connection.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def handler_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name.startswith("status-request"))


def test_an_idle_connection_is_closed_after_the_read_timeout() -> None:
    with server(read_timeout=0.5) as status:
        idle = connect(status.port)
        started = time.monotonic()
        assert closed_by_server(idle, within=10)
        assert time.monotonic() - started >= 0.4  # not refused: served, then timed out
        idle.close()


def test_connections_past_the_cap_are_closed_and_health_still_answers() -> None:
    with server(read_timeout=30, max_connections=4) as status:
        idle = [connect(status.port) for _ in range(4)]
        for connection in idle:  # each one served by its thread, silent
            connection.sendall(b"GET /health HTTP/1.0\r\n")
        deadline = time.monotonic() + 10
        while handler_threads() < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert handler_threads() == 4
        extra = [connect(status.port) for _ in range(50)]
        assert all(closed_by_server(connection, within=10) for connection in extra)
        assert handler_threads() == 4
        for connection in idle:
            connection.close()
        deadline = time.monotonic() + 10
        while handler_threads() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert health(status.port) == {"status": "ok"}
        for connection in extra:
            connection.close()


def test_many_idle_connections_leave_a_bounded_number_of_threads() -> None:
    with server(read_timeout=30, max_connections=8) as status:
        crowd = [connect(status.port) for _ in range(300)]
        time.sleep(0.2)  # not a timed assertion: gives the accept loop a moment
        assert handler_threads() <= 8
        for connection in crowd:
            connection.close()
        deadline = time.monotonic() + 10
        answered = None
        while answered is None and time.monotonic() < deadline:
            try:
                answered = health(status.port)
            except (AssertionError, OSError):
                time.sleep(0.05)
        assert answered == {"status": "ok"}
