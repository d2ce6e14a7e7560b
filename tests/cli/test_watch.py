"""`aictl task watch`: filters, notes cut with an ellipsis, and one line per change in a pipe."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from aictl.cli import output
from aictl.domain.watching import events, narrowed
from aictl.workspace import Workspace
from tests.cli.conftest import Result

Aictl = Callable[..., Result]


def view(*tasks: dict[str, Any], locks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "at": "2026-12-05T07:08:09.123456Z",
        "tasks": list(tasks),
        "locks": locks or [],
        "ais": [],
        "daemon": "no daemon running",
    }


def task(task_id: int, status: str, holder: str | None = None, note: str = "") -> dict[str, Any]:
    return {
        "id": task_id,
        "status": status,
        "title": f"t{task_id}",
        "holder": holder,
        "attempts": 0,
        "lease_expires_in": None,
        "note": note,
    }


def test_filters_keep_the_tasks_that_pass_all_of_them_and_their_locks() -> None:
    lock = {"task_id": 2, "glob": "src/**", "holder": "w1"}
    whole = view(
        task(1, "queued"), task(2, "running", "w1"), task(3, "claimed", "w2"), locks=[lock]
    )
    assert [t["id"] for t in narrowed(whole, statuses={"running", "claimed"})["tasks"]] == [2, 3]
    assert [t["id"] for t in narrowed(whole, task_ids={1, 3})["tasks"]] == [1, 3]
    by_ai = narrowed(whole, ai="w1")
    assert [t["id"] for t in by_ai["tasks"]] == [2] and by_ai["locks"] == [lock]
    assert narrowed(whole, statuses={"queued"})["locks"] == []
    assert narrowed(whole) == whole


def test_events_name_each_change_once_and_ignore_the_lease_countdown() -> None:
    lock = {"task_id": 1, "glob": "src/**", "holder": "w1"}
    first = view(task(1, "queued"))
    claimed = view(task(1, "claimed", "w1"), locks=[lock])
    assert events(None, first) == ["07:08:09 task 1 queued: t1", "07:08:09 no daemon running"]
    assert events(first, claimed) == [
        "07:08:09 task 1 queued -> claimed by w1",
        "07:08:09 lock src/** taken by task 1 (w1)",
    ]
    ticking = view({**task(1, "claimed", "w1"), "lease_expires_in": 12}, locks=[lock])
    assert events(claimed, ticking) == []
    failed = view(task(1, "failed", note="tests failed"))
    assert events(ticking, failed) == [
        "07:08:09 task 1 claimed -> failed: tests failed",
        "07:08:09 lock src/** released by task 1",
    ]


def test_a_cut_says_it_was_cut() -> None:
    assert output.cut("x" * 80, 60) == "x" * 59 + "…"
    assert output.cut("short", 60) == "short"


def test_watch_once_filters_and_cuts_long_notes(aictl: Aictl) -> None:
    aictl("task", "create", "first")
    aictl("task", "create", "second")
    aictl("task", "create", "third")
    aictl("task", "claim", "2", "--as", "w1")
    token = aictl("task", "claim", "3", "--as", "w2", "-q")[1].strip()
    assert aictl("task", "fail", "3", "--lease", token, "--reason", "r" * 100, "--no-retry")[0] == 0
    code, out, err = aictl("task", "watch", "--once", "--json", "--status", "claimed")
    assert code == 0, err
    assert [t["id"] for t in json.loads(out)["tasks"]] == [2]
    out = aictl("task", "watch", "--once", "--json", "--ai", "w1")[1]
    assert [t["id"] for t in json.loads(out)["tasks"]] == [2]
    out = aictl("task", "watch", "--once", "--json", "--task", "1", "--task", "3")[1]
    assert [t["id"] for t in json.loads(out)["tasks"]] == [1, 3]
    out = aictl("task", "watch", "--once", "--task", "3")[1]
    assert "r" * 59 + "…" in out and "r" * 61 not in out
    code, _, err = aictl("task", "watch", "--once", "--status", "bogus")
    assert code == 2 and "unknown status 'bogus'" in err
    code, _, err = aictl("task", "watch", "--interval", "1")
    assert code == 2 and "1s? 1m?" in err


@pytest.fixture
def watching(workspace: Workspace) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Starts `aictl task watch` in a pipe, as a separate process; interrupted at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        started.append(watcher(workspace))
        return started[-1]

    yield start
    for process in started:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)


def watcher(workspace: Workspace) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "aictl", "task", "watch", "--interval", "20ms"],
        cwd=workspace.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "AICTL_DB": str(workspace.db_path)},
    )


class Lines:
    """The watcher's output line by line, read from the pipe's descriptor itself: a buffered
    file object may hold several lines already read while ``select`` waits for more."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        self.fd = process.stdout.fileno()
        self.pending = b""

    def next(self) -> str:
        """The next line (a guard against a hang, not a timed assertion)."""
        while b"\n" not in self.pending:
            ready, _, _ = select.select([self.fd], [], [], 60)
            assert ready, "the watcher printed nothing"
            chunk = os.read(self.fd, 65536)
            assert chunk, "the watcher ended"
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return line.decode() + "\n"


def test_in_a_pipe_only_new_events_are_printed_line_by_line(
    aictl: Aictl, watching: Callable[[], subprocess.Popen[bytes]]
) -> None:
    aictl("task", "create", "first", "--path", "src/**")
    lines = Lines(watching())
    assert lines.next().endswith(" task 1 queued: first\n")  # what it found
    assert lines.next().endswith(" no daemon running\n")
    assert aictl("task", "claim", "1", "--as", "w1")[0] == 0
    # The view reads tasks, then locks: a claim committed in between may show its lock first.
    claimed = {lines.next()[9:], lines.next()[9:]}
    assert claimed == {"task 1 queued -> claimed by w1\n", "lock src/** taken by task 1 (w1)\n"}
    aictl("task", "create", "second")
    assert lines.next().endswith(" task 2 queued: second\n")  # task 1 not printed again
