"""`aictl daemon start/status/stop/logs` and `aictl task watch --once` (the daemon really runs,
in the background, as a separate process)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator

import pytest

from aictl.daemon.runtime import DaemonPaths, is_running, read_pid
from aictl.workspace import Workspace
from tests.cli.conftest import Result
from tests.daemon_fakes import wait_for

Aictl = Callable[..., Result]


@pytest.fixture
def started(aictl: Aictl, workspace: Workspace) -> Iterator[int]:
    """A background daemon, stopped (or killed) at the end of the test."""
    code, out, err = aictl("daemon", "start", "--json", "--grace", "1s")
    assert code == 0, err
    pid = int(json.loads(out)["pid"])
    yield pid
    if is_running(DaemonPaths.of(workspace)):
        aictl("daemon", "stop", "--timeout", "30s")


def test_start_status_logs_stop(aictl: Aictl, workspace: Workspace, started: int) -> None:
    paths = DaemonPaths.of(workspace)
    assert is_running(paths) and read_pid(paths) == started
    code, out, err = aictl("daemon", "status", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["running"] and report["pid"] == started
    assert report["health"] == "ok" and report["port"] > 0
    assert report["queue"]["queued"] == 0 and report["uptime_seconds"] >= 0
    code, out, _ = aictl("daemon", "status")
    assert code == 0 and f"daemon {started} running" in out
    wait_for(paths.log.exists, "the log")
    code, out, _ = aictl("daemon", "logs", "--json")
    assert code == 0
    events = [json.loads(line)["event"] for line in out.splitlines()]
    assert "daemon.started" in events
    code, out, _ = aictl("daemon", "logs", "-n", "1")
    assert code == 0 and len(out.splitlines()) == 1
    code, out, err = aictl("daemon", "stop")
    assert code == 0, err
    assert out.strip() == f"daemon {started} stopped"
    assert not is_running(paths)
    code, out, _ = aictl("daemon", "status", "--json")
    assert json.loads(out)["running"] is False
    code, out, _ = aictl("audit", "log", "--json")
    kinds = [entry["kind"] for entry in json.loads(out)]
    assert "daemon.started" in kinds and "daemon.stopped" in kinds


def test_a_second_start_names_the_running_daemon(aictl: Aictl, started: int) -> None:
    code, _, err = aictl("daemon", "start")
    assert code == 4
    assert f"pid {started}" in err
    code, _, err = aictl("daemon", "start", "--foreground")
    assert code == 4
    assert f"pid {started}" in err


def test_stop_without_a_daemon_says_so_and_succeeds(aictl: Aictl) -> None:
    code, out, _ = aictl("daemon", "stop")
    assert code == 0  # idempotent: stopping what is stopped is no error
    assert out == "no daemon running: nothing to stop\n"
    code, out, _ = aictl("daemon", "stop", "--json")
    assert code == 0 and json.loads(out) == {"stopped": False, "pid": None}
    code, out, _ = aictl("daemon", "status")
    assert code == 0 and "no daemon is running" in out


def test_status_shows_queue_and_ais(aictl: Aictl) -> None:
    assert aictl("task", "create", "One")[0] == 0
    assert aictl("task", "create", "Two")[0] == 0
    _code, out, _ = aictl("daemon", "status", "--json")
    report = json.loads(out)
    assert report["queue"]["queued"] == 2 and report["running_tasks"] == []


def test_watch_once_shows_tasks_locks_and_the_daemon(aictl: Aictl) -> None:
    assert aictl("task", "create", "Locked", "--path", "src/**")[0] == 0
    assert aictl("task", "claim", "1", "--as", "w1")[0] == 0
    code, out, err = aictl("task", "watch", "--once", "--json")
    assert code == 0, err
    view = json.loads(out)
    assert view["tasks"][0]["status"] == "claimed" and view["tasks"][0]["holder"] == "w1"
    assert view["locks"] == [{"task_id": 1, "glob": "src/**", "holder": "w1"}]
    assert view["daemon"] == "no daemon running"
    code, out, _ = aictl("task", "watch", "--once")
    assert code == 0 and "Locked" in out and "src/**" in out


def test_a_daemon_that_fails_at_start_reports_why(
    aictl: Aictl, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workspace.state_dir / "policy.yaml").write_text("version: 1\ndefault: maybe\n")
    code, _, err = aictl("daemon", "start")
    assert code == 2, err
    assert "policy" in err and os.path.basename(str(DaemonPaths.of(workspace).out)) in err


def test_logs_as_text_show_info_and_above_with_task_ids(aictl: Aictl, workspace: Workspace) -> None:
    log = DaemonPaths.of(workspace).log
    log.parent.mkdir(parents=True, exist_ok=True)
    records = [
        {"at": "2026-01-01T10:00:01Z", "level": "info", "event": "task.progress", "task": 3,
         "message": "tool Write {}"},
        {"at": "2026-01-01T10:00:02Z", "level": "info", "event": "task.finished", "task": 3,
         "message": "task 3 done (fake-1, 1.0s)"},
        {"at": "2026-01-01T10:00:03Z", "level": "debug", "event": "notify.task.done", "task": 3,
         "message": "task 3 (t) done by fake-1"},
    ]  # fmt: skip
    log.write_text("".join(json.dumps(record) + "\n" for record in records))
    code, out, _ = aictl("daemon", "logs")
    assert code == 0
    assert out.splitlines() == [
        "10:00:01 info    task 3: tool Write {}",
        "10:00:02 info    task 3 done (fake-1, 1.0s)",
    ]
    assert aictl("daemon", "logs", "-n", "1")[1] == "10:00:02 info    task 3 done (fake-1, 1.0s)\n"
    assert len(aictl("daemon", "logs", "--json")[1].splitlines()) == 3
