"""Tells open pages that something changed: one watcher thread, however many pages.

The watcher polls, on its own connection, SQLite's ``PRAGMA data_version`` (which changes
whenever any other connection commits: the daemon, a CLI command, an approval) and the sizes
of the running tasks' transcripts (an agent's tool calls are written there, not to the
database). Each change bumps a counter and wakes every waiting stream; a stream sends the
counter as an event and the page fetches its live region again.

The thread runs only while at least one stream is subscribed, so a daemon with no dashboard
open pays nothing; one poll costs one pragma and a few ``stat`` calls.
"""

from __future__ import annotations

import threading
from pathlib import Path

from aictl.dashboard.views import latest_transcript
from aictl.store import dashboard as queries
from aictl.store.db import Database, connect
from aictl.workspace import Workspace

POLL_INTERVAL = 0.2
"""Seconds between polls: an update reaches an open page within about this plus one fetch."""


class ChangeFeed:
    def __init__(self, workspace: Workspace, *, interval: float = POLL_INTERVAL) -> None:
        self.workspace = workspace
        self.interval = interval
        self._changed = threading.Condition()
        self._counter = 0
        self._subscribers = 0
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def counter(self) -> int:
        return self._counter

    def subscribe(self) -> int:
        """Count one more stream (starting the watcher if it is the first); returns the
        current counter."""
        with self._changed:
            self._subscribers += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._watch, name="dashboard-feed", daemon=True
                )
                self._thread.start()
            return self._counter

    def unsubscribe(self) -> None:
        with self._changed:
            self._subscribers -= 1

    def wait(self, seen: int, timeout: float) -> int:
        """Block until the counter differs from ``seen``, the feed closes or ``timeout``
        passes; returns the counter."""
        with self._changed:
            self._changed.wait_for(lambda: self._counter != seen or self._closed, timeout)
            return self._counter

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Wake every stream so that it ends, and stop the watcher."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _watch(self) -> None:
        db = connect(self.workspace.database)
        try:
            version = queries.data_version(db)
            running = self._running(db)
            sizes = self._sizes(running)
            while True:
                with self._changed:
                    if self._closed or self._subscribers <= 0:
                        self._thread = None
                        return
                    self._changed.wait(self.interval)
                    if self._closed:
                        return
                now_version = queries.data_version(db)
                if now_version != version:
                    running = self._running(db)
                now_sizes = self._sizes(running)
                if now_version != version or now_sizes != sizes:
                    version, sizes = now_version, now_sizes
                    with self._changed:
                        self._counter += 1
                        self._changed.notify_all()
        finally:
            db.close()

    def _running(self, db: Database) -> list[Path]:
        paths = []
        for row in queries.running(db):
            path = latest_transcript(self.workspace, int(row["id"]))
            if path is not None:
                paths.append(path)
        return paths

    @staticmethod
    def _sizes(paths: list[Path]) -> tuple[int, ...]:
        sizes = []
        for path in paths:
            try:
                sizes.append(path.stat().st_size)
            except OSError:
                sizes.append(-1)
        return tuple(sizes)
