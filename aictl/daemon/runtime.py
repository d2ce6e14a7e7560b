"""Where the daemon keeps its files, and the lock that allows one daemon per state database.

Files live beside the state database (``.ai/`` of the repository):

- ``daemon.lock``: held with ``flock`` while a daemon runs (``filelock``); the kernel drops it
  when the process dies, even by SIGKILL, so a crashed daemon never blocks the next one;
- ``daemon.pid``: the running daemon's pid, so a second start can name it;
- ``daemon.json``: the daemon's state, rewritten atomically on every tick (its heartbeat);
- ``logs/daemon.jsonl``: the JSON-lines log; ``logs/daemon.out``: the output of a daemon
  started in the background.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from aictl.errors import Contention
from aictl.workspace import Workspace


class DaemonRunning(Contention):
    """Another daemon already serves this state database (exit code 4)."""


@dataclass(frozen=True)
class DaemonPaths:
    lock: Path
    pid: Path
    state: Path
    log: Path
    out: Path

    @classmethod
    def of(cls, workspace: Workspace) -> DaemonPaths:
        folder = workspace.db_path.parent
        return cls(
            lock=folder / "daemon.lock",
            pid=folder / "daemon.pid",
            state=folder / "daemon.json",
            log=folder / "logs" / "daemon.jsonl",
            out=folder / "logs" / "daemon.out",
        )


def read_pid(paths: DaemonPaths) -> int | None:
    try:
        return int(paths.pid.read_text().strip())
    except (OSError, ValueError):
        return None


def is_running(paths: DaemonPaths) -> bool:
    """True when a process holds the daemon lock. Probing takes the lock for an instant when
    it is free: the only test that cannot be fooled by a stale pid file or a reused pid."""
    probe = FileLock(str(paths.lock), timeout=0, thread_local=False)
    try:
        probe.acquire()
    except Timeout:
        return True
    probe.release()
    return False


class InstanceLock:
    """The single-instance lock. ``acquire`` raises ``DaemonRunning`` naming the pid."""

    def __init__(self, paths: DaemonPaths) -> None:
        self.paths = paths
        self._lock = FileLock(str(paths.lock), timeout=0, thread_local=False)

    def acquire(self) -> None:
        self.paths.lock.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except Timeout:
            pid = read_pid(self.paths)
            raise DaemonRunning(
                f"a daemon already runs for {self.paths.lock.parent}"
                + (f" (pid {pid})" if pid else ""),
                hint="`aictl daemon status` shows it; `aictl daemon stop` stops it",
            ) from None
        write_atomically(self.paths.pid, f"{os.getpid()}\n")

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.paths.pid.unlink()
        self._lock.release()


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path``: a
    reader sees the old content or the new, never half of either."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def read_state(paths: DaemonPaths) -> dict[str, Any] | None:
    try:
        data = json.loads(paths.state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
