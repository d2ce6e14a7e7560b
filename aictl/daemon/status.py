"""What ``daemon status``, ``daemon stop``, ``daemon logs`` and ``task watch`` read and do.

The daemon's own view comes from its state file (rewritten on every tick); the queue, the
leases and the AIs come fresh from the state database, so ``status`` is right even about a
daemon that stopped or died.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from aictl.clock import Clock, SystemClock
from aictl.daemon.runtime import DaemonPaths, is_running, read_pid, read_state
from aictl.domain.tasks import format_time, parse_time
from aictl.errors import AictlError, InvalidInput
from aictl.services.tasks import TaskService
from aictl.store.ais import AIStore
from aictl.workspace import Workspace


class DaemonNotRunning(InvalidInput):
    """No daemon serves this state database."""

    exit_code = 1


class StopTimedOut(AictlError):
    """The daemon did not stop within the timeout."""


def daemon_status(workspace: Workspace, *, clock: Clock | None = None) -> dict[str, Any]:
    """The daemon (pid, uptime, last tick, running tasks with AI and elapsed time), the queue
    depth by status and every AI with its health. ``running`` is false when no process holds
    the daemon lock; the last state written is then reported as it was."""
    now = (clock or SystemClock()).now()
    paths = DaemonPaths.of(workspace)
    running = is_running(paths)
    state = read_state(paths) or {}
    service = TaskService(workspace)
    try:
        queue = service.store.count_by_status()
        ai_store = AIStore(service.db, service.store.clock)
        load = ai_store.load()
        ais = [
            {
                "id": ai.id,
                "status": ai.status.value,
                "load": load.get(ai.id, 0),
                "max_concurrency": ai.max_concurrency,
                "consecutive_failures": ai.health.get("consecutive_failures", 0),
                "last_error": ai.health.get("last_error"),
            }
            for ai in ai_store.list_ais()
        ]
    finally:
        service.close()
    started = _time(state.get("started_at"))
    last_tick = _time(state.get("last_tick"))
    tasks = []
    for entry in state.get("running_tasks", []) if running else []:
        began = _time(entry.get("started_at"))
        tasks.append(
            {
                "task_id": entry.get("task"),
                "ai": entry.get("ai"),
                "title": entry.get("title"),
                "elapsed_seconds": round((now - began).total_seconds(), 1) if began else None,
            }
        )
    return {
        "running": running,
        "pid": (read_pid(paths) or state.get("pid")) if running else None,
        "state": state.get("daemon", "never started") if running else "not running",
        "health": state.get("status") if running else None,
        "started_at": state.get("started_at"),
        "uptime_seconds": (
            round((now - started).total_seconds(), 1) if running and started else None
        ),
        "last_tick": state.get("last_tick"),
        "last_tick_age_seconds": (
            round((now - last_tick).total_seconds(), 1) if last_tick else None
        ),
        "port": state.get("port") if running else None,
        "concurrency": state.get("concurrency"),
        "queue": {status: queue.get(status, 0) for status in _STATUSES},
        "running_tasks": tasks,
        "ais": ais,
        "log": str(paths.log),
    }


def daemon_dashboard(workspace: Workspace) -> tuple[int | None, str] | None:
    """The pid and dashboard URL of the daemon serving this state database, or None when none
    runs (or it has not written its port yet). The URL has no token: ``aictl daemon start``
    prints it once and keeps it nowhere an agent could read it."""
    paths = DaemonPaths.of(workspace)
    if not is_running(paths):
        return None
    state = read_state(paths) or {}
    port = state.get("port")
    if not isinstance(port, int) or not 0 < port < 65536:
        return None
    return read_pid(paths) or state.get("pid"), f"http://127.0.0.1:{port}/"


_STATUSES = ("queued", "claimed", "running", "blocked", "done", "failed", "cancelled")


def _time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return parse_time(text)
    except (ValueError, AictlError):
        return None


def stop_daemon(
    workspace: Workspace,
    *,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Send SIGTERM to the running daemon and wait until it has let go of its lock; returns
    its pid. ``DaemonNotRunning`` when none runs; ``StopTimedOut`` when it is still running
    after ``timeout`` seconds (its running tasks may need longer: see ``--timeout``)."""
    paths = DaemonPaths.of(workspace)
    pid = read_pid(paths)
    if not is_running(paths) or pid is None:
        raise DaemonNotRunning(
            f"no daemon is running for {workspace.root}",
            hint="start one with `aictl daemon start`",
        )
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while is_running(paths):
        if time.monotonic() >= deadline:
            raise StopTimedOut(
                f"daemon {pid} is still stopping after {timeout:g}s (it lets running tasks "
                "finish, then releases them)",
                hint="wait, or run `aictl daemon stop` again: a second SIGTERM interrupts "
                "the running tasks at once",
            )
        sleep(0.1)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it when this process started it (no zombie)
    return pid


def log_lines(path: Path, *, last: int | None = None) -> list[dict[str, Any]]:
    """The log's records (the ``last`` ones only, when given); unreadable lines are kept as
    ``{"message": line}``."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    if last is not None:
        lines = lines[-last:] if last > 0 else []
    return [_record(line) for line in lines if line.strip()]


def _record(line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError:
        return {"message": line}
    return value if isinstance(value, dict) else {"message": line}


def follow(
    path: Path,
    *,
    stop: Callable[[], bool],
    interval: float = 0.2,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[dict[str, Any]]:
    """Records appended to the log from now on, until ``stop()`` is true. Survives the file
    being created later or truncated."""
    offset = path.stat().st_size if path.exists() else 0
    pending = ""
    while not stop():
        try:
            size = path.stat().st_size
        except OSError:
            size = 0
        if size < offset:
            offset = 0
        if size > offset:
            with path.open("rb") as stream:
                stream.seek(offset)
                chunk = stream.read(size - offset)
            offset = size
            pending += chunk.decode("utf-8", errors="replace")
            *complete, pending = pending.split("\n")
            for line in complete:
                if line.strip():
                    yield _record(line)
        else:
            sleep(interval)


def watch_snapshot(workspace: Workspace) -> dict[str, Any]:
    """Tasks, held locks and AIs, as ``task watch`` shows them."""
    service = TaskService(workspace)
    try:
        tasks = service.list_tasks()
        locks = service.locks()
        ai_store = AIStore(service.db, service.store.clock)
        load = ai_store.load()
        ais = ai_store.list_ais()
        now = service.store.clock.now()
    finally:
        service.close()
    return {
        "at": format_time(now),
        "tasks": [
            {
                "id": task.id,
                "status": str(task.status),
                "title": task.title,
                "holder": task.lease_holder if task.status in ("claimed", "running") else None,
                "attempts": task.attempts,
                "lease_expires_in": (
                    round((task.lease_expires_at - now).total_seconds())
                    if task.lease_expires_at
                    else None
                ),
                "note": task.blocked_reason or task.failure_reason or "",
            }
            for task in tasks
        ],
        "locks": [
            {"task_id": lock.task_id, "glob": lock.glob, "holder": lock.holder} for lock in locks
        ],
        "ais": [
            {
                "id": ai.id,
                "status": ai.status.value,
                "load": load.get(ai.id, 0),
                "max_concurrency": ai.max_concurrency,
                "consecutive_failures": ai.health.get("consecutive_failures", 0),
            }
            for ai in ais
        ],
        "daemon": daemon_status_line(workspace),
    }


def daemon_status_line(workspace: Workspace) -> str:
    paths = DaemonPaths.of(workspace)
    if not is_running(paths):
        return "no daemon running"
    state = read_state(paths) or {}
    return (
        f"daemon {read_pid(paths)} {state.get('status', '?')}, "
        f"{state.get('running', 0)} running, last tick {str(state.get('last_tick', '?'))[11:19]}"
    )
