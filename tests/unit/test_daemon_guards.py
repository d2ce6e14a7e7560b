"""The daemon's guards against runaway work: a missing agent binary takes its AI offline
instead of claiming the same task again and again, a spent daily budget stops dispatching,
and /metrics shows cost and tokens per AI."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from aictl.daemon.runtime import DaemonPaths
from aictl.daemon.status import log_lines
from aictl.domain.ais import AIStatus
from aictl.services.ais import AIService
from aictl.services.tasks import TaskService
from aictl.store.spend import SpendStore
from aictl.workspace import Workspace
from tests.daemon_fakes import Recorder, register_ai, reset_recorder, running_daemon, wait_for

OBSERVE = 2.0
"""Seconds the daemon is watched for a loop (forty ticks); not a timing assertion."""


@pytest.fixture
def recorder() -> Recorder:
    return reset_recorder()


def events(workspace: Workspace, name: str) -> list[dict[str, object]]:
    return [r for r in log_lines(DaemonPaths.of(workspace).log) if r.get("event") == name]


def audit_kinds(workspace: Workspace) -> list[str]:
    service = TaskService(workspace)
    try:
        return [
            str(row[0])
            for row in service.db.connection.execute("SELECT kind FROM audit_log ORDER BY seq")
        ]
    finally:
        service.close()


def test_a_missing_claude_takes_the_ai_offline_instead_of_looping(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "claude"
    monkeypatch.setenv("AICTL_CLAUDE_BIN", str(missing))
    ais = AIService(workspace)
    ais.register("claude-1", connector="claude-code", check=False)
    service = TaskService(workspace)
    task = service.create("Write hello", paths=["src/**"])
    with running_daemon(workspace):
        wait_for(lambda: events(workspace, "notify.ai.offline"), "the AI taken offline")
        time.sleep(OBSERVE)  # would be ~140 more claims at the old rate
    kinds = audit_kinds(workspace)
    assert kinds.count("task.claimed") == 1, kinds.count("task.claimed")
    assert kinds.count("task.released") == 1
    after = service.get(task.id)
    assert (str(after.status), after.attempts) == ("queued", 0)
    ai = ais.get("claude-1")
    assert ai.status is AIStatus.OFFLINE
    assert str(missing) in str(ai.health.get("last_error"))
    (notice,) = events(workspace, "notify.ai.offline")
    assert str(missing) in str(notice["message"]) and "pip install claude-agent-sdk" in str(
        notice["message"]
    )
    assert "`aictl ai status claude-1 --set available`" in str(notice["message"])
    assert "ai.status" in kinds  # the status change is audited
    service.close()
    ais.close()


def test_an_ai_set_available_again_is_tried_again(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, recorder: Recorder
) -> None:
    monkeypatch.setenv("AICTL_CLAUDE_BIN", str(tmp_path / "missing"))
    ais = AIService(workspace)
    ais.register("claude-1", connector="claude-code", check=False)
    service = TaskService(workspace)
    service.create("Write hello", paths=["src/**"])
    with running_daemon(workspace):
        wait_for(lambda: events(workspace, "notify.ai.offline"), "the AI taken offline")
        ais.set_status("claude-1", "available")
        wait_for(lambda: len(events(workspace, "notify.ai.offline")) == 2, "a second try")
    assert audit_kinds(workspace).count("task.claimed") == 2
    service.close()
    ais.close()


def test_a_spent_daily_budget_stops_dispatch_and_is_logged_once(
    workspace: Workspace, recorder: Recorder
) -> None:
    (workspace.state_dir / "policy.yaml").write_text(
        "version: 1\nsettings:\n  budgets: {daily_usd: 1}\n"
    )
    register_ai(workspace)
    service = TaskService(workspace)
    earlier = service.create("earlier")
    SpendStore(service.db).record(
        task_id=earlier.id,
        attempt=1,
        ai="fake-1",
        at=service.store.clock.now(),
        cost_usd=1.25,
        input_tokens=10,
        output_tokens=2,
    )
    task = service.create("Write", paths=["out/**"])
    with running_daemon(workspace):
        wait_for(lambda: events(workspace, "budget.daily_reached"), "the budget logged")
        time.sleep(OBSERVE)
    assert recorder.runs == []
    (logged,) = events(workspace, "budget.daily_reached")
    assert "$1.25" in str(logged["message"]) and "$1.00" in str(logged["message"])
    after = service.get(task.id)
    assert (str(after.status), after.attempts) == ("queued", 0)
    assert "task.claimed" not in audit_kinds(workspace)
    service.close()


def test_metrics_show_cost_and_tokens_per_ai(workspace: Workspace, recorder: Recorder) -> None:
    register_ai(workspace)
    service = TaskService(workspace)
    task = service.create("Write", paths=["out/**"])
    with running_daemon(workspace) as daemon:
        wait_for(lambda: str(service.get(task.id).status) == "done", "the task done")

        def scraped() -> str:
            text = daemon.metrics.render().decode()
            return text if 'aictl_cost_usd_total{ai="fake-1"}' in text else ""

        text = wait_for(scraped, "the cost in the metrics")
    assert 'aictl_cost_usd_total{ai="fake-1"} 0.01' in text
    assert 'aictl_tokens_total{ai="fake-1",direction="input"} 100.0' in text
    assert 'aictl_tokens_total{ai="fake-1",direction="output"} 20.0' in text
    service.close()
