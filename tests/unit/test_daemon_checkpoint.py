"""The daemon's periodic audit checkpoint (settings.audit_checkpoint): when it is due, that the
daemon sends one at start and at stop that `audit verify` accepts, that a silent webhook never
holds up the loop, and that a failure is logged, not fatal."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from aictl.clock import ManualClock
from aictl.daemon.checkpoint import PeriodicCheckpoint
from aictl.daemon.jsonlog import JsonLog
from aictl.daemon.runtime import DaemonPaths
from aictl.daemon.status import log_lines
from aictl.services.audit import AuditService
from aictl.services.tasks import TaskService
from aictl.workspace import Workspace
from tests.daemon_fakes import Recorder, register_ai, reset_recorder, running_daemon, wait_for


def events(workspace: Workspace, name: str) -> list[dict[str, Any]]:
    return [
        record for record in log_lines(DaemonPaths.of(workspace).log) if record.get("event") == name
    ]


@pytest.fixture
def recorder() -> Recorder:
    return reset_recorder()


@pytest.fixture
def journal(workspace: Workspace) -> Iterator[JsonLog]:
    log = JsonLog(DaemonPaths.of(workspace).log)
    yield log
    log.close()


def test_due_at_start_then_after_the_period_or_the_event_count(
    workspace: Workspace, journal: JsonLog
) -> None:
    now = [0.0]
    periodic = PeriodicCheckpoint(workspace, journal, clock=ManualClock(), monotonic=lambda: now[0])
    assert not periodic.due(5)  # nothing configured
    periodic.configure({"to": "/elsewhere/cp.json", "every": "10m", "events": 3})
    assert periodic.due(5)  # none sent yet
    periodic.sent_seq, periodic.sent_at = 5, 0.0
    assert not periodic.due(5) and not periodic.due(7)
    assert periodic.due(8)  # three rows since the last one
    now[0] = 599.0
    assert not periodic.due(6)
    now[0] = 600.0
    assert periodic.due(6) and not periodic.due(5)  # but never for an unchanged head
    periodic.configure({"to": "/elsewhere/other.json"})
    assert periodic.every == 600.0 and periodic.events is None
    assert periodic.due(5)  # a new target has nothing yet
    periodic.configure(None)
    assert not periodic.due(9)


def test_the_daemon_sends_a_checkpoint_at_start_and_at_stop(
    workspace: Workspace, recorder: Recorder, tmp_path: Path
) -> None:
    anchor = tmp_path / "anchors" / "repo.json"
    anchor.parent.mkdir()
    (workspace.state_dir / "policy.yaml").write_text(
        f"version: 1\nsettings:\n  audit_checkpoint:\n    to: {anchor}\n    every: 1h\n"
    )
    register_ai(workspace)
    service = TaskService(workspace)
    try:
        task = service.create("Job").id
    finally:
        service.close()
    with running_daemon(workspace):
        wait_for(anchor.exists, "the first checkpoint")
        wait_for(lambda: task in recorder.runs, "the task run")
    sent = events(workspace, "audit.checkpoint")
    assert len(sent) >= 2  # at start, and the last head at stop
    audit = AuditService(workspace)
    try:
        head = audit.log.checkpoint()
        assert head.seq == sent[-1]["seq"] == json.loads(anchor.read_text())["seq"]
        assert audit.log.entries()[-1].kind == "daemon.stopped"
        assert audit.verify(anchor).ok
    finally:
        audit.close()


class Silent(BaseHTTPRequestHandler):
    """Takes the request and answers only when the test lets it."""

    arrived = threading.Event()
    answer = threading.Event()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).arrived.set()
        type(self).answer.wait(30)
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        del format, args


def test_a_silent_webhook_does_not_hold_up_the_tick(workspace: Workspace, journal: JsonLog) -> None:
    handler = type(
        "Handler", (Silent,), {"arrived": threading.Event(), "answer": threading.Event()}
    )
    server = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        periodic = PeriodicCheckpoint(workspace, journal, clock=ManualClock())
        periodic.configure({"to": f"http://127.0.0.1:{server.server_port}/"})
        periodic.tick(1)
        # tick returned while the receiver still holds the request unanswered
        assert handler.arrived.wait(30) and not handler.answer.is_set()
        assert periodic._thread is not None and periodic._thread.is_alive()
        periodic.tick(2)  # one in flight: no second one
        handler.answer.set()
        periodic._thread.join(30)
        assert periodic.sent_seq is not None and periodic.failures == 0
    finally:
        handler.answer.set()
        server.shutdown()
        server.server_close()


def test_a_failing_target_is_logged_and_not_fatal(
    workspace: Workspace, journal: JsonLog, tmp_path: Path
) -> None:
    periodic = PeriodicCheckpoint(workspace, journal, clock=ManualClock())
    periodic.configure({"to": str(tmp_path / "missing-folder" / "cp.json")})
    assert periodic.send() is False and periodic.failures == 1
    [failed] = events(workspace, "audit.checkpoint_failed")
    assert "No such file or directory" in failed["message"] and failed["level"] == "error"


def test_a_target_under_home_is_expanded(
    workspace: Workspace, journal: JsonLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """YAML does not expand ``~`` the way a shell does: the policy's ``to`` is expanded here."""
    home = tmp_path / "home"
    (home / "anchors").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    periodic = PeriodicCheckpoint(workspace, journal, clock=ManualClock())
    periodic.configure({"to": "~/anchors/repo.json"})
    assert periodic.send() is True
    assert json.loads((home / "anchors" / "repo.json").read_text())["signature"]
