"""Where the daemon keeps its files, and the locks that allow one daemon per clone (``.ai/``)
and, on SQLite, one per state database.

Files live beside the state database (``.ai/`` of the repository):

- ``daemon.lock``: held with ``flock`` while a daemon runs (``filelock``); the kernel drops it
  when the process dies, even by SIGKILL, so a crashed daemon never blocks the next one. A
  second lock follows the database file's identity (device and inode) instead of its path, in
  a folder every user shares (``$TMPDIR/aictl-locks/``), so that a hard link to ``state.db``
  in another folder cannot start a second daemon on the same data;
- ``daemon.pid``: the running daemon's pid, so a second start can name it;
- ``daemon.json``: the daemon's state, rewritten atomically on every tick (its heartbeat);
- ``logs/daemon.jsonl``: the JSON-lines log; ``logs/daemon.out``: the output of a daemon
  started in the background.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
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
    database: Path | None = None

    @classmethod
    def of(cls, workspace: Workspace) -> DaemonPaths:
        folder = workspace.db_path.parent
        return cls(
            # No file identity on PostgreSQL: several daemons (one per clone, on several
            # hosts) share its database by design; the lock beside .ai/ still allows one per
            # clone, and fencing keeps their claims apart.
            database=None if workspace.url else workspace.db_path,
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
        self._identity: tuple[FileLock, Path] | None = None

    def acquire(self) -> None:
        """Take the lock beside the database's path, then the one on its identity; raises
        ``DaemonRunning`` naming the running daemon when either is held."""
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
        try:
            self._acquire_identity()
        except BaseException:
            self._lock.release()
            raise
        write_atomically(self.paths.pid, f"{os.getpid()}\n")

    def _acquire_identity(self) -> None:
        if self.paths.database is None:
            return
        base = identity_base(self.paths.database)
        lock = FileLock(str(base.with_suffix(".lock")), timeout=0, thread_local=False, mode=0o666)
        pid_file = base.with_suffix(".pid")
        try:
            lock.acquire()
        except Timeout:
            try:
                pid = int(pid_file.read_text().strip())
            except (OSError, ValueError):
                pid = None
            raise DaemonRunning(
                f"a daemon{f' (pid {pid})' if pid else ''} already serves the same database "
                f"as {self.paths.database} through another path (a hard link to the file)",
                hint="one daemon per database: stop that one, or give this repository a "
                "database of its own",
            ) from None
        write_atomically(pid_file, f"{os.getpid()}\n")
        self._identity = (lock, pid_file)

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.paths.pid.unlink()
        if self._identity is not None:
            lock, pid_file = self._identity
            with contextlib.suppress(OSError):
                pid_file.unlink()
            lock.release()
            self._identity = None
        self._lock.release()


def identity_base(database: Path) -> Path:
    """Where the identity lock of ``database`` lives, without a suffix: named by the device
    and inode of the file, in a folder shared by every user (sticky, like /tmp)."""
    stat = database.stat()
    folder = Path(tempfile.gettempdir()) / "aictl-locks"
    if not folder.is_dir():
        folder.mkdir(exist_ok=True)
        with contextlib.suppress(OSError):
            folder.chmod(0o1777)
    return folder / f"{stat.st_dev}-{stat.st_ino}"


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
