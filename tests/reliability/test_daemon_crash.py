"""The daemon as a real process driving the real Claude Code CLI against the local model server:
SIGTERM mid-task leaves nothing claimed or running; SIGKILL mid-task, then a restart, ends
with every task done exactly once.

Under CI a missing ``claude`` binary fails these tests; locally they are skipped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aictl.model_server import serve
from aictl.services.ais import AIService
from aictl.services.audit import AuditService
from aictl.services.tasks import TaskService
from aictl.workspace import Workspace, initialise
from tests.real_claude import claude_binary

pytestmark = pytest.mark.slow

STALL: list[dict[str, Any]] = [{"stall": True}]
QUICK: list[dict[str, Any]] = [{"text": "Done.", "usage": {"input_tokens": 50, "output_tokens": 5}}]
WAIT = 120.0
DAEMON_ARGS = ("daemon", "start", "--foreground", "--concurrency", "2", "--grace", "1s")


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    workspace, _ = initialise(root)
    (root / ".ai" / "policy.yaml").write_text(
        "version: 1\nsettings:\n  lease_ttl: 3s\n  timeouts:\n    idle: 10m\n"
    )
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first")
    ais = AIService(workspace, environ={"AICTL_CLAUDE_BIN": str(claude_binary())})
    try:
        ais.register("claude-1", connector="claude-code", max_concurrency=2)
    finally:
        ais.close()
    return workspace


@pytest.fixture
def daemons(workspace: Workspace, tmp_path: Path) -> Iterator[Callable[[str], Any]]:
    """Start `aictl daemon start --foreground` against a model server URL; every process
    started is killed and reaped at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(url: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "AICTL_CLAUDE_BIN": str(claude_binary()),
            "ANTHROPIC_BASE_URL": url,
            "ANTHROPIC_API_KEY": "dummy-key-for-the-local-model-server",
            "CLAUDE_CODE_MAX_RETRIES": "0",
            "API_TIMEOUT_MS": "600000",
        }
        env.pop("AICTL_DB", None)
        with open(tmp_path / f"daemon-{len(started)}.out", "wb") as out:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "aictl",
                    "daemon",
                    "start",
                    "--foreground",
                    "--concurrency",
                    "2",
                    "--grace",
                    "1s",
                ],
                cwd=workspace.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


def tasks(workspace: Workspace) -> dict[int, Any]:
    service = TaskService(workspace)
    try:
        return {task.id: task for task in service.list_tasks()}
    finally:
        service.close()


def wait_for(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def audit_entries(workspace: Workspace) -> list[Any]:
    audit = AuditService(workspace)
    try:
        return audit.entries()
    finally:
        audit.close()


def processes_in(root: Path) -> list[int]:
    """Processes whose working directory is ``root`` (an agent left behind would be one)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if Path(os.readlink(entry / "cwd")) == root:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def create(workspace: Workspace, count: int) -> list[int]:
    service = TaskService(workspace)
    try:
        return [service.create(f"Job {n}", paths=[f"out/{n}/**"]).id for n in range(count)]
    finally:
        service.close()


def test_sigterm_mid_task_leaves_nothing_claimed_or_running(
    workspace: Workspace, daemons: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    ids = create(workspace, 2)
    with serve(STALL) as server:
        daemon = daemons(server.url)
        wait_for(
            lambda: all(str(t.status) == "running" for t in tasks(workspace).values()),
            "both tasks running",
        )
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(WAIT) == 0
    after = tasks(workspace)
    assert {str(after[i].status) for i in ids} == {"queued"}
    assert all(after[i].lease_expires_at is None for i in ids)
    service = TaskService(workspace)
    try:
        assert service.locks() == []
    finally:
        service.close()
    assert processes_in(workspace.root) == []
    kinds = Counter(entry.kind for entry in audit_entries(workspace))
    assert kinds["task.released"] == 2 and kinds["daemon.stopped"] == 1


def test_sigkill_mid_task_then_restart_does_every_task_exactly_once(
    workspace: Workspace, daemons: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    ids = create(workspace, 4)
    with serve(STALL) as stalled:
        first = daemons(stalled.url)
        wait_for(
            lambda: sum(str(t.status) == "running" for t in tasks(workspace).values()) == 2,
            "two tasks running",
        )
        first.send_signal(signal.SIGKILL)
        assert first.wait(WAIT) == -signal.SIGKILL
        # Its agents, still waiting on the stalled stream, get SIGKILL from the kernel (the
        # parent-death signal) rather than running on unsupervised; their leases expire.
        wait_for(lambda: processes_in(workspace.root) == [], "the killed daemon's agents gone")
    with serve(QUICK) as quick:
        second = daemons(quick.url)
        wait_for(
            lambda: all(str(t.status) == "done" for t in tasks(workspace).values()),
            "every task done",
        )
        second.send_signal(signal.SIGTERM)
        assert second.wait(WAIT) == 0
    entries = audit_entries(workspace)
    completed = Counter(entry.task_id for entry in entries if entry.kind == "task.completed")
    assert completed == dict.fromkeys(ids, 1)
    expired = {entry.task_id for entry in entries if entry.kind == "task.lease_expired"}
    assert len(expired) == 2
    assert all(tasks(workspace)[i].attempts == (2 if i in expired else 1) for i in ids)
