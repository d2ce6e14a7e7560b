"""The daemon's scheduler in-process, with the fake connector (tests/daemon_fakes.py): limits,
locks, approvals, graceful stop, a second daemon, hot reload and notifications in the log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aictl.daemon.runtime import (
    DaemonPaths,
    DaemonRunning,
    InstanceLock,
    read_state,
    write_atomically,
)
from aictl.daemon.status import log_lines
from aictl.domain.ais import AIStatus
from aictl.services.tasks import TaskService
from aictl.store.ais import AIStore
from aictl.workspace import Workspace
from tests.daemon_fakes import (
    Recorder,
    register_ai,
    reset_recorder,
    running_daemon,
    wait_for,
)


@pytest.fixture
def recorder() -> Recorder:
    return reset_recorder()


def statuses(workspace: Workspace) -> dict[int, str]:
    service = TaskService(workspace)
    try:
        return {task.id: str(task.status) for task in service.list_tasks()}
    finally:
        service.close()


def create(workspace: Workspace, title: str, **fields: Any) -> int:
    service = TaskService(workspace)
    try:
        return service.create(title, **fields).id
    finally:
        service.close()


def events(workspace: Workspace, name: str) -> list[dict[str, Any]]:
    return [
        record for record in log_lines(DaemonPaths.of(workspace).log) if record.get("event") == name
    ]


def all_done(workspace: Workspace) -> bool:
    return set(statuses(workspace).values()) == {"done"}


def test_a_dependency_graph_is_done_in_order_within_the_limits(
    workspace: Workspace, recorder: Recorder
) -> None:
    register_ai(workspace, "fake-1", max_concurrency=2)
    register_ai(workspace, "fake-2", max_concurrency=1)
    first = create(workspace, "Schema", paths=["db/**"])
    a = create(workspace, "API", paths=["src/api/**"], depends_on=[first])
    b = create(workspace, "Helpers", paths=["src/*/util.py"], depends_on=[first])
    c = create(workspace, "Docs", paths=["docs/**"], depends_on=[first])
    d = create(workspace, "Web", paths=["src/web/**"], depends_on=[first])
    last = create(workspace, "Release", depends_on=[a, b, c, d])
    with running_daemon(workspace, concurrency=3):
        wait_for(lambda: all_done(workspace), "every task done")
    assert sorted(recorder.runs) == [first, a, b, c, d, last]  # each exactly once
    assert recorder.runs[0] == first and recorder.runs[-1] == last
    assert recorder.peak <= 3
    for together in recorder.overlaps:
        # src/*/util.py intersects src/api/** and src/web/**: never at the same time
        assert not ({a, b} <= set(together) or {b, d} <= set(together)), together
    done = events(workspace, "notify.task.done")
    assert sorted(record["task"] for record in done) == sorted(recorder.runs)
    finished = events(workspace, "task.finished")
    assert {record["outcome"] for record in finished} == {"done"}


def test_each_ai_runs_at_most_its_max_concurrency(workspace: Workspace, recorder: Recorder) -> None:
    register_ai(workspace, "fake-1", max_concurrency=1)
    for number in range(4):
        create(workspace, f"Job {number}")
    with running_daemon(workspace, concurrency=4):
        wait_for(lambda: all_done(workspace), "every task done")
    assert recorder.peak == 1
    assert len(recorder.runs) == 4


def test_a_gated_task_waits_for_approval_then_runs(
    workspace: Workspace, recorder: Recorder
) -> None:
    (workspace.state_dir / "policy.yaml").write_text(
        "version: 1\nrules:\n  - id: gate\n    actions: [claim]\n"
        '    when: touches(task.paths, "db/**")\n    effect: require_approval\n'
        "    reason: migrations need a person\n"
    )
    register_ai(workspace)
    gated = create(workspace, "Migrate", paths=["db/m.sql"])
    free = create(workspace, "Docs", paths=["docs/**"])
    with running_daemon(workspace):
        wait_for(lambda: statuses(workspace)[free] == "done", "the free task done")
        wait_for(lambda: statuses(workspace)[gated] == "blocked", "the gated task parked")
        wait_for(lambda: events(workspace, "notify.approval.needed"), "approval notification")
        assert gated not in recorder.runs
        service = TaskService(workspace)
        try:
            service.approve(gated)
        finally:
            service.close()
        wait_for(lambda: statuses(workspace)[gated] == "done", "the gated task done")
    needed = events(workspace, "notify.approval.needed")
    assert [record["task"] for record in needed] == [gated]


def test_sigterm_semantics_release_a_running_task_after_the_grace(
    workspace: Workspace, recorder: Recorder
) -> None:
    register_ai(workspace)
    held = create(workspace, "Long job [hold]")
    with running_daemon(workspace, grace=0.2) as daemon:
        wait_for(recorder.started.is_set, "the run started")
        wait_for(lambda: statuses(workspace)[held] == "running", "the task running")
    service = TaskService(workspace)
    try:
        task, locks = service.get(held), service.locks()
    finally:
        service.close()
    assert str(task.status) == "queued" and task.lease_expires_at is None and locks == []
    assert daemon.running == {}
    assert events(workspace, "daemon.cancelling")
    finished = events(workspace, "task.finished")
    assert [record["outcome"] for record in finished] == ["released"]
    state = read_state(DaemonPaths.of(workspace))
    assert state is not None and state["daemon"] == "stopped"


def test_a_task_that_finishes_within_the_grace_is_not_interrupted(
    workspace: Workspace, recorder: Recorder
) -> None:
    register_ai(workspace)
    held = create(workspace, "Finishing job [hold]")
    with running_daemon(workspace, grace=60) as daemon:
        wait_for(recorder.started.is_set, "the run started")
        daemon.request_stop()
        wait_for(lambda: daemon.stopping, "the daemon stopping")
        recorder.release.set()
    assert statuses(workspace)[held] == "done"
    assert not events(workspace, "daemon.cancelling")


def test_a_second_daemon_is_refused_naming_the_first(workspace: Workspace) -> None:
    reset_recorder()
    with running_daemon(workspace):
        with pytest.raises(DaemonRunning) as refused:
            InstanceLock(DaemonPaths.of(workspace)).acquire()
        assert refused.value.exit_code == 4
        assert f"pid {__import__('os').getpid()}" in refused.value.message


def test_a_valid_policy_change_applies_and_an_invalid_one_is_refused(
    workspace: Workspace, recorder: Recorder
) -> None:
    register_ai(workspace)
    policy = workspace.state_dir / "policy.yaml"
    with running_daemon(workspace):
        wait_for(lambda: events(workspace, "policy.loaded"), "the first policy")
        write_atomically(
            policy,
            "version: 1\nrules:\n  - id: no-secrets\n    actions: [claim]\n"
            '    when: touches(task.paths, "secrets/**")\n    effect: deny\n'
            "    reason: never\n",
        )
        wait_for(lambda: events(workspace, "policy.reloaded"), "the reload")
        denied = create(workspace, "Touch secrets", paths=["secrets/key"])
        first = create(workspace, "Docs [hold]", paths=["docs/**"])
        later = create(workspace, "More docs", paths=["docs/more/**"], depends_on=[first])
        wait_for(lambda: statuses(workspace)[first] == "running", "the first task running")
        # Replaced whole, as editors save: a plain write can be read half-written (that
        # version is refused too, with other errors).
        write_atomically(policy, "version: 1\nrules:\n  - id: Bad Id\n    effect: maybe\n")
        refused = wait_for(lambda: events(workspace, "policy.refused"), "the refusal")
        recorder.release.set()
        wait_for(lambda: statuses(workspace)[later] == "done", "work under the kept policy")
    assert denied not in recorder.runs and statuses(workspace)[denied] == "queued"
    errors = refused[0]["errors"]
    assert errors and all(error["file"].endswith("policy.yaml") for error in errors)
    assert any("effect" in error["field"] for error in errors)


def test_quarantine_and_failure_are_notified(workspace: Workspace, recorder: Recorder) -> None:
    (workspace.state_dir / "policy.yaml").write_text(
        "version: 1\nsettings:\n  quarantine_after: 1\n  retry_backoff: 1s\n"
    )
    register_ai(workspace)
    failing = create(workspace, "Flaky [fail]", max_attempts=1)
    with running_daemon(workspace):
        wait_for(lambda: events(workspace, "notify.ai.quarantined"), "the quarantine")
        wait_for(lambda: events(workspace, "notify.task.failed"), "the failure")
    assert statuses(workspace)[failing] == "failed"
    service = TaskService(workspace)
    try:
        ai = AIStore(service.db, service.store.clock).get("fake-1")
    finally:
        service.close()
    assert ai.status is AIStatus.QUARANTINED
    assert recorder.runs == [failing]


def test_state_file_reports_the_running_tasks(workspace: Workspace, recorder: Recorder) -> None:
    register_ai(workspace)
    held = create(workspace, "Long job [hold]")
    with running_daemon(workspace, grace=0.1) as daemon:
        wait_for(recorder.started.is_set, "the run started")
        state = wait_for(
            lambda: (read_state(daemon.paths) or {}).get("running_tasks"), "a running task"
        )
        assert state[0]["task"] == held and state[0]["ai"] == "fake-1"
        health = daemon.health()
        assert health["status"] == "ok" and health["running"] == 1
    logged = Path(DaemonPaths.of(workspace).log).read_text().splitlines()
    assert all(json.loads(line)["at"] for line in logged)
