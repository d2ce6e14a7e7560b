"""The dashboard over HTTP (``aictl dashboard``'s server, a real state database): the pages
show the state, changing requests need the token, the right Host and Origin, an approval is
recorded as the person, live streams report changes and stay within their own bound."""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from aictl.clock import ManualClock
from aictl.daemon.http import StatusServer
from aictl.dashboard.app import DashboardApp
from aictl.services.tasks import TaskService
from aictl.store.branches import BranchStore
from aictl.workspace import Workspace
from tests.daemon_fakes import wait_for

TOKEN = "test-token-0123456789abcdefghij"
GATE = (
    "version: 1\nrules:\n  - id: gate\n    actions: [claim]\n"
    '    when: touches(task.paths, "db/**")\n    effect: require_approval\n'
    "    reason: migrations need a person\n"
)


@pytest.fixture
def served(workspace: Workspace) -> Iterator[DashboardApp]:
    app = DashboardApp(workspace, TOKEN, max_streams=2, stream_seconds=30, keepalive=0.2)
    server = StatusServer(0, lambda: {"status": "ok"}, lambda: b"", dashboard=app)
    server.start()
    try:
        yield app
    finally:
        server.stop()


def request(
    app: DashboardApp,
    method: str,
    path: str,
    *,
    body: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, str, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=30)
    data = urllib.parse.urlencode(body).encode() if body is not None else None
    sent = {"Content-Type": "application/x-www-form-urlencoded"} if data else {}
    connection.request(method, path, body=data, headers={**sent, **(headers or {})})
    response = connection.getresponse()
    text = response.read().decode()
    connection.close()
    return response.status, text, response.headers


def gated_task(workspace: Workspace) -> int:
    """A task that policy parks awaiting approval (its claim is gated)."""
    (workspace.state_dir / "policy.yaml").write_text(GATE)
    service = TaskService(workspace)
    try:
        task = service.create("Migrate", paths=["db/m.sql"])
        with pytest.raises(Exception, match="approval"):
            service.claim("w1", task_id=task.id)
        assert service.get(task.id).approval == "pending"
        return task.id
    finally:
        service.close()


def test_pages_show_the_state(workspace: Workspace, served: DashboardApp) -> None:
    service = TaskService(workspace)
    try:
        first = service.create("Schema <b>", paths=["db/**"]).id
        second = service.create("API", depends_on=[first]).id
        service.claim("w1", task_id=first)
    finally:
        service.close()
    status, tasks_html, headers = request(served, "GET", "/")
    assert status == 200 and "Schema &lt;b&gt;" in tasks_html and "Schema <b>" not in tasks_html
    assert "waiting for 1 dependency to finish" in tasks_html
    assert f'data-task="{second}"' in tasks_html and "frame-ancestors 'none'" in str(headers)
    _, only_running, _ = request(served, "GET", "/?status=claimed&fragment=1")
    assert "<html" not in only_running and "Schema" in only_running and "API" not in only_running
    _, agents, _ = request(served, "GET", "/agents")
    assert "w1" in agents and f'data-task="{first}"' in agents
    _, locks, _ = request(served, "GET", "/locks?path=db/x.sql")
    assert "db/x.sql: held by" in locks and "<code>db/**</code>" in locks
    _, free, _ = request(served, "GET", "/locks?path=docs/a.md")
    assert "free: no running task holds it" in free
    _, bad, _ = request(served, "GET", "/locks?path=../etc/passwd")
    assert 'class="error"' in bad
    _, decisions, _ = request(served, "GET", "/decisions")
    assert "audit verify: intact" in decisions and "task.claimed" in decisions
    _, task_page, _ = request(served, "GET", f"/task/{first}")
    assert "no changes recorded" in task_page
    assert request(served, "GET", "/task/999")[0] == 404
    assert request(served, "GET", "/static/dashboard.js")[0] == 200
    assert request(served, "GET", "/static/../app.py")[0] == 404


def test_the_agents_page_shows_each_running_tasks_worktree_and_branch(
    workspace: Workspace, served: DashboardApp
) -> None:
    clock = ManualClock()
    service = TaskService(workspace, clock=clock)
    try:
        api = service.create("API", paths=["src/**"]).id
        docs = service.create("Docs", paths=["docs/**"]).id
        branches = BranchStore(service.db, clock)
        made = {"target": "main", "base_commit": "abc123", "mode": "merge"}
        branches.add(task_id=api, attempt=1, branch="aictl/task-1-attempt-1",
                     worktree=".ai/worktrees/task-1-1", **made)  # fmt: skip
        clock.advance(timedelta(seconds=5))  # that attempt ended; the task is claimed again
        service.claim("w1", task_id=api)
        service.claim("w2", task_id=docs)  # a peer session: it works in the main tree
        clock.advance(timedelta(seconds=1))
        branches.add(task_id=api, attempt=2, branch="aictl/task-1",
                     worktree=".ai/worktrees/task-1-2", **made)  # fmt: skip
    finally:
        service.close()
    _, agents, _ = request(served, "GET", "/agents")
    assert "worktree <code>.ai/worktrees/task-1-2</code> · branch <code>aictl/task-1</code>" in (
        agents
    )
    assert "task-1-1" not in agents and "attempt-1" not in agents
    assert agents.count("worktree: none (the main working tree)") == 1


def test_a_foreign_host_is_refused(served: DashboardApp) -> None:
    status, text, _ = request(served, "GET", "/", headers={"Host": f"evil.example:{served.port}"})
    assert status == 403 and "Host" in text


def test_without_the_token_the_page_is_read_only_and_a_post_is_refused(
    workspace: Workspace, served: DashboardApp
) -> None:
    task_id = gated_task(workspace)
    _, page, _ = request(served, "GET", "/approvals")
    assert "Migrate" in page and "read-only" in page and "<button" not in page
    for token in ("", "wrong-token-0123456789abcdefghij"):
        status, text, _ = request(
            served, "POST", "/approve", body={"task": str(task_id), "token": token}
        )
        assert status == 403 and "read-only without its token" in text
    service = TaskService(workspace)
    try:
        assert service.get(task_id).approval == "pending"
    finally:
        service.close()


def test_a_cross_site_post_is_refused_even_with_the_token(
    workspace: Workspace, served: DashboardApp
) -> None:
    task_id = gated_task(workspace)
    status, text, _ = request(
        served,
        "POST",
        "/approve",
        body={"task": str(task_id), "token": TOKEN},
        headers={"Origin": "http://evil.example"},
    )
    assert status == 403 and "another site" in text


def test_an_approval_is_recorded_as_the_person(
    workspace: Workspace, served: DashboardApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AICTL_ACTOR", "user:alice")
    task_id = gated_task(workspace)
    status, page, headers = request(served, "GET", f"/approvals?token={TOKEN}")
    assert status == 200 and f'class="approve" data-task="{task_id}"' in page
    assert f"aictl_dashboard_{served.port}={TOKEN}" in headers["Set-Cookie"]
    assert "migrations need a person" in page
    origin = {"Origin": f"http://127.0.0.1:{served.port}"}
    status, _, headers = request(
        served, "POST", "/approve", body={"task": str(task_id), "token": TOKEN}, headers=origin
    )
    assert status == 303 and headers["Location"] == "/approvals"
    service = TaskService(workspace)
    try:
        task = service.get(task_id)
        assert task.approval == "approved" and task.approval_by == "user:alice"
        records = [
            r for r in service.store.decisions.records(task_id=task_id) if r.action == "approve"
        ]
    finally:
        service.close()
    assert [(r.subject, r.effect) for r in records] == [("user:alice", "allow")]


def test_a_rejection_needs_a_reason(workspace: Workspace, served: DashboardApp) -> None:
    task_id = gated_task(workspace)
    status, text, _ = request(
        served, "POST", "/reject", body={"task": str(task_id), "token": TOKEN, "reason": " "}
    )
    assert status == 400 and "needs a reason" in text
    status, _, _ = request(
        served,
        "POST",
        "/reject",
        body={"task": str(task_id), "token": TOKEN, "reason": "not reviewed"},
    )
    assert status == 303
    service = TaskService(workspace)
    try:
        task = service.get(task_id)
    finally:
        service.close()
    assert task.status == "cancelled" and task.approval == "rejected"


def open_stream(app: DashboardApp) -> tuple[http.client.HTTPConnection, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=30)
    connection.request("GET", "/events")
    return connection, connection.getresponse()


def next_event(response: Any) -> tuple[str, str]:
    """The next event's name and data (comments, the keep-alives, skipped)."""
    name, data = "message", ""
    while True:
        line = response.fp.readline().decode().rstrip("\n")
        if line == "" and data:
            return name, data
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data = line.removeprefix("data: ")


def test_a_change_reaches_an_open_stream(workspace: Workspace, served: DashboardApp) -> None:
    connection, response = open_stream(served)
    try:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        name, hello = next_event(response)
        assert name == "hello"
        service = TaskService(workspace)
        try:
            service.create("New work")
        finally:
            service.close()
        name, counter = next_event(response)
        assert name == "change" and int(counter) > int(hello)
    finally:
        connection.close()


def test_streams_have_their_own_bound_and_pages_still_load(served: DashboardApp) -> None:
    opened = [open_stream(served) for _ in range(2)]
    try:
        for _, response in opened:
            assert next_event(response)[0] == "hello"
        status, text, _ = request(served, "GET", "/events")
        assert status == 503 and "too many live pages" in text
        assert request(served, "GET", "/")[0] == 200  # pages are not starved by the streams
    finally:
        for connection, response in opened:
            response.close()  # the response holds the socket open too
            connection.close()

    def freed() -> bool:
        connection, response = open_stream(served)
        try:
            return bool(response.status == 200)
        finally:
            response.close()
            connection.close()

    # a closed page's slot comes back once its stream notices (at its next write)
    wait_for(freed, "a stream slot freed")


def test_closing_the_server_ends_its_streams(workspace: Workspace) -> None:
    app = DashboardApp(workspace, TOKEN)
    server = StatusServer(0, lambda: {"status": "ok"}, lambda: b"", dashboard=app)
    server.start()
    connection, response = open_stream(app)
    assert next_event(response)[0] == "hello"
    ended = threading.Event()

    def drain() -> None:
        response.read()  # returns once the server closes the stream
        ended.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    server.stop()
    assert ended.wait(30), "the stream outlived the server"
    connection.close()


def test_the_daemon_health_is_unchanged_beside_the_dashboard(served: DashboardApp) -> None:
    status, text, _ = request(served, "GET", "/health")
    assert status == 200 and json.loads(text)["status"] == "ok"
