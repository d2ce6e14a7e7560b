"""Scheduling decisions for a workflow run, as pure functions of the definition and the state.

The engine (:mod:`aictl.services.workflows`) loads the run's step records, asks
:func:`next_action` what to do, does it (one store transaction, or one task execution), and
asks again. Nothing here reads the clock or the database, so a run resumed after a crash takes
exactly the decisions it would have taken without the crash: a finished step is never chosen
again.

Records are keyed by ``(step id, iteration)``: 0 for top-level steps, the round (from 1) for
the steps of a loop. A loop's own record (iteration 0) counts its rounds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aictl.workflows.definition import Step, Workflow
from aictl.workflows.expressions import ExpressionError, condition, values_read

FINISHED = frozenset({"done", "failed", "skipped", "cancelled"})
STATUSES = ("pending", "started", "looping", *sorted(FINISHED))


@dataclass(frozen=True)
class StepState:
    """One step record. ``live`` is the state of a started step's task, as the scheduler
    needs it: ``waiting`` (its task awaits an approval) or ``running`` (anything else)."""

    step: str
    iteration: int = 0
    status: str = "pending"
    task_id: int | None = None
    forced: bool = False
    retries: int = 0
    executions: int = 0
    rounds: int = 0
    live: str | None = None
    outcome: Mapping[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The step as conditions and templates see it (``steps.ID``)."""
        status = self.status
        if status == "started":
            status = self.live or "running"
        elif status == "looping":
            status = "running"
        return {
            "status": status,
            "tests": str(self.outcome.get("tests") or ""),
            "tests_output": str(self.outcome.get("tests_output") or ""),
            "files_changed": list(self.outcome.get("files_changed") or []),
            "attempts": self.executions,
            "reason": str(self.outcome.get("reason") or ""),
            "task": self.task_id or 0,
            "iteration": self.rounds or self.iteration,
        }


States = Mapping[tuple[str, int], StepState]


# ----------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Start:
    """Create the step's task (or begin the loop's first round)."""

    step: Step
    iteration: int


@dataclass(frozen=True)
class Drive:
    """Run or observe the step's task until it ends."""

    step: Step
    iteration: int
    task_id: int


@dataclass(frozen=True)
class Skip:
    step: Step
    iteration: int
    reason: str
    decided: Mapping[str, Any]


@dataclass(frozen=True)
class Fail:
    """The step cannot start: its condition failed to evaluate (fail closed)."""

    step: Step
    iteration: int
    reason: str


@dataclass(frozen=True)
class NextRound:
    loop: Step
    round: int
    decided: Mapping[str, Any]


@dataclass(frozen=True)
class EndLoop:
    loop: Step
    status: str  # done | failed
    reason: str
    decided: Mapping[str, Any]


@dataclass(frozen=True)
class Wait:
    """Nothing can move until a person approves these steps' tasks."""

    steps: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Finish:
    status: str


Action = Start | Drive | Skip | Fail | NextRound | EndLoop | Wait | Finish


def variables(
    workflow: Workflow,
    states: States,
    inputs: Mapping[str, Any],
    run: Mapping[str, Any],
    iteration: int | None = None,
) -> dict[str, Any]:
    """What conditions and templates read: every step's latest record, the inputs, the run,
    and, inside a loop, its ``iteration``."""
    latest: dict[str, StepState] = {}
    for (step_id, number), state in states.items():
        if step_id not in latest or number > latest[step_id].iteration:
            latest[step_id] = state
    steps = {
        step.id: latest.get(step.id, StepState(step.id)).record() for step in workflow.all_steps()
    }
    out: dict[str, Any] = {"inputs": dict(inputs), "steps": steps, "run": dict(run)}
    if iteration is not None:
        out["iteration"] = iteration
    return out


def next_action(
    workflow: Workflow, states: States, inputs: Mapping[str, Any], run: Mapping[str, Any]
) -> Action:
    """The next thing to do, taking steps in file order among those whose needs are met."""
    waiting: list[tuple[str, int]] = []
    action = _in_group(workflow, None, 0, states, inputs, run, waiting)
    if action is not None:
        return action
    if waiting:
        return Wait(tuple(waiting))
    return Finish("done")


def _state(states: States, step: str, iteration: int) -> StepState:
    return states.get((step, iteration)) or StepState(step, iteration)


def _in_group(
    workflow: Workflow,
    parent: str | None,
    iteration: int,
    states: States,
    inputs: Mapping[str, Any],
    run: Mapping[str, Any],
    waiting: list[tuple[str, int]],
) -> Action | None:
    for step in workflow.group(parent):
        state = _state(states, step.id, iteration)
        if state.status in FINISHED:
            continue
        if state.status == "started":
            if state.live == "waiting":
                waiting.append((step.id, iteration))
                continue
            assert state.task_id is not None
            return Drive(step, iteration, state.task_id)
        if state.status == "looping":
            action = _loop(workflow, step, state, states, inputs, run, waiting)
            if action is not None:
                return action
            continue
        unmet = [
            need for need in step.needs if _state(states, need, iteration).status not in FINISHED
        ]
        if unmet and not state.forced:
            continue
        if step.when is not None:
            scope = variables(workflow, states, inputs, run, iteration if parent else None)
            try:
                go = condition(step.when, scope)
            except ExpressionError as error:
                return Fail(step, iteration, f"its when condition failed: {error}")
            if not go:
                decided = {"when": step.when.source, "values": values_read(step.when, scope)}
                return Skip(step, iteration, "its when condition is false", decided)
        return Start(step, iteration)
    return None


def _loop(
    workflow: Workflow,
    step: Step,
    state: StepState,
    states: States,
    inputs: Mapping[str, Any],
    run: Mapping[str, Any],
    waiting: list[tuple[str, int]],
) -> Action | None:
    assert step.loop is not None
    before = len(waiting)
    action = _in_group(workflow, step.id, state.rounds, states, inputs, run, waiting)
    if action is not None or len(waiting) > before:
        return action
    scope = variables(workflow, states, inputs, run, state.rounds)
    until = step.loop.until
    try:
        ended = condition(until, scope)
    except ExpressionError as error:
        return EndLoop(step, "failed", f"its until condition failed: {error}", {})
    decided = {"until": until.source, "values": values_read(until, scope), "round": state.rounds}
    if ended:
        return EndLoop(step, "done", f"until held after round {state.rounds}", decided)
    if state.rounds >= step.loop.max:
        reason = f"reached its maximum of {step.loop.max} rounds without until holding"
        return EndLoop(step, "failed", reason, decided)
    return NextRound(step, state.rounds + 1, decided)


# ----------------------------------------------------------------------------- failures


@dataclass(frozen=True)
class FailureEffect:
    """What a failed step (or loop) leads to: ``fail_run``, ``fail_loop`` (the step's loop
    fails, then the loop's own ``on_failure`` applies), ``continue`` or ``goto`` (``target``
    runs next; ``skip`` lists the steps that needed the failed one and are skipped)."""

    kind: str
    target: str | None = None
    skip: tuple[str, ...] = ()


def failure_effect(workflow: Workflow, step: Step) -> FailureEffect:
    if step.on_failure == "continue":
        return FailureEffect("continue")
    if step.on_failure == "goto" and step.goto is not None:
        return FailureEffect("goto", step.goto, _skipped_by_goto(workflow, step, step.goto))
    return FailureEffect("fail_loop" if step.parent else "fail_run")


def _skipped_by_goto(workflow: Workflow, failed: Step, target: str) -> tuple[str, ...]:
    """The steps downstream of ``failed`` that the jump bypasses: not the target, nor what
    follows the target."""
    group = workflow.group(failed.parent)
    after_target = _downstream(group, target) | {target}
    return tuple(
        step_id for step_id in _downstream(group, failed.id) if step_id not in after_target
    )


def _downstream(group: tuple[Step, ...], start: str) -> set[str]:
    found: set[str] = set()
    frontier = {start}
    while frontier:
        frontier = {step.id for step in group if set(step.needs) & frontier} - found
        found |= frontier
    return found
