"""The pure scheduling decisions: given a definition and step records, what happens next."""

from __future__ import annotations

from aictl.domain.workflows import (
    Drive,
    EndLoop,
    Fail,
    Finish,
    NextRound,
    Skip,
    Start,
    StepState,
    Wait,
    failure_effect,
    next_action,
    variables,
)
from aictl.workflows.definition import Workflow
from aictl.workflows.loader import load_text

FLOW = """version: 1
name: flow
inputs:
  mode: {default: full}
steps:
  - id: a
    task: {title: A}
  - id: b
    needs: [a]
    when: inputs.mode == "full"
    task: {title: B}
    on_failure: {goto: d}
  - id: c
    needs: [b]
    task: {title: C}
  - id: d
    needs: [b]
    task: {title: D}
  - id: l
    needs: [a]
    loop:
      max: 2
      until: steps.x.tests == "passed"
      steps:
        - id: x
          task: {title: "X {{ iteration }}"}
          on_failure: continue
"""
RUN = {"id": 1, "workflow": "flow"}


def flow() -> Workflow:
    loaded = load_text(FLOW, display="flow.yaml")
    assert loaded.workflow is not None, loaded.issues
    return loaded.workflow


def done(step: str, iteration: int = 0, **outcome: object) -> StepState:
    return StepState(step, iteration, "done", task_id=1, outcome=outcome)


def test_the_first_step_starts_then_its_task_is_driven() -> None:
    workflow = flow()
    action = next_action(workflow, {}, {"mode": "full"}, RUN)
    assert isinstance(action, Start) and action.step.id == "a"
    states = {("a", 0): StepState("a", 0, "started", task_id=7, live="running")}
    action = next_action(workflow, states, {"mode": "full"}, RUN)
    assert isinstance(action, Drive) and action.task_id == 7


def test_a_false_condition_skips_with_the_values_read() -> None:
    action = next_action(flow(), {("a", 0): done("a")}, {"mode": "quick"}, RUN)
    assert isinstance(action, Skip) and action.step.id == "b"
    assert action.decided == {"when": 'inputs.mode == "full"', "values": {"inputs.mode": "quick"}}


def test_a_condition_error_fails_closed() -> None:
    action = next_action(flow(), {("a", 0): done("a")}, {}, RUN)  # no input: no such key
    assert isinstance(action, Fail) and "when condition failed" in action.reason


def test_loop_rounds_and_ends() -> None:
    workflow = flow()
    base = {
        ("a", 0): done("a"),
        ("b", 0): done("b"),
        ("c", 0): done("c"),
        ("d", 0): done("d"),
        ("l", 0): StepState("l", 0, "looping", rounds=1),
    }
    action = next_action(workflow, base, {"mode": "full"}, RUN)
    assert isinstance(action, Start) and (action.step.id, action.iteration) == ("x", 1)
    failed = {**base, ("x", 1): StepState("x", 1, "failed", task_id=3, outcome={"tests": "failed"})}
    action = next_action(workflow, failed, {"mode": "full"}, RUN)
    assert isinstance(action, NextRound) and action.round == 2
    last = {
        **failed,
        ("l", 0): StepState("l", 0, "looping", rounds=2),
        ("x", 2): StepState("x", 2, "failed", task_id=4, outcome={"tests": "failed"}),
    }
    action = next_action(workflow, last, {"mode": "full"}, RUN)
    assert isinstance(action, EndLoop) and action.status == "failed"
    assert action.decided["values"] == {"steps.x.tests": "failed"}
    passed = {**last, ("x", 2): done("x", 2, tests="passed")}
    action = next_action(workflow, passed, {"mode": "full"}, RUN)
    assert isinstance(action, EndLoop) and action.status == "done"
    finished = {**passed, ("l", 0): StepState("l", 0, "done", rounds=2)}
    assert next_action(workflow, finished, {"mode": "full"}, RUN) == Finish("done")


def test_waiting_steps_wait_only_when_nothing_else_can_move() -> None:
    workflow = flow()
    states = {("a", 0): StepState("a", 0, "started", task_id=1, live="waiting")}
    assert next_action(workflow, states, {"mode": "full"}, RUN) == Wait((("a", 0),))


def test_variables_show_the_latest_round_and_pending_steps() -> None:
    workflow = flow()
    states = {("x", 1): done("x", 1, tests="failed"), ("x", 2): done("x", 2, tests="passed")}
    scope = variables(workflow, states, {"mode": "full"}, RUN, iteration=2)
    assert scope["steps"]["x"]["tests"] == "passed" and scope["steps"]["x"]["iteration"] == 2
    assert scope["steps"]["c"]["status"] == "pending" and scope["iteration"] == 2


def test_failure_effects() -> None:
    workflow = flow()
    goto = failure_effect(workflow, workflow.step("b"))
    assert (goto.kind, goto.target, goto.skip) == ("goto", "d", ("c",))
    assert failure_effect(workflow, workflow.step("a")).kind == "fail_run"
    assert failure_effect(workflow, workflow.step("x")).kind == "continue"
