"""/health and /metrics of a running daemon, 503 when the loop is stuck, and webhooks from the
daemon: signed notifications arrive, and a dead endpoint does not stop the work."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from aictl.daemon.http import StatusServer
from aictl.daemon.notify import SIGNATURE_HEADER, verify
from aictl.daemon.scheduler import Daemon, DaemonConfig
from aictl.workspace import Workspace
from tests.daemon_fakes import register_ai, reset_recorder, running_daemon, wait_for
from tests.unit.test_daemon_notify import Receiver, dead_url
from tests.unit.test_daemon_scheduler import all_done, create, events


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_health_and_metrics_describe_the_work(workspace: Workspace) -> None:
    reset_recorder()
    register_ai(workspace)
    for number in range(3):
        create(workspace, f"Job {number}")
    with running_daemon(workspace) as daemon:
        wait_for(lambda: all_done(workspace), "every task done")
        wait_for(lambda: not daemon.running, "the threads reaped")
        status, body = get(f"http://127.0.0.1:{daemon.port}/health")
        health = json.loads(body)
        assert status == 200 and health["status"] == "ok"
        assert health["queue"] == {"done": 3} and health["running"] == 0
        assert health["uptime_seconds"] >= 0 and health["last_tick"]

        def scraped() -> tuple[int, str] | None:
            status, body = get(f"http://127.0.0.1:{daemon.port}/metrics")
            text = body.decode()  # the spend is read from the database once the runs are reaped
            return (status, text) if 'aictl_cost_usd_total{ai="fake-1"} 0.03' in text else None

        status, text = wait_for(scraped, "the runs' cost in the metrics")
        missing, _ = get(f"http://127.0.0.1:{daemon.port}/other")
    assert status == 200 and missing == 404
    assert 'aictl_tasks{status="done"} 3.0' in text
    assert 'aictl_executions_total{outcome="done"} 3.0' in text
    assert "aictl_claims_total 3.0" in text
    assert 'aictl_execution_duration_seconds_count{outcome="done"} 3.0' in text
    assert 'aictl_tokens_total{ai="fake-1",direction="output"} 60.0' in text
    assert 'aictl_decisions_total{effect="allow"}' in text
    assert "aictl_lease_expiries_total 0.0" in text
    assert "aictl_quarantines_total 0.0" in text


def test_a_stuck_loop_answers_503(workspace: Workspace) -> None:
    now = [100.0]
    daemon = Daemon(workspace, DaemonConfig(stall_after=30), monotonic=lambda: now[0])
    daemon.last_tick_at = 100.0
    server = StatusServer(0, daemon.health, daemon.metrics.render)
    server.start()
    try:
        assert get(server.url + "/health")[0] == 200
        now[0] = 131.0
        status, body = get(server.url + "/health")
    finally:
        server.stop()
    assert status == 503
    assert json.loads(body)["status"] == "stuck"


def test_webhooks_get_signed_notices_and_a_dead_one_changes_nothing(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    reset_recorder()
    register_ai(workspace)
    with Receiver() as receiver:
        (workspace.state_dir / "policy.yaml").write_text(
            "version: 1\nnotifications:\n  webhooks:\n"
            f"    - url: {dead_url()}\n      retries: 1\n      timeout: 2s\n"
            f"    - url: {receiver.url}/hook\n      secret_env: HOOK_KEY\n"
            "      events: [task.done]\n"
        )
        first = create(workspace, "First")
        second = create(workspace, "Second", depends_on=[first])
        with running_daemon(workspace, environ={"HOOK_KEY": "k3y"}):
            wait_for(lambda: all_done(workspace), "every task done")
            wait_for(lambda: len(receiver.requests) == 2, "two notifications")
            wait_for(lambda: len(events(workspace, "notification.failed")) == 2, "failures")
        bodies: list[dict[str, Any]] = []
        for _, headers, body in receiver.requests:
            assert verify(b"k3y", body, headers[SIGNATURE_HEADER])
            bodies.append(json.loads(body))
    assert sorted(body["task"] for body in bodies) == [first, second]
    assert {body["event"] for body in bodies} == {"task.done"}
