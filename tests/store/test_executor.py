"""The executor with a scripted in-process connector: the tool gate, cancelling a run, a lost
lease and heartbeats that fail. (The real CLI is driven in tests/e2e.)"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import connectors
from aictl.errors import LeaseLost
from aictl.services.ais import AIService
from aictl.services.executor import Executor
from aictl.services.tasks import TaskService
from aictl.workspace import Workspace
from connectors import Detection, RunRequest, RunResult, ToolCall

Behaviour = Callable[[RunRequest, threading.Event], RunResult]


class Scripted:
    """A connector whose ``run`` is the test's function; ``cancel`` sets an event it sees."""

    name = "scripted"
    capabilities = frozenset({"code"})
    behaviour: Behaviour = staticmethod(lambda request, cancelled: RunResult(status="success"))
    running = threading.Event()

    def __init__(self) -> None:
        self.cancelled = threading.Event()

    def detect(self) -> Detection:
        return Detection(self.name, Path("/bin/true"), "1.0")

    def run(self, request: RunRequest) -> RunResult:
        Scripted.running.set()
        return Scripted.behaviour(request, self.cancelled)

    def cancel(self) -> None:
        self.cancelled.set()


@pytest.fixture
def service(workspace: Workspace) -> Iterator[TaskService]:
    """A service on the system clock: the heartbeat thread's own connection uses it too."""
    connectors.register("scripted", Scripted)
    Scripted.running = threading.Event()
    ais = AIService(workspace)
    ais.register("bot", connector="claude-code", check=False)
    ais.close()
    service = TaskService(workspace)
    yield service
    service.close()


def use(behaviour: Behaviour, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Scripted, "behaviour", staticmethod(behaviour))
    monkeypatch.setattr(connectors, "get", lambda name: Scripted())


NO_SHELL = (
    "rules:\n  - id: no-make\n    actions: [tool]\n"
    '    when: tool.name == "Bash"\n    effect: deny\n    reason: no shell here\n'
)


def policy(workspace: Workspace, text: str) -> None:
    (workspace.root / ".ai" / "policy.yaml").write_text("version: 1\n" + text)


def execute_apart(workspace: Workspace, task_id: int, **options: Any) -> Any:
    """Run a task through a service of its own (its own connection, closed after)."""
    apart = TaskService(workspace)
    try:
        return Executor(apart).execute(task_id, **options)
    finally:
        apart.close()


def test_the_gate_decides_each_call_and_records_it(
    service: TaskService, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    verdicts = []

    def agent(request: RunRequest, cancelled: threading.Event) -> RunResult:
        assert request.gate is not None
        root = str(workspace.root)
        for path in (f"{root}/src/a.py", f"{root}/docs/b.md", "/etc/passwd"):
            verdicts.append(request.gate(ToolCall("Write", {"file_path": path})))
        verdicts.append(request.gate(ToolCall("Bash", {"command": "make test"})))
        return RunResult(status="success", num_turns=1)

    use(agent, monkeypatch)
    policy(workspace, NO_SHELL)
    task = service.create("t", paths=["src/**"])
    done = Executor(service).execute(task.id, ai="bot")
    assert [v.allow for v in verdicts] == [True, False, False, False]
    assert "outside task 1's paths" in verdicts[1].message
    assert "outside the repository" in verdicts[2].message
    assert "no shell here" in verdicts[3].message
    records = service.store.decisions.records(task_id=task.id, action="tool")
    assert sorted(r.effect for r in records) == ["allow", "deny", "deny", "deny"]
    assert all(r.lease_epoch == 1 for r in records)
    assert done.evidence["tool_decisions"]["allowed"] == 1
    assert done.evidence["tool_decisions"]["denied"] == 3


def test_under_the_daemon_the_gate_keeps_deciding_with_the_last_valid_policy(
    service: TaskService, workspace: Workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A policy file broken mid-run (a half-saved edit) does not turn every tool call of the
    run into a denial: the daemon's enforcer keeps the last valid policy, and so does its gate.
    """
    from aictl.daemon.jsonlog import JsonLog
    from aictl.daemon.reload import KeptEnforcer, PolicyKeeper

    verdicts = []

    def agent(request: RunRequest, cancelled: threading.Event) -> RunResult:
        assert request.gate is not None
        policy(workspace, "rules: [unclosed\n")
        root = str(workspace.root)
        verdicts.append(request.gate(ToolCall("Write", {"file_path": f"{root}/src/a.py"})))
        verdicts.append(request.gate(ToolCall("Bash", {"command": "make test"})))
        return RunResult(status="success", num_turns=1)

    use(agent, monkeypatch)
    policy(workspace, NO_SHELL)
    journal = JsonLog(tmp_path / "daemon.jsonl")
    service.enforcer = KeptEnforcer(workspace, service.store, PolicyKeeper(journal))
    task = service.create("t", paths=["src/**"])
    try:
        Executor(service).execute(task.id, ai="bot")
    finally:
        journal.close()
    assert [v.allow for v in verdicts] == [True, False]
    assert "no shell here" in verdicts[1].message


def test_cancelling_a_run_stops_the_agent_and_releases_the_task(
    service: TaskService, monkeypatch: pytest.MonkeyPatch
) -> None:
    def agent(request: RunRequest, cancelled: threading.Event) -> RunResult:
        assert cancelled.wait(30), "the executor never cancelled the agent"
        return RunResult(status="failed", reason="cancelled", detail="stopped")

    use(agent, monkeypatch)
    task = service.create("t", paths=["src/**"])
    cancel = threading.Event()
    results = []
    runner = threading.Thread(
        target=lambda: results.append(
            execute_apart(service.workspace, task.id, ai="bot", cancel=cancel)
        )
    )
    runner.start()
    assert Scripted.running.wait(30)
    cancel.set()
    runner.join(60)
    (released,) = results
    assert (released.outcome, released.reason) == ("released", "cancelled")
    after = service.get(task.id)
    assert str(after.status) == "queued" and after.lease_expires_at is None
    assert service.locks() == []
    assert released.evidence_path.is_file()


def test_a_lost_lease_stops_the_agent_keeps_the_evidence_and_raises(
    service: TaskService, monkeypatch: pytest.MonkeyPatch
) -> None:
    def agent(request: RunRequest, cancelled: threading.Event) -> RunResult:
        assert cancelled.wait(30), "the lost lease never stopped the agent"
        return RunResult(status="failed", reason="cancelled")

    use(agent, monkeypatch)
    policy(service.workspace, "settings:\n  lease_ttl: 1500ms\n")  # a heartbeat every 0.5 s
    task = service.create("t", paths=["src/**"])
    errors: list[BaseException] = []

    def run() -> None:
        try:
            execute_apart(service.workspace, task.id, ai="bot")
        except LeaseLost as error:
            errors.append(error)

    runner = threading.Thread(target=run)
    runner.start()
    assert Scripted.running.wait(30)
    service.cancel(task.id, reason="a person changed their mind")  # fences the lease
    runner.join(60)
    (error,) = errors
    assert "was lost" in error.message and "evidence.json" in (error.hint or "")
    evidence = service.workspace.state_dir / "runs" / str(task.id) / "1" / "evidence.json"
    assert evidence.is_file()
    assert str(service.get(task.id).status) == "cancelled"


def test_a_heartbeat_that_fails_for_another_reason_is_retried(
    service: TaskService, monkeypatch: pytest.MonkeyPatch
) -> None:
    beats: list[str] = []
    original = TaskService.heartbeat

    def flaky(self: TaskService, token: object, **kwargs: object) -> object:
        beats.append("try")
        if len(beats) == 1:
            raise sqlite3.OperationalError("database is locked")
        return original(self, token, **kwargs)  # type: ignore[arg-type]

    def agent(request: RunRequest, cancelled: threading.Event) -> RunResult:
        while len(beats) < 3:  # waits for the failed beat and two more
            assert not cancelled.wait(0.1), "a failed heartbeat stopped the run"
        return RunResult(status="success", num_turns=1)

    monkeypatch.setattr(TaskService, "heartbeat", flaky)
    use(agent, monkeypatch)
    policy(service.workspace, "settings:\n  lease_ttl: 1500ms\n")
    task = service.create("t", paths=["src/**"])
    done = Executor(service).execute(task.id, ai="bot")
    assert done.outcome == "done" and len(beats) >= 3
    assert done.evidence["heartbeat_errors"] == ["database is locked"]


def test_a_cancelled_task_denies_the_next_tool_call_and_stops_the_agent(
    service: TaskService, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fencing at the tool call: the heartbeat would notice the cancel only at its next tick;
    the gate notices it at the agent's very next call, denies it and stops the agent."""
    verdicts = []
    root = str(workspace.root)

    def agent(request: RunRequest, cancelled: threading.Event) -> RunResult:
        assert request.gate is not None
        verdicts.append(request.gate(ToolCall("Write", {"file_path": f"{root}/src/a.py"})))
        other = TaskService(workspace)
        other.cancel(1)
        other.close()
        verdicts.append(request.gate(ToolCall("Write", {"file_path": f"{root}/src/b.py"})))
        assert cancelled.is_set()  # stopped at once, not at the next heartbeat
        return RunResult(status="failed", reason="cancelled")

    use(agent, monkeypatch)
    task = service.create("t", paths=["src/**"])
    with pytest.raises(LeaseLost, match="lost during the run"):
        Executor(service).execute(task.id, ai="bot")
    assert [v.allow for v in verdicts] == [True, False]
    assert "task 1 is cancelled" in verdicts[1].message
    denied = [
        r for r in service.store.decisions.records(task_id=task.id, action="tool")
        if r.effect == "deny"
    ]  # fmt: skip
    assert len(denied) == 1 and denied[0].rules[0]["qualified_id"] == "aictl:lease"
    assert service.get(task.id).status == "cancelled"


def test_a_task_claimed_again_denies_the_old_runs_tool_calls(
    service: TaskService, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old run's lease expired and another worker holds the task (and its paths) now:
    the old agent's write is refused before it lands."""
    from datetime import timedelta

    from aictl.clock import ManualClock

    verdicts = []
    root = str(workspace.root)

    def agent(request: RunRequest, cancelled: threading.Event) -> RunResult:
        assert request.gate is not None
        later = TaskService(workspace, clock=ManualClock(service.store.clock.now()))
        assert isinstance(later.store.clock, ManualClock)
        later.store.clock.advance(timedelta(hours=2))  # past the lease's TTL
        later.sweep()
        later.claim("other", task_id=1)
        later.close()
        verdicts.append(request.gate(ToolCall("Write", {"file_path": f"{root}/src/b.py"})))
        return RunResult(status="failed", reason="cancelled")

    use(agent, monkeypatch)
    task = service.create("t", paths=["src/**"])
    with pytest.raises(LeaseLost):
        Executor(service).execute(task.id, ai="bot")
    assert not verdicts[0].allow
    assert "claimed again" in verdicts[0].message


def test_the_agent_runs_with_the_agent_run_marker(
    service: TaskService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The marker that makes approvals refuse the agent reaches the agent's own environment:
    it is in the request's environment and on the allow-list of names the connector passes
    on (the RunRequest contract), whatever aictl's own environment holds."""
    seen: list[RunRequest] = []

    def agent(request: RunRequest, cancelled: threading.Event) -> RunResult:
        seen.append(request)
        return RunResult(status="success", num_turns=1)

    use(agent, monkeypatch)
    task = service.create("t", paths=["src/**"])
    Executor(service, environ={"PATH": "/bin", "AICTL_AGENT_RUN": "forged"}).execute(
        task.id, ai="bot"
    )
    (request,) = seen
    assert request.base_env["AICTL_AGENT_RUN"] == f"{task.id}:1"
    assert "AICTL_AGENT_RUN" in request.allow_env
