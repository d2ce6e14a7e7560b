"""The daemon's log: one JSON object per line in ``.ai/logs/daemon.jsonl``.

Every line has ``at`` (UTC, ISO 8601), ``level`` (debug, info, warning, error), ``event`` (a
stable dotted name such as ``task.dispatched``) and ``message`` (for people), plus the event's
own fields. Lines are written whole under a lock, from any thread, and flushed at once: a
``tail -f`` (or ``aictl daemon logs --follow``) sees each event as it happens, and a daemon
killed with SIGKILL loses nothing it had logged.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

from aictl.clock import Clock, SystemClock
from aictl.domain.tasks import format_time
from aictl.domain.terminal import printable

LEVELS = ("debug", "info", "warning", "error")


class JsonLog:
    def __init__(
        self,
        path: Path,
        *,
        clock: Clock | None = None,
        echo: TextIO | None = None,
        echo_level: str = "info",
    ) -> None:
        """``echo``: also print each line at ``echo_level`` or above there, as text (the
        console of a daemon in the foreground)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.clock = clock or SystemClock()
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self._echo = echo
        self._echo_from = LEVELS.index(echo_level)

    def write(self, level: str, event: str, message: str, **fields: Any) -> dict[str, Any]:
        record = {
            "at": format_time(self.clock.now()),
            "level": level,
            "event": event,
            "message": message,
            **fields,
        }
        text = json.dumps(record, default=str, separators=(",", ":"))
        with self._lock:
            if not self._file.closed:
                self._file.write(text + "\n")
                self._file.flush()
            # Notifications reach the console through the notifier's console channel (which
            # ``console: false`` turns off): not echoed twice.
            if (
                self._echo is not None
                and LEVELS.index(level) >= self._echo_from
                and not event.startswith("notify.")
            ):
                self._echo.write(printable(format_line(record)) + "\n")
                self._echo.flush()
        return record

    def debug(self, event: str, message: str, **fields: Any) -> None:
        self.write("debug", event, message, **fields)

    def info(self, event: str, message: str, **fields: Any) -> None:
        self.write("info", event, message, **fields)

    def warning(self, event: str, message: str, **fields: Any) -> None:
        self.write("warning", event, message, **fields)

    def error(self, event: str, message: str, **fields: Any) -> None:
        self.write("error", event, message, **fields)

    def rotate(self, max_bytes: int) -> Path | None:
        """When the file is over ``max_bytes``, rename it to ``<name>.1`` (replacing an older
        one) and go on in a new file; returns the rotated file's path, or None. Done under the
        write lock, so no line is lost or split between the two files."""
        from aictl.services.maintenance import rotate

        with self._lock:
            if self._file.closed or self._file.tell() <= max_bytes:
                return None
            self._file.close()
            kept = rotate(self.path)
            self._file = self.path.open("a", encoding="utf-8")
            return kept

    def close(self) -> None:
        with self._lock:
            self._file.close()


def format_line(record: dict[str, Any]) -> str:
    """A log record as one line for people: time, level, message. A record about a task
    whose message does not start by naming it gets ``task N:`` in front: the lines of
    several tasks running at once (their tool calls above all) interleave."""
    at = str(record.get("at", ""))[11:19]
    level = str(record.get("level", ""))
    shown = level.upper() if level in ("warning", "error") else level
    message = str(record.get("message", ""))
    task = record.get("task")
    if isinstance(task, int) and not re.match(rf"task {task}\b", message, re.IGNORECASE):
        message = f"task {task}: {message}"
    return f"{at} {shown:<7} {message}"


def for_people(record: dict[str, Any]) -> bool:
    """Whether the text form of the log shows ``record``: info and above. Debug records
    (a notice that repeats a line already logged, a task waiting for an AI) stay in the
    JSON lines (``aictl daemon logs --json``)."""
    return record.get("level") != "debug"


def stdout_echo() -> TextIO:
    return sys.stdout
