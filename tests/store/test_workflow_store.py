"""Workflow run records: each change with its audit event, in one transaction."""

from __future__ import annotations

import pytest

from aictl.services.tasks import TaskService
from aictl.store.workflows import RunNotFound, WorkflowStore


def test_run_and_step_records_with_their_audit_events(service: TaskService) -> None:
    store = WorkflowStore(service.db, service.store.clock, actor="tester")
    run = store.create_run("flow", "version: 1\n", "abc", {"x": "1"})
    assert (run.status, run.inputs, run.finished_at) == ("running", {"x": "1"}, None)
    task = store.start_step(run.id, "a", 0, lambda: service.create("A"))
    store.count_execution(run.id, "a", 0)
    store.count_retry(run.id, "a", 0, "flaky")
    store.finish_step(run.id, "a", 0, "done", outcome={"tests": "passed"}, task_id=task.id)
    store.finish_step(run.id, "b", 0, "skipped", decided={"when": "false", "values": {}})
    store.start_loop(run.id, "l")
    store.next_round(run.id, "l", 2, {"until": "x", "values": {}})
    store.force(run.id, "c", 0, "a")
    states = store.states(run.id)
    assert states[("a", 0)].status == "done" and states[("a", 0)].executions == 1
    assert states[("a", 0)].retries == 1 and states[("a", 0)].outcome == {"tests": "passed"}
    assert states[("b", 0)].status == "skipped" and states[("l", 0)].rounds == 2
    assert states[("c", 0)].forced and states[("c", 0)].status == "pending"
    done = store.set_run_status(run.id, "done")
    assert done.finished_at is not None
    assert store.set_run_status(run.id, "failed", "late").status == "done"  # finished stays
    kinds = [entry.kind for entry in service.store.audit.entries(kinds=("workflow",))]
    assert kinds == [
        "workflow.run_started",
        "workflow.step_started",
        "workflow.step_retried",
        "workflow.step_done",
        "workflow.step_skipped",
        "workflow.loop_round",
        "workflow.loop_round",
        "workflow.goto",
        "workflow.run_done",
    ]
    assert [r.id for r in store.list_runs()] == [run.id] == [r.id for r in store.list_runs("flow")]
    records = store.steps(run.id)
    assert records[0].to_dict()["task_status"] == "queued"


def test_a_failed_task_creation_leaves_no_step_record(service: TaskService) -> None:
    store = WorkflowStore(service.db, service.store.clock, actor="tester")
    run = store.create_run("flow", "version: 1\n", "abc", {})

    def broken() -> object:
        service.create("A")
        raise RuntimeError("crash after the insert")

    with pytest.raises(RuntimeError):
        store.start_step(run.id, "a", 0, broken)  # type: ignore[arg-type]
    assert store.states(run.id) == {} and service.list_tasks() == []
    with pytest.raises(RunNotFound):
        store.get_run(99)
