"""Notifications: signed webhooks checked by a test receiver, retries, dead endpoints, chat
through apprise, and a failing channel that never stops the others."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from aictl.clock import ManualClock
from aictl.daemon.jsonlog import JsonLog
from aictl.daemon.notify import (
    SIGNATURE_HEADER,
    ChatChannel,
    ConsoleChannel,
    Notice,
    NotificationFailed,
    Notifier,
    WebhookChannel,
    channels_from,
    merge_sections,
    sign,
    verify,
)
from aictl.daemon.status import log_lines

SECRET = b"s3cret-key"


class Receiver:
    """A local HTTP endpoint that records requests and answers with scripted statuses."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.statuses = list(statuses or [])
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append((self.path, dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def notice() -> Notice:
    return Notice("task.done", "task 1 done", "2026-01-01T00:00:00Z", {"task": 1})


def dead_url() -> str:
    """A port nothing listens on (bound, then closed)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()
    return f"http://127.0.0.1:{port}/hook"


def test_a_webhook_is_signed_over_the_exact_body(receiver: Receiver) -> None:
    WebhookChannel(receiver.url + "/hook", secret=SECRET).send(notice())
    [(path, headers, body)] = receiver.requests
    assert path == "/hook"
    assert verify(SECRET, body, headers[SIGNATURE_HEADER])
    assert not verify(b"another key", body, headers[SIGNATURE_HEADER])
    assert not verify(SECRET, body + b" ", headers[SIGNATURE_HEADER])
    assert json.loads(body) == {
        "event": "task.done",
        "message": "task 1 done",
        "at": "2026-01-01T00:00:00Z",
        "task": 1,
    }
    assert headers["X-Aictl-Event"] == "task.done"


def test_a_server_error_is_retried_and_a_refusal_is_not() -> None:
    pauses: list[float] = []
    with Receiver([503, 500, 200]) as flaky:
        WebhookChannel(flaky.url, retries=2, sleep=pauses.append).send(notice())
        assert len(flaky.requests) == 3
    assert pauses == [0.5, 1.0]
    with Receiver([404]) as refusing:
        with pytest.raises(NotificationFailed, match="HTTP 404"):
            WebhookChannel(refusing.url, retries=3, sleep=pauses.append).send(notice())
        assert len(refusing.requests) == 1


def test_a_dead_webhook_fails_after_its_retries() -> None:
    pauses: list[float] = []
    channel = WebhookChannel(dead_url(), retries=2, timeout=2, sleep=pauses.append)
    with pytest.raises(NotificationFailed, match="after 3 attempt"):
        channel.send(notice())
    assert len(pauses) == 2


def test_a_missing_secret_refuses_to_send_unsigned(receiver: Receiver) -> None:
    [channel] = channels_from(
        {"webhooks": [{"url": receiver.url, "secret_env": "HOOK_KEY"}], "console": False},
        environ={},
        console=None,
    )
    with pytest.raises(NotificationFailed, match="HOOK_KEY"):
        channel.send(notice())
    assert receiver.requests == []


def test_channels_from_a_merged_section(receiver: Receiver) -> None:
    merged = merge_sections(
        [
            {"webhooks": [{"url": receiver.url, "secret_env": "K", "events": ["task.failed"]}]},
            {"console": False, "chat": [{"url_env": "CHAT"}], "webhooks": [{"url": "http://x"}]},
        ]
    )
    assert merged["console"] is False and len(merged["webhooks"]) == 2
    built = channels_from(merged, environ={"K": "key"}, console=io.StringIO())
    assert [channel.name for channel in built] == ["webhook", "webhook", "chat"]
    first = built[0]
    assert isinstance(first, WebhookChannel)
    assert first.secret == b"key" and first.events == frozenset({"task.failed"})


def test_chat_goes_through_apprise(receiver: Receiver) -> None:
    url = receiver.url.replace("http://", "json://") + "/chat"
    ChatChannel("CHAT_URL", url, ["task.done"]).send(notice())
    [(path, _, body)] = receiver.requests
    assert path == "/chat"
    assert "task 1 done" in json.loads(body)["message"]
    with pytest.raises(NotificationFailed, match="CHAT_URL"):
        ChatChannel("CHAT_URL", None, ["task.done"]).send(notice())


def test_a_failing_channel_is_logged_and_the_others_still_deliver(
    tmp_path: Path, receiver: Receiver
) -> None:
    journal = JsonLog(tmp_path / "log.jsonl", clock=ManualClock())
    results: list[tuple[str, bool]] = []
    notifier = Notifier(journal, on_result=lambda name, ok: results.append((name, ok)))
    console = io.StringIO()
    notifier.configure(
        [
            WebhookChannel(dead_url(), retries=0, timeout=2),
            WebhookChannel(receiver.url, secret=SECRET),
            ConsoleChannel(console),
        ]
    )
    notifier.start()
    notifier.notify("task.failed", "task 7 failed: tests failed", task=7)
    notifier.close()
    journal.close()
    assert results == [("webhook", False), ("webhook", True), ("console", True)]
    assert console.getvalue() == "[task.failed] task 7 failed: tests failed\n"
    records = log_lines(tmp_path / "log.jsonl")
    assert [record["event"] for record in records] == [
        "notify.task.failed",
        "notification.failed",
    ]
    assert records[1]["channel"] == "webhook" and "attempt" in records[1]["error"]
    assert len(receiver.requests) == 1


def test_sign_has_the_documented_form() -> None:
    assert sign(b"k", b"{}").startswith("sha256=") and len(sign(b"k", b"{}")) == 71
