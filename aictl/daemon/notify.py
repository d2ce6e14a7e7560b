"""Notifications: task done, failed, blocked, approval needed, AI quarantined.

Every notification is written to the JSON log, then handed to a background thread that
delivers it to the configured channels (``notifications:`` in the policy; see
``docs/policy.md``), each a small class with ``name``, ``events`` and ``send``:

- ``console``: one line on the daemon's standard output (on unless ``console: false``);
- ``webhook``: an HTTP POST of the notification as JSON, signed with HMAC-SHA256 over the exact
  body (header ``X-Aictl-Signature: sha256=<hex>``, key from the environment variable named by
  ``secret_env``), with a timeout and a bounded number of retries;
- ``chat``: any service apprise knows (Slack, Teams, Matrix, Telegram, e-mail...), from an
  apprise URL read from the environment variable named by ``url_env`` (such URLs hold tokens).

Delivery never blocks or stops the scheduler: a channel that fails is retried as configured,
then the failure itself is logged (``notification.failed``) and the daemon goes on.

Every notice is delivered or logged as failed, also at stop: :meth:`Notifier.close` waits a
bounded time for the queue to drain, then logs a ``notification.failed`` line for each channel
that has not had its notice yet, queued or in flight (a webhook that never answers used to
make the notices behind it vanish without a word).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from aictl.daemon.jsonlog import JsonLog
from aictl.domain.durations import parse_duration
from aictl.domain.terminal import printable
from aictl.policy.vocabulary import NOTIFICATION_EVENTS

SIGNATURE_HEADER = "X-Aictl-Signature"
EVENT_HEADER = "X-Aictl-Event"
DEFAULT_TIMEOUT = 5.0
DEFAULT_RETRIES = 2
RETRY_PAUSE = 0.5
"""Seconds before the first retry; doubled for each later one."""


_OWN_FIELDS = frozenset({"at", "level", "event", "message", "channel", "notification", "error"})
"""Fields of a ``notification.failed`` line that a notice's own data may not replace."""


class NotificationFailed(Exception):
    """A channel could not deliver a notification (after its retries)."""


@dataclass(frozen=True)
class Notice:
    """One notification: ``event`` is a key of ``NOTIFICATION_EVENTS``."""

    event: str
    message: str
    at: str
    data: Mapping[str, Any] = field(default_factory=dict)
    repeat: bool = False
    """The daemon's console shows this already (its ``task.finished`` line): the console
    channel leaves it out; every other channel gets it."""

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.event, "message": self.message, "at": self.at, **self.data}


class Channel(Protocol):
    name: str
    events: frozenset[str]

    def send(self, notice: Notice) -> None:
        """Deliver ``notice`` or raise ``NotificationFailed``."""


def sign(secret: bytes, body: bytes) -> str:
    """The signature header value for ``body``: ``sha256=`` and the hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str) -> bool:
    """What a receiver does: recompute the signature and compare in constant time."""
    return hmac.compare_digest(sign(secret, body), header)


class ConsoleChannel:
    name = "console"

    def __init__(self, stream: TextIO, events: Iterable[str] = NOTIFICATION_EVENTS) -> None:
        self.stream = stream
        self.events = frozenset(events)

    def send(self, notice: Notice) -> None:
        if notice.repeat:
            return
        self.stream.write(printable(f"[{notice.event}] {notice.message}") + "\n")
        self.stream.flush()


class WebhookChannel:
    name = "webhook"

    def __init__(
        self,
        url: str,
        *,
        secret: bytes | None = None,
        missing_secret: str | None = None,
        events: Iterable[str] = NOTIFICATION_EVENTS,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url
        self.secret = secret
        self.missing_secret = missing_secret
        self.events = frozenset(events)
        self.timeout = timeout
        self.retries = retries
        self.sleep = sleep

    def send(self, notice: Notice) -> None:
        if self.missing_secret:
            # Unsigned would look valid to nobody: refuse, and say which variable is missing.
            raise NotificationFailed(
                f"environment variable {self.missing_secret} (secret_env) is not set"
            )
        body = json.dumps(notice.to_dict(), sort_keys=True, default=str).encode()
        headers = {"Content-Type": "application/json", EVENT_HEADER: notice.event}
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.sleep(RETRY_PAUSE * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    response.read()
                return
            except urllib.error.HTTPError as error:
                problem = f"HTTP {error.code}"
                if 400 <= error.code < 500 and error.code not in (408, 429):
                    break  # the receiver refuses this request: sending it again changes nothing
            except (urllib.error.URLError, OSError, TimeoutError) as error:
                reason = getattr(error, "reason", error)
                problem = f"{type(reason).__name__}: {reason}"
        raise NotificationFailed(
            f"POST {self.url} failed after {attempt + 1} attempt(s): {problem}"
        )


class ChatChannel:
    """A chat service through apprise (``pip install 'aictl[chat]'``)."""

    name = "chat"

    def __init__(self, url_env: str, url: str | None, events: Iterable[str]) -> None:
        self.url_env = url_env
        self.url = url
        self.events = frozenset(events)

    def send(self, notice: Notice) -> None:
        if not self.url:
            raise NotificationFailed(f"environment variable {self.url_env} (url_env) is not set")
        with warnings.catch_warnings():
            # apprise loads its plugins lazily, and one imports the deprecated stdlib imghdr
            # on Python 3.11-3.12: not the daemon's warning to show.
            warnings.simplefilter("ignore", DeprecationWarning)
            self._send(notice, self.url)

    def _send(self, notice: Notice, url: str) -> None:
        try:
            import apprise
        except ImportError:
            raise NotificationFailed(
                "chat notifications need apprise: pip install 'aictl[chat]'"
            ) from None
        sender = apprise.Apprise()
        if not sender.add(url):
            raise NotificationFailed(f"apprise does not understand the URL in {self.url_env}")
        if not sender.notify(title=f"aictl: {notice.event}", body=notice.message):
            raise NotificationFailed(f"apprise could not deliver to the URL in {self.url_env}")


def channels_from(
    settings: Mapping[str, Any],
    *,
    environ: Mapping[str, str],
    console: TextIO | None,
) -> list[Channel]:
    """The channels a merged ``notifications:`` section describes."""
    found: list[Channel] = []
    if console is not None and settings.get("console", True):
        found.append(ConsoleChannel(console))
    for hook in settings.get("webhooks") or ():
        secret_env = hook.get("secret_env")
        secret = environ.get(secret_env) if secret_env else None
        timeout = hook.get("timeout")
        found.append(
            WebhookChannel(
                hook["url"],
                secret=secret.encode() if secret else None,
                missing_secret=secret_env if secret_env and not secret else None,
                events=hook.get("events") or NOTIFICATION_EVENTS,
                timeout=(
                    parse_duration(str(timeout)).total_seconds()
                    if timeout is not None
                    else DEFAULT_TIMEOUT
                ),
                retries=hook.get("retries", DEFAULT_RETRIES),
            )
        )
    for chat in settings.get("chat") or ():
        found.append(
            ChatChannel(
                chat["url_env"],
                environ.get(chat["url_env"]),
                chat.get("events") or NOTIFICATION_EVENTS,
            )
        )
    return found


def merge_sections(sections: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Layers' ``notifications:`` sections merged: webhooks and chats of every layer are kept
    (a project cannot silence the global layer's), ``console`` is the last one stated."""
    merged: dict[str, Any] = {"console": True, "webhooks": [], "chat": []}
    for section in sections:
        if "console" in section and section["console"] is not None:
            merged["console"] = section["console"]
        merged["webhooks"] += list(section.get("webhooks") or ())
        merged["chat"] += list(section.get("chat") or ())
    return merged


class Notifier:
    """Logs every notice, and delivers it to the channels from a background thread."""

    def __init__(
        self,
        journal: JsonLog,
        *,
        on_result: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.journal = journal
        self.on_result = on_result or (lambda channel, ok: None)
        self._channels: list[Channel] = []
        self._queue: queue.Queue[Notice | None] = queue.Queue()
        self._thread = threading.Thread(target=self._deliver, name="notifier", daemon=True)
        self._lock = threading.Lock()
        self._in_flight: tuple[Notice, list[Channel]] | None = None
        """The notice being delivered and the channels it has not reached yet."""
        self._abandoned = False

    def configure(self, channels: list[Channel]) -> None:
        with self._lock:
            self._channels = list(channels)

    def start(self) -> None:
        self._thread.start()

    def notify(self, event: str, message: str, *, repeat: bool = False, **data: Any) -> None:
        """Log the notice and queue it for the channels. ``repeat``: the log already says
        this in other words (the daemon's own ``task.finished`` line), so the notice's line
        is written at debug level, out of the text form of the log."""
        level = "debug" if repeat else "info"
        self.journal.write(level, f"notify.{event}", message, notification=event, **data)
        at = self.journal.clock.now().isoformat()
        self._queue.put(Notice(event, message, at, data, repeat))

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued for at most ``timeout`` seconds, then stop. Whatever is
        not delivered by then (the notice in flight, the ones behind it) is logged as
        ``notification.failed``, one line per notice and channel; a send still in progress
        is left to the daemon thread, whose outcome is then no longer logged."""
        if not self._thread.is_alive():
            return
        self._queue.put(None)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            return
        with self._lock:
            self._abandoned = True
            undelivered = [self._in_flight] if self._in_flight else []
            while True:
                try:
                    queued = self._queue.get_nowait()
                except queue.Empty:
                    break
                if queued is not None:
                    undelivered.append((queued, self._channels_for(queued)))
            why = f"not delivered: the daemon stopped after waiting {timeout:g}s for the channel"
            for notice, channels in undelivered:
                for channel in channels:
                    self._failed(channel, notice, why)

    def _channels_for(self, notice: Notice) -> list[Channel]:
        return [channel for channel in self._channels if notice.event in channel.events]

    def _failed(self, channel: Channel, notice: Notice, error: str) -> None:
        self.on_result(channel.name, False)
        self.journal.warning(
            "notification.failed",
            f"{channel.name} notification of {notice.event} failed: {error}",
            channel=channel.name,
            notification=notice.event,
            error=error,
            **{key: value for key, value in notice.data.items() if key not in _OWN_FIELDS},
        )

    def _deliver(self) -> None:
        while True:
            notice = self._queue.get()
            if notice is None:
                return
            with self._lock:
                if self._abandoned:
                    return
                remaining = self._channels_for(notice)
                self._in_flight = (notice, remaining)
            for channel in list(remaining):
                try:
                    channel.send(notice)
                except Exception as error:
                    problem: str | None = str(error)
                else:
                    problem = None
                with self._lock:
                    if self._abandoned:  # close() has logged this one and the rest
                        return
                    remaining.remove(channel)
                    if problem is None:
                        self.on_result(channel.name, True)
                    else:
                        self._failed(channel, notice, problem)
            with self._lock:
                self._in_flight = None
