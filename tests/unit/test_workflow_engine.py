"""The workflow engine over a real state database with a fake connector: branching, loops,
retries, goto, approval gates, cancel, and what each records."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from aictl.errors import InvalidInput, PolicyDenied
from aictl.services.tasks import TaskService
from aictl.services.workflows import WorkflowService
from aictl.workspace import Workspace
from tests.workflow_fakes import TEST_POLICY, FakeAgent, install, register_ai


@pytest.fixture
def engine(workspace: Workspace) -> Iterator[WorkflowService]:
    (workspace.state_dir / "policy.yaml").write_text(TEST_POLICY)
    service = TaskService(workspace)
    install()
    register_ai(workspace.db_path)
    yield WorkflowService(service)
    service.close()


def define(engine: WorkflowService, text: str) -> str:
    path = engine.service.workspace.root / "flow.yaml"
    path.write_text(text)
    return engine.register(path, replace=True).name


def steps_of(report: Any) -> dict[str, dict[str, Any]]:
    return {
        f"{record.state.step}#{record.state.iteration}": record.to_dict() for record in report.steps
    }


BRANCH = """version: 1
name: branch
steps:
  - id: check
    task: {title: Check}
    on_failure: continue
  - id: celebrate
    needs: [check]
    when: steps.check.tests == "passed"
    task: {title: Celebrate}
  - id: repair
    needs: [check]
    when: steps.check.tests != "passed"
    task: {title: "Repair: {{ steps.check.tests_output }}"}
  - id: report
    needs: [celebrate, repair]
    task: {title: Report}
"""


def test_a_true_condition_runs_the_branch_and_skips_the_other_with_its_values(
    engine: WorkflowService,
) -> None:
    install(["pass", "pass", "pass"])
    report = engine.execute(define(engine, BRANCH))
    steps = steps_of(report)
    assert report.run.status == "done"
    assert steps["celebrate#0"]["status"] == "done"
    assert steps["repair#0"]["status"] == "skipped"
    assert steps["repair#0"]["task_id"] is None
    assert steps["repair#0"]["decided"] == {
        "when": 'steps.check.tests != "passed"',
        "values": {"steps.check.tests": "passed"},
    }
    assert steps["report#0"]["status"] == "done"  # a skipped need counts as settled
    report_task = engine.service.get(steps["report#0"]["task_id"])
    assert report_task.depends_on == [steps["celebrate#0"]["task_id"]]
    assert report_task.labels["workflow_step"] == "report"


def test_a_false_condition_skips_the_branch_and_runs_the_other(engine: WorkflowService) -> None:
    install(["fail", "pass", "pass"])
    report = engine.execute(define(engine, BRANCH))
    steps = steps_of(report)
    assert report.run.status == "done"
    assert steps["check#0"]["status"] == "failed"
    assert steps["celebrate#0"]["status"] == "skipped"
    assert steps["celebrate#0"]["decided"]["values"] == {"steps.check.tests": "failed"}
    assert steps["repair#0"]["status"] == "done"
    repair = engine.service.get(steps["repair#0"]["task_id"])
    assert repair.title.startswith("Repair: fail")  # the failure output reached the template
    skipped = engine.service.store.audit.entries(kinds=("workflow.step_skipped",))
    assert [entry.data["step"] for entry in skipped] == ["celebrate"]


LOOP = """version: 1
name: fix-loop
steps:
  - id: implement
    task: {title: Implement}
    on_failure: continue
  - id: fixing
    needs: [implement]
    when: steps.implement.tests == "failed"
    loop:
      max: 3
      until: steps.fix.tests == "passed"
      steps:
        - id: fix
          task:
            title: "Fix round {{ iteration }}"
            description: |
              Output: {{ iteration == 1 ? steps.implement.tests_output : steps.fix.tests_output }}
          on_failure: continue
  - id: ship
    needs: [fixing]
    task: {title: Ship}
"""


def test_a_loop_ends_when_its_until_holds(engine: WorkflowService) -> None:
    agent = install(["fail", "fail", "pass", "pass"])
    report = engine.execute(define(engine, LOOP))
    steps = steps_of(report)
    assert report.run.status == "done"
    assert steps["fix#1"]["status"] == "failed" and steps["fix#2"]["status"] == "done"
    assert "fix#3" not in steps
    assert steps["fixing#0"]["status"] == "done" and steps["fixing#0"]["rounds"] == 2
    assert steps["fixing#0"]["decided"]["values"] == {"steps.fix.tests": "passed"}
    assert steps["ship#0"]["status"] == "done"
    assert "Fix round 2" in agent.prompts[2]
    assert "Output: fail" in agent.prompts[1]  # the fix step saw the failure output


def test_a_loop_that_reaches_its_maximum_fails_the_run(engine: WorkflowService) -> None:
    install(["fail"] * 10)
    report = engine.execute(define(engine, LOOP))
    steps = steps_of(report)
    assert report.run.status == "failed"
    assert [steps[f"fix#{n}"]["status"] for n in (1, 2, 3)] == ["failed"] * 3
    assert steps["fixing#0"]["status"] == "failed"
    assert "maximum of 3 rounds" in steps["fixing#0"]["outcome"]["reason"]
    assert "fixing" in (report.run.reason or "")
    assert "ship#0" not in steps


def test_a_step_retry_runs_the_same_task_again(engine: WorkflowService) -> None:
    text = """version: 1
name: retry
steps:
  - id: build
    task: {title: Build}
    retry: {max: 2, backoff: 1ms}
"""
    install(["fail", "pass"])
    report = engine.execute(define(engine, text))
    record = steps_of(report)["build#0"]
    assert report.run.status == "done"
    assert (record["retries"], record["executions"], record["status"]) == (1, 2, "done")
    assert engine.service.get(record["task_id"]).max_attempts == 3


def test_a_retryable_crash_is_requeued_by_the_executor_and_run_again(
    engine: WorkflowService,
) -> None:
    text = "version: 1\nname: crash\nsteps:\n  - id: a\n    task: {title: A}\n"
    install(["crash", "pass"])
    report = engine.execute(define(engine, text))
    record = steps_of(report)["a#0"]
    assert report.run.status == "done" and record["executions"] == 2 and record["retries"] == 0


def test_goto_runs_the_handler_and_skips_what_needed_the_failed_step(
    engine: WorkflowService,
) -> None:
    text = """version: 1
name: goto
steps:
  - id: deploy
    task: {title: Deploy}
    on_failure: {goto: rollback}
  - id: announce
    needs: [deploy]
    task: {title: Announce}
  - id: rollback
    needs: [deploy]
    when: steps.deploy.status == "failed"
    task: {title: Roll back}
"""
    install(["fail", "pass"])
    report = engine.execute(define(engine, text))
    steps = steps_of(report)
    assert report.run.status == "done"
    assert steps["announce#0"]["status"] == "skipped"
    assert steps["announce#0"]["decided"] == {"goto": "rollback", "failed": "deploy"}
    assert steps["rollback#0"]["status"] == "done"


def test_a_failed_step_fails_the_run_and_nothing_after_it_runs(engine: WorkflowService) -> None:
    text = """version: 1
name: strict
steps:
  - id: a
    task: {title: A}
  - id: b
    needs: [a]
    task: {title: B}
"""
    install(["fail"])
    report = engine.execute(define(engine, text))
    assert report.run.status == "failed" and "step a failed" in (report.run.reason or "")
    assert "b#0" not in steps_of(report)


def test_a_condition_that_errors_fails_the_step_closed(engine: WorkflowService) -> None:
    text = """version: 1
name: bad-condition
inputs:
  size: {default: "big"}
steps:
  - id: a
    when: int(inputs.size) > 3
    task: {title: A}
"""
    report = engine.execute(define(engine, text))
    record = steps_of(report)["a#0"]
    assert record["status"] == "failed" and "when condition failed" in record["outcome"]["reason"]
    assert report.run.status == "failed"


APPROVAL = """version: 1
name: gated
steps:
  - id: plan
    task: {title: Plan}
  - id: deploy
    needs: [plan]
    approval: {reason: production changes need a person}
    task: {title: Deploy}
"""


def test_an_approval_gate_waits_until_the_task_is_approved(engine: WorkflowService) -> None:
    report = engine.execute(define(engine, APPROVAL))
    steps = steps_of(report)
    assert report.run.status == "waiting"
    task = engine.service.get(steps["deploy#0"]["task_id"])
    assert (str(task.status), task.approval, task.attempts) == ("blocked", "pending", 0)
    again = engine.resume(report.run.id)  # nothing moves before the approval
    assert again.run.status == "waiting"
    engine.service.approve(task.id)  # what `aictl task approve` does
    done = engine.resume(report.run.id)
    assert done.run.status == "done"
    assert engine.service.get(task.id).status.value == "done"


def test_a_workflow_level_approve_releases_the_gate(engine: WorkflowService) -> None:
    report = engine.execute(define(engine, APPROVAL))
    engine.approve(report.run.id, "deploy")
    assert engine.resume(report.run.id).run.status == "done"
    with pytest.raises(InvalidInput):
        engine.approve(report.run.id, "nowhere")


def test_a_workflow_approve_from_inside_an_agent_run_is_refused(
    engine: WorkflowService, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = engine.execute(define(engine, APPROVAL))
    monkeypatch.setenv("AICTL_AGENT_RUN", "1:1")
    with pytest.raises(PolicyDenied, match="aictl:person-only"):
        engine.approve(report.run.id, "deploy")
    assert engine.resume(report.run.id).run.status == "waiting"
    gate = steps_of(report)["deploy#0"]["task_id"]
    assert engine.service.get(gate).approval == "pending"


def test_cancel_cancels_the_waiting_task_and_the_run(engine: WorkflowService) -> None:
    report = engine.execute(define(engine, APPROVAL))
    cancelled = engine.cancel(report.run.id)
    steps = steps_of(cancelled)
    assert cancelled.run.status == "cancelled"
    assert steps["deploy#0"]["status"] == "cancelled"
    assert engine.service.get(steps["deploy#0"]["task_id"]).status.value == "cancelled"
    with pytest.raises(InvalidInput, match="already cancelled"):
        engine.cancel(report.run.id)
    with pytest.raises(InvalidInput, match="nothing to resume"):
        engine.resume(report.run.id)


def test_inputs_are_checked_and_defaults_filled(engine: WorkflowService) -> None:
    text = """version: 1
name: inputs
inputs:
  feature: {required: true}
  area: {default: src}
steps:
  - id: a
    task: {title: "{{ inputs.feature }} in {{ inputs.area }}", paths: ["{{ inputs.area }}/**"]}
"""
    name = define(engine, text)
    with pytest.raises(InvalidInput, match="needs --input feature"):
        engine.execute(name)
    with pytest.raises(InvalidInput, match="no input 'colour'"):
        engine.execute(name, ["feature=x", "colour=red"])
    with pytest.raises(InvalidInput, match="invalid --input"):
        engine.execute(name, ["feature"])
    report = engine.execute(name, ["feature=login"])
    task = engine.service.get(steps_of(report)["a#0"]["task_id"])
    assert task.title == "login in src" and task.paths == ["src/**"]
    assert report.run.inputs == {"feature": "login", "area": "src"}


def test_registering_refuses_a_second_workflow_of_the_same_name(engine: WorkflowService) -> None:
    name = define(engine, BRANCH)
    other = engine.service.workspace.root / "other.yaml"
    other.write_text(BRANCH)
    with pytest.raises(InvalidInput, match="already registered"):
        engine.register(other)
    assert [stem for stem, loaded in engine.definitions() if loaded.ok] == [name]
    with pytest.raises(InvalidInput, match="no workflow named 'nope'"):
        engine.get("nope")


def test_fake_agent_is_installed() -> None:
    assert FakeAgent.name == "fake"


def test_a_second_driver_is_refused_while_one_drives(engine: WorkflowService) -> None:
    from filelock import FileLock

    from aictl.errors import Contention

    report = engine.execute(define(engine, APPROVAL))
    lock = FileLock(str(engine._lock_path(report.run.id)))
    with lock:
        assert engine.report(report.run.id).driven is True
        with pytest.raises(Contention, match="driven by another process"):
            engine.resume(report.run.id)
    assert engine.report(report.run.id).driven is False


def test_a_rejected_approval_fails_the_step_and_the_run(engine: WorkflowService) -> None:
    report = engine.execute(define(engine, APPROVAL))
    task_id = steps_of(report)["deploy#0"]["task_id"]
    engine.service.reject(task_id, reason="not today")
    done = engine.resume(report.run.id)
    record = steps_of(done)["deploy#0"]
    assert record["status"] == "failed" and "not today" in record["outcome"]["reason"]
    assert done.run.status == "failed"


def test_a_task_held_by_another_worker_is_waited_for(workspace: Workspace) -> None:
    (workspace.state_dir / "policy.yaml").write_text(TEST_POLICY)
    service = TaskService(workspace)
    install(["pass"])
    register_ai(workspace.db_path)
    text = """version: 1
name: shared
steps:
  - id: gate
    approval: true
    task: {title: Gate}
"""
    waits: list[float] = []

    def other_worker_finishes(seconds: float) -> None:
        waits.append(seconds)
        service.complete(claim.token, result="done elsewhere", evidence={"files_changed": ["x"]})

    try:
        engine = WorkflowService(service, sleep=other_worker_finishes, poll=0.01)
        report = engine.execute(define(engine, text))
        task_id = steps_of(report)["gate#0"]["task_id"]
        service.approve(task_id)
        claim = service.claim("someone-else", task_id=task_id)
        service.start(claim.token)
        done = engine.resume(report.run.id)
    finally:
        service.close()
    record = steps_of(done)["gate#0"]
    assert waits == [0.01] and record["executions"] == 0  # observed, never run here
    assert record["status"] == "done" and record["outcome"]["files_changed"] == ["x"]


def test_skills_of_a_step_reach_its_task(engine: WorkflowService) -> None:
    text = """version: 1
name: skilled
steps:
  - id: a
    approval: true
    task: {title: A, skills: [python-style]}
"""
    report = engine.execute(define(engine, text))
    assert engine.service.get(steps_of(report)["a#0"]["task_id"]).skills == ["python-style"]


def test_a_goto_to_a_step_that_already_ran_fails_the_run(engine: WorkflowService) -> None:
    text = """version: 1
name: late-goto
steps:
  - id: handler
    task: {title: Handler}
  - id: risky
    task: {title: Risky}
    on_failure: {goto: handler}
"""
    install(["pass", "fail"])
    report = engine.execute(define(engine, text))
    assert report.run.status == "failed"
    assert "goto target handler has already done" in (report.run.reason or "")


def test_no_eligible_ai_stops_the_run_resumably(engine: WorkflowService) -> None:
    import dataclasses

    from aictl.errors import NothingReady

    text = """version: 1
name: needs-gpu
steps:
  - id: train
    task: {title: Train, requires: [gpu]}
"""
    name = define(engine, text)
    with pytest.raises(NothingReady):
        engine.execute(name)
    report = engine.report(1)
    assert report.run.status == "running" and report.driven is False
    assert steps_of(report)["train#0"]["status"] == "started"
    from tests.workflow_fakes import register_ai as add

    workspace = engine.service.workspace
    add(workspace.db_path, "fake-gpu")
    from aictl.store.ais import AIStore

    store = AIStore(engine.service.db, engine.service.store.clock)
    gpu = store.get("fake-gpu")
    store.register(dataclasses.replace(gpu, capabilities=["gpu"]), replace=True)
    done = engine.resume(1)
    assert done.run.status == "done"
    assert steps_of(done)["train#0"]["executions"] == 1  # the refused try is not a run
