"""What `daemon status`, `daemon logs` and `task watch` read: the log (last lines, following it
through appends and truncation), the status of a running daemon, the watch view."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from aictl.daemon.jsonlog import for_people, format_line
from aictl.daemon.runtime import DaemonPaths
from aictl.daemon.status import (
    daemon_status,
    daemon_status_line,
    follow,
    log_lines,
    watch_snapshot,
)
from aictl.workspace import Workspace
from tests.daemon_fakes import Recorder, register_ai, reset_recorder, running_daemon, wait_for
from tests.unit.test_daemon_scheduler import create


def test_log_lines_keeps_the_last_and_survives_a_bad_line(tmp_path: Path) -> None:
    log = tmp_path / "daemon.jsonl"
    assert log_lines(log) == []
    log.write_text('{"event": "a", "message": "one"}\nnot json\n[1]\n{"event": "b"}\n')
    assert [r.get("event") for r in log_lines(log)] == ["a", None, None, "b"]
    assert log_lines(log)[1] == {"message": "not json"}
    assert [r.get("event") for r in log_lines(log, last=1)] == ["b"]
    assert log_lines(log, last=0) == []


def test_follow_yields_appended_records_whole_and_restarts_after_truncation(
    tmp_path: Path,
) -> None:
    log = tmp_path / "daemon.jsonl"
    log.write_text('{"event": "old"}\n')

    def append(text: str) -> None:
        with log.open("a") as stream:
            stream.write(text)

    writes = iter(
        [
            lambda: append('{"event": "new"}\n{"event": "ha'),
            lambda: append('lf"}\n'),
            lambda: log.write_text('{"event": "after truncation"}\n'),
        ]
    )
    seen: list[str] = []

    def sleep(_: float) -> None:
        step = next(writes, None)
        if step is not None:
            step()

    for record in follow(log, stop=lambda: len(seen) >= 3, sleep=sleep):
        seen.append(record["event"])
    assert seen == ["new", "half", "after truncation"]


def test_status_and_watch_of_a_running_daemon(workspace: Workspace) -> None:
    recorder: Recorder = reset_recorder()
    register_ai(workspace)
    held = create(workspace, "Long job [hold]", paths=["src/**"])
    with running_daemon(workspace, grace=0.1):
        wait_for(recorder.started.is_set, "the run started")
        wait_for(lambda: daemon_status(workspace)["running_tasks"], "a running task")
        report = daemon_status(workspace)
        line = daemon_status_line(workspace)
        view = watch_snapshot(workspace)
    assert report["running"] and report["state"] == "running"
    assert report["running_tasks"][0]["task_id"] == held
    assert report["running_tasks"][0]["elapsed_seconds"] >= 0
    assert report["ais"][0]["id"] == "fake-1" and report["ais"][0]["load"] == 1
    assert line.startswith("daemon ") and "ok" in line
    assert view["locks"] == [{"task_id": held, "glob": "src/**", "holder": "fake-1"}]
    assert view["tasks"][0]["lease_expires_in"] > 0
    stopped = daemon_status(workspace)
    assert stopped["running"] is False and stopped["running_tasks"] == []


def test_format_line_shows_time_level_and_message() -> None:
    record = {"at": "2026-01-01T12:34:56.7Z", "level": "warning", "message": "careful"}
    assert format_line(record) == "12:34:56 WARNING careful"


def test_a_task_line_is_prefixed_with_its_task_unless_it_names_it() -> None:
    tool = {"at": "2026-01-01T12:34:56Z", "level": "info", "task": 7, "message": "tool Write {}"}
    assert format_line(tool) == "12:34:56 info    task 7: tool Write {}"
    named = {**tool, "message": "task 7 done (fake-1, 0.1s)"}
    assert format_line(named) == "12:34:56 info    task 7 done (fake-1, 0.1s)"
    other = {**tool, "message": "task 71 done"}  # another task's number is not this one's
    assert format_line(other) == "12:34:56 info    task 7: task 71 done"


def is_completion(line: str, task_id: int) -> bool:
    """A line saying that the task is done: `task.finished` or its notice, in any form."""
    return f"task {task_id} done" in line or (f"task {task_id} (" in line and "done by" in line)


def test_a_completion_is_logged_once_in_text_and_every_line_names_its_task(
    workspace: Workspace,
) -> None:
    reset_recorder()
    register_ai(workspace, "fake-1", max_concurrency=2)
    first, second = create(workspace, "One"), create(workspace, "Two")
    console = io.StringIO()
    log = DaemonPaths.of(workspace).log

    def notices() -> list[dict[str, Any]]:
        return [r for r in log_lines(log) if r.get("event") == "notify.task.done"]

    with running_daemon(workspace, concurrency=2, console=console):
        wait_for(lambda: len(notices()) == 2, "both tasks done and notified")
    records = log_lines(log)
    text = [format_line(record) for record in records if for_people(record)]
    for task_id in (first, second):
        assert len([line for line in text if is_completion(line, task_id)]) == 1, text
        shown = console.getvalue().splitlines()
        assert len([line for line in shown if is_completion(line, task_id)]) == 1, shown
    assert {r["level"] for r in notices()} == {"debug"}  # still in the JSON lines
    about_tasks = [r for r in records if isinstance(r.get("task"), int)]
    assert about_tasks
    for record in about_tasks:
        assert f" task {record['task']}" in format_line(record)
