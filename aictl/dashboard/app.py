"""Routes the dashboard's requests: pages, the live event stream, static files, approvals.

Served by ``aictl.daemon.http``'s bounded server (the daemon's port, or ``aictl dashboard``'s
own): each request arrives in its connection's thread and is answered here, reading through a
``Database`` opened for that request. Changing requests (``POST /approve``, ``POST /reject``)
call ``TaskService.approve`` / ``reject`` exactly as ``aictl task approve`` does, as the person
who started the server, and only with the token (see ``auth``).

Live pages hold a connection each (``GET /events``, server-sent events). They fit the server's
bounds: at most :data:`MAX_STREAMS` at once (one more gets 503 and the page's script retries),
within the server's 64 connections, so streams can never take every slot; and each ends after
:data:`STREAM_SECONDS` (the browser's ``EventSource`` reconnects by itself), so none holds a
thread forever.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aictl.clock import Clock, SystemClock
from aictl.dashboard import auth, pages, views
from aictl.dashboard.feed import ChangeFeed
from aictl.errors import AictlError, InvalidInput
from aictl.store.db import Database, connect
from aictl.workspace import Workspace

MAX_STREAMS = 16
"""Live pages served at once (each holds one of the server's connections)."""
STREAM_SECONDS = 60.0
"""A stream's longest life; the browser reconnects at once (``retry``)."""
KEEPALIVE_SECONDS = 10.0
"""Seconds between comments on a quiet stream: how soon a closed page's slot is noticed."""
MAX_FORM_BYTES = 16 * 1024
STATIC = Path(__file__).with_name("static")
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
SECURITY_HEADERS = (
    ("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    ("X-Frame-Options", "DENY"),  # no other page may frame the approve button
    # the token is in the URL: never sent to another site (and "no-referrer" would make the
    # browser send "Origin: null" with our own forms)
    ("Referrer-Policy", "same-origin"),
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-store"),
)
#: HTTP status of a refused action, by the error's exit code (see aictl/errors.py).
STATUS_BY_EXIT = {2: 400, 3: 403, 4: 409, 5: 409}

Page = Callable[[Database, dict[str, list[str]], str | None], tuple[str, str, str]]


class DashboardApp:
    """The dashboard of ``workspace``. ``token`` enables approvals (None: read-only for
    everyone); ``port`` must be set to the bound port before serving (``Host`` checks)."""

    def __init__(
        self,
        workspace: Workspace,
        token: str | None,
        *,
        clock: Clock | None = None,
        max_streams: int = MAX_STREAMS,
        stream_seconds: float = STREAM_SECONDS,
        keepalive: float = KEEPALIVE_SECONDS,
    ) -> None:
        self.workspace = workspace
        self.token = token
        self.clock = clock or SystemClock()
        self.port = 0
        self.feed = ChangeFeed(workspace)
        self.stream_seconds = stream_seconds
        self.keepalive = keepalive
        self._streams = threading.BoundedSemaphore(max_streams)
        self._pages: dict[str, Page] = {
            "/": self._tasks,
            "/agents": self._agents,
            "/locks": self._locks,
            "/approvals": self._approvals,
            "/decisions": self._decisions,
            "/money": self._money,
        }

    def url(self, *, with_token: bool = True) -> str:
        base = f"http://127.0.0.1:{self.port}/"
        return base + (f"?token={self.token}" if with_token and self.token else "")

    def close(self) -> None:
        """End the open streams and the watcher."""
        self.feed.close()

    # ------------------------------------------------------------------ dispatch

    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        """Answer one request on ``request`` (its headers read, its body not yet)."""
        if not auth.host_allowed(request.headers.get("Host"), self.port):
            self._send(request, 403, "text/plain", b"refused: unexpected Host header\n")
            return
        url = urlsplit(request.path)
        query = parse_qs(url.query)
        if method == "POST":
            self._act(request, url.path)
        elif url.path == "/events":
            self._events(request)
        elif url.path.startswith("/static/"):
            self._static(request, url.path.removeprefix("/static/"))
        elif url.path in self._pages or url.path.startswith("/task/"):
            self._page(request, url.path, query)
        else:
            self._send(request, 404, "text/plain", b"not found\n")

    def _writable(self, request: BaseHTTPRequestHandler, query: dict[str, list[str]]) -> bool:
        given = query.get("token", [None])[0] or _cookie(request, self._cookie_name())
        return auth.same_token(given, self.token)

    def _cookie_name(self) -> str:
        return f"aictl_dashboard_{self.port}"  # cookies ignore ports: one name per server

    # ------------------------------------------------------------------ pages

    def _page(
        self, request: BaseHTTPRequestHandler, path: str, query: dict[str, list[str]]
    ) -> None:
        writable = self._writable(request, query)
        token = self.token if writable else None
        db = connect(self.workspace.database)
        try:
            if path.startswith("/task/"):
                found = self._task(db, path.removeprefix("/task/"))
            else:
                found = self._pages[path](db, query, token)
        except AictlError as error:
            body = pages.message_page("aictl dashboard", error.message, error.hint)
            self._send(request, STATUS_BY_EXIT.get(error.exit_code, 500), "text/html", body)
            return
        finally:
            db.close()
        if found is None:
            self._send(request, 404, "text/html", pages.message_page("not found", path))
            return
        title, controls, body = found
        html = (
            body
            if query.get("fragment") == ["1"]
            else pages.frame(title, path, body, controls=controls, writable=writable)
        )
        headers = []
        if writable and query.get("token"):
            headers.append(
                (
                    "Set-Cookie",
                    f"{self._cookie_name()}={self.token}; HttpOnly; SameSite=Strict; Path=/",
                )
            )
        self._send(request, 200, "text/html; charset=utf-8", html, headers)

    def _now(self) -> str:
        return views.now_text(self.clock.now())

    def _tasks(self, db: Database, query: dict[str, list[str]], token: str | None) -> Any:
        statuses = query.get("status", [])
        label = query.get("label", [""])[0]
        text = query.get("q", [""])[0]
        data = views.tasks_page(db, statuses=statuses, label=label, text=text, now=self._now())
        return "Tasks", pages.tasks_controls(statuses, label, text), pages.tasks_body(data)

    def _agents(self, db: Database, query: dict[str, list[str]], token: str | None) -> Any:
        return "Running agents", "", pages.agents_body(views.agents_page(db, self.workspace))

    def _locks(self, db: Database, query: dict[str, list[str]], token: str | None) -> Any:
        path = query.get("path", [""])[0]
        data = views.locks_page(db, self.workspace.root, path)
        return "Locks", pages.locks_controls(path), pages.locks_body(data)

    def _approvals(self, db: Database, query: dict[str, list[str]], token: str | None) -> Any:
        from aictl.store.dashboard import pending_approvals

        return "Approvals", "", pages.approvals_body(pending_approvals(db), token)

    def _decisions(self, db: Database, query: dict[str, list[str]], token: str | None) -> Any:
        return (
            "Decisions and audit",
            "",
            pages.decisions_body(views.decisions_page(db, self.workspace)),
        )

    def _money(self, db: Database, query: dict[str, list[str]], token: str | None) -> Any:
        return "Money", "", pages.money_body(views.money_page(db, self.workspace))

    def _task(self, db: Database, text: str) -> tuple[str, str, str] | None:
        if not text.isdigit():
            return None
        row = views.task_page(db, self.workspace, int(text))
        if row is None:
            return None
        return f"Task {row['id']}: {row['title']}", "", pages.task_body(row)

    # ------------------------------------------------------------------ live updates

    def _events(self, request: BaseHTTPRequestHandler) -> None:
        if not self._streams.acquire(blocking=False):
            self._send(request, 503, "text/plain", b"too many live pages open\n")
            return
        try:
            request.send_response(200)
            request.send_header("Content-Type", "text/event-stream")
            request.send_header("Cache-Control", "no-store")
            request.end_headers()
            seen = self.feed.subscribe()
            try:
                request.wfile.write(f"retry: 500\nevent: hello\ndata: {seen}\n\n".encode())
                request.wfile.flush()
                deadline = time.monotonic() + self.stream_seconds
                while not self.feed.closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    now = self.feed.wait(seen, min(left, self.keepalive))
                    if now != seen:
                        seen = now
                        request.wfile.write(f"event: change\ndata: {now}\n\n".encode())
                    else:
                        request.wfile.write(b": keep-alive\n\n")
                    request.wfile.flush()
            finally:
                self.feed.unsubscribe()
        except OSError:
            pass  # the page went away (closed, reset, or too slow to read: the write timeout)
        finally:
            self._streams.release()

    def _static(self, request: BaseHTTPRequestHandler, name: str) -> None:
        path = STATIC / name
        if "/" in name or path.suffix not in STATIC_TYPES or not path.is_file():
            self._send(request, 404, "text/plain", b"not found\n")
            return
        self._send(request, 200, STATIC_TYPES[path.suffix], path.read_bytes())

    # ------------------------------------------------------------------ approvals

    def _act(self, request: BaseHTTPRequestHandler, path: str) -> None:
        if path not in ("/approve", "/reject"):
            self._send(request, 404, "text/plain", b"not found\n")
            return
        headers = request.headers
        if not auth.origin_allowed(headers.get("Origin"), headers.get("Referer"), self.port):
            self._refuse(request, 403, "refused: the request comes from another site")
            return
        try:
            length = int(headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_FORM_BYTES:
            self._refuse(request, 413, f"refused: a form is at most {MAX_FORM_BYTES} bytes")
            return
        form = parse_qs(request.rfile.read(length).decode("utf-8", errors="replace"))
        if not auth.same_token(form.get("token", [None])[0], self.token):
            self._refuse(
                request,
                403,
                "refused: this dashboard is read-only without its token",
                "open the URL that `aictl dashboard` or `aictl daemon start` printed",
            )
            return
        try:
            task_id = int(form.get("task", [""])[0])
        except ValueError:
            self._refuse(request, 400, "refused: the form names no task")
            return
        from aictl.services.tasks import TaskService

        service = TaskService(self.workspace, clock=self.clock)
        try:
            if path == "/approve":
                service.approve(task_id)
            else:
                reason = form.get("reason", [""])[0]
                if not reason.strip():
                    raise InvalidInput("a rejection needs a reason", hint="type why, then Reject")
                service.reject(task_id, reason=reason)
        except AictlError as error:
            self._refuse(
                request, STATUS_BY_EXIT.get(error.exit_code, 500), error.message, error.hint
            )
            return
        finally:
            service.close()
        request.send_response(303)
        request.send_header("Location", "/approvals")
        request.send_header("Content-Length", "0")
        for name, value in SECURITY_HEADERS:
            request.send_header(name, value)
        request.end_headers()

    def _refuse(
        self, request: BaseHTTPRequestHandler, status: int, message: str, hint: str | None = None
    ) -> None:
        self._send(request, status, "text/html", pages.message_page("refused", message, hint))

    # ------------------------------------------------------------------ responses

    @staticmethod
    def _send(
        request: BaseHTTPRequestHandler,
        status: int,
        content_type: str,
        body: str | bytes,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        data = body.encode() if isinstance(body, str) else body
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(data)))
        for name, value in (*SECURITY_HEADERS, *(headers or [])):
            request.send_header(name, value)
        request.end_headers()
        request.wfile.write(data)


def _cookie(request: BaseHTTPRequestHandler, name: str) -> str | None:
    from http.cookies import CookieError, SimpleCookie

    raw = request.headers.get("Cookie")
    if not raw:
        return None
    try:
        jar: SimpleCookie = SimpleCookie(raw)
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None
