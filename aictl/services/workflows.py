"""The workflow engine: register definitions, start runs, drive them step by step, resume them.

A run is driven by one process at a time (a file lock per run, released by the kernel when the
process dies, so ``resume`` after a SIGKILL takes it over at once). The engine loops: load the
step records, ask :func:`aictl.domain.workflows.next_action`, carry the action out in one store
transaction or one task execution, repeat. Every step's work is an ordinary task created
through the task store with a policy decision, and run by the :class:`Executor`, so leases,
path locks, policy and the audit log apply to it unchanged.

A step killed mid-run leaves its task claimed or running under a lease nobody renews: resume
waits for that lease to expire (the sweep requeues the task, counting the attempt), then runs
the task again. Finished steps are never run again: their records say so.

Approval gates: a step with ``approval`` creates its task awaiting approval (the policy's
``create`` decision raised to ``require_approval``, recorded as such). The run then waits
(status ``waiting``) until the task is approved, by ``aictl task approve TASK`` or
``aictl workflow approve RUN STEP``, and ``aictl workflow resume RUN`` continues it.
"""

from __future__ import annotations

import inspect
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aictl.domain.globs import globs_intersect
from aictl.domain.tasks import Status, Task
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
from aictl.domain.worktrees import CONTINUES_LABEL
from aictl.errors import (
    AictlError,
    Contention,
    InvalidInput,
    LeaseLost,
    NothingReady,
    PolicyDenied,
)
from aictl.services.tasks import Hold, TaskService
from aictl.store.workflows import Run, StepRecord, WorkflowStore
from aictl.workflows.definition import Step, Workflow

Progress = Callable[[str], None]
FINISHED_RUN = ("done", "failed", "cancelled")
TESTS_OUTPUT_CHARS = 8000


@dataclass(frozen=True)
class RunReport:
    run: Run
    steps: list[StepRecord]
    driven: bool | None = None
    """Whether a process drives the run now (None when not checked)."""

    def to_dict(self) -> dict[str, Any]:
        data = self.run.to_dict()
        data["steps"] = [record.to_dict() for record in self.steps]
        if self.driven is not None:
            data["driven"] = self.driven
        return data


def workflows_dir(service: TaskService) -> Path:
    return service.workspace.state_dir / "workflows"


class WorkflowService:
    def __init__(
        self,
        service: TaskService,
        *,
        progress: Progress | None = None,
        executor: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        poll: float = 0.5,
    ) -> None:
        self.service = service
        self.store = WorkflowStore(service.db, service.store.clock, actor=service.store.actor)
        self.progress = progress or (lambda text: None)
        self._executor = executor
        self.sleep = sleep
        self.poll = poll

    @property
    def executor(self) -> Any:
        if self._executor is None:
            from aictl.services.executor import Executor

            self._executor = Executor(self.service, progress=self.progress)
        return self._executor

    # ------------------------------------------------------------------ definitions

    def register(self, path: Path, *, replace: bool = False) -> Workflow:
        """Validate ``path`` and copy it to ``.ai/workflows/NAME.yaml``; nothing is written
        when it has errors (``InvalidWorkflow`` lists them all) or when NAME exists and not
        ``replace``."""
        from aictl.workflows.loader import load

        workflow = load(path)
        target = workflows_dir(self.service) / f"{workflow.name}.yaml"
        if target.exists() and not replace and target.resolve() != path.resolve():
            raise InvalidInput(
                f"a workflow named {workflow.name!r} is already registered ({target})",
                hint="pass --replace to replace it",
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.resolve() != path.resolve():
            shutil.copyfile(path, target)
        with self.service.db.transaction():
            self.store.audit.append(
                self.service.store.clock.now(),
                "workflow.registered",
                self.store.actor,
                None,
                {"workflow": workflow.name, "hash": workflow.hash, "from": str(path)},
            )
        return workflow

    def definitions(self) -> list[tuple[str, Any]]:
        """Every file in ``.ai/workflows/`` with its loading outcome (valid or not)."""
        from aictl.workflows.loader import load_file

        folder = workflows_dir(self.service)
        if not folder.is_dir():
            return []
        root = self.service.workspace.root
        return [
            (path.stem, load_file(path, display=str(path.relative_to(root))))
            for path in sorted(folder.glob("*.yaml"))
        ]

    def get(self, name: str) -> Workflow:
        from aictl.workflows.loader import load

        path = workflows_dir(self.service) / f"{name}.yaml"
        if not path.is_file():
            known = ", ".join(stem for stem, _ in self.definitions()) or "none"
            raise InvalidInput(
                f"no workflow named {name!r}; registered: {known}",
                hint="register one with `aictl workflow create FILE`",
            )
        return load(path, display=str(path.relative_to(self.service.workspace.root)))

    # ------------------------------------------------------------------ runs

    def execute(self, name: str, inputs: Sequence[str] = ()) -> RunReport:
        """Start a run of workflow ``name`` and drive it until it ends or waits."""
        workflow = self.get(name)
        values = parse_inputs(workflow, inputs)
        run = self.store.create_run(workflow.name, workflow.source, workflow.hash, values)
        self.progress(f"run {run.id} of {workflow.name} started")
        return self.drive(run.id)

    def resume(self, run_id: int) -> RunReport:
        run = self.store.get_run(run_id)
        if run.status in FINISHED_RUN:
            raise InvalidInput(f"run {run_id} is {run.status}; there is nothing to resume")
        self.progress(f"run {run_id} of {run.workflow} resumed")
        return self.drive(run_id)

    def report(self, run_id: int) -> RunReport:
        run = self.store.get_run(run_id)
        driven = None
        if run.status not in FINISHED_RUN:
            driven = self._driven(run_id)
        return RunReport(run, self.store.steps(run_id), driven)

    def runs(self, workflow: str | None = None) -> list[Run]:
        return self.store.list_runs(workflow)

    def cancel(self, run_id: int) -> RunReport:
        """Cancel the run and every unfinished task of its steps; a process driving the run
        notices (its task's lease dies with the cancel) and stops."""
        run = self.store.get_run(run_id)
        if run.status in FINISHED_RUN:
            raise InvalidInput(f"run {run_id} is already {run.status}")
        self.store.set_run_status(run_id, "cancelled", "cancelled by " + self.store.actor)
        for record in self.store.steps(run_id):
            state = record.state
            if state.status not in ("started", "looping", "pending"):
                continue
            if state.task_id is not None and record.task_status not in (
                "done",
                "failed",
                "cancelled",
            ):
                self.service.cancel(state.task_id, reason=f"workflow run {run_id} cancelled")
            self.store.finish_step(
                run_id, state.step, state.iteration, "cancelled", task_id=state.task_id
            )
        return self.report(run_id)

    def approve(self, run_id: int, step: str) -> Task:
        """Approve the task of ``step`` that awaits approval (a policy decision, as for
        ``aictl task approve``)."""
        for record in reversed(self.store.steps(run_id)):
            if record.state.step == step and record.state.task_id is not None:
                return self.service.approve(record.state.task_id)
        raise InvalidInput(f"step {step!r} of run {run_id} has no task awaiting approval")

    # ------------------------------------------------------------------ the engine

    def _lock_path(self, run_id: int) -> Path:
        # Under .ai/runs/, which git ignores and the executor never counts as a change.
        return self.service.workspace.state_dir / "runs" / "workflows" / f"{run_id}.lock"

    def _driven(self, run_id: int) -> bool:
        from filelock import FileLock, Timeout

        path = self._lock_path(run_id)
        if not path.exists():
            return False
        lock = FileLock(str(path))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return True
        lock.release()
        return False

    def drive(self, run_id: int) -> RunReport:
        """Drive the run until it finishes or waits for an approval. ``Contention`` when
        another process drives it."""
        from filelock import FileLock, Timeout

        path = self._lock_path(run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise Contention(
                f"run {run_id} is being driven by another process",
                hint=f"`aictl workflow status {run_id}` shows its progress",
            ) from None
        try:
            run = self.store.get_run(run_id)
            from aictl.workflows.loader import load_text

            loaded = load_text(run.definition, display=f"run {run_id} ({run.workflow})")
            if loaded.workflow is None:
                from aictl.workflows.loader import InvalidWorkflow

                raise InvalidWorkflow(loaded.issues)
            if run.status == "waiting":
                self.store.set_run_status(run_id, "running")
            self._loop(loaded.workflow, run_id)
        finally:
            lock.release()
        return self.report(run_id)

    def _loop(self, workflow: Workflow, run_id: int) -> None:
        while True:
            run = self.store.get_run(run_id)
            if run.status in FINISHED_RUN:
                return
            states = self.store.states(run_id)
            context = {"id": run_id, "workflow": workflow.name}
            action = next_action(workflow, states, run.inputs, context)
            if isinstance(action, Finish):
                self.store.set_run_status(run_id, action.status)
                self.progress(f"run {run_id} {action.status}")
                return
            if isinstance(action, Wait):
                names = ", ".join(step for step, _ in action.steps)
                self.store.set_run_status(run_id, "waiting", f"awaiting approval: {names}")
                self.progress(
                    f"run {run_id} waits for approval of {names}: "
                    f"`aictl workflow approve {run_id} STEP`, then `aictl workflow resume {run_id}`"
                )
                return
            if isinstance(action, Skip):
                self.progress(
                    f"step {_label(action.step, action.iteration)} skipped: {action.reason}"
                )
                outcome = {"reason": action.reason}
                self.store.finish_step(
                    run_id,
                    action.step.id,
                    action.iteration,
                    "skipped",
                    outcome=outcome,
                    decided=action.decided,
                )
            elif isinstance(action, Fail):
                self.progress(
                    f"step {_label(action.step, action.iteration)} failed: {action.reason}"
                )
                self.store.finish_step(
                    run_id,
                    action.step.id,
                    action.iteration,
                    "failed",
                    outcome={"reason": action.reason},
                )
                self._after_failure(workflow, run_id, action.step, action.iteration, action.reason)
            elif isinstance(action, Start):
                self._start(workflow, run, states, action)
            elif isinstance(action, NextRound):
                self.progress(f"loop {action.loop.id}: round {action.round}")
                self.store.next_round(run_id, action.loop.id, action.round, action.decided)
            elif isinstance(action, EndLoop):
                self.progress(f"loop {action.loop.id} {action.status}: {action.reason}")
                self.store.finish_step(
                    run_id,
                    action.loop.id,
                    0,
                    action.status,
                    outcome={"reason": action.reason},
                    decided=action.decided,
                )
                if action.status == "failed":
                    self._after_failure(workflow, run_id, action.loop, 0, action.reason)
            elif isinstance(action, Drive):
                self._drive_step(workflow, run_id, action)

    def _start(
        self,
        workflow: Workflow,
        run: Run,
        states: Mapping[tuple[str, int], StepState],
        action: Start,
    ) -> None:
        step = action.step
        if step.loop is not None:
            self.progress(f"loop {step.id}: round 1")
            self.store.start_loop(run.id, step.id)
            return
        assert step.task is not None
        scope = variables(
            workflow,
            states,
            run.inputs,
            {"id": run.id, "workflow": workflow.name},
            action.iteration if step.parent else None,
        )
        from aictl.workflows.expressions import ExpressionError, render

        try:
            fields = self._task_fields(workflow, run.id, step, action.iteration, scope, render)
        except ExpressionError as error:
            reason = f"its task template failed: {error}"
            self.store.finish_step(
                run.id, step.id, action.iteration, "failed", outcome={"reason": reason}
            )
            self._after_failure(workflow, run.id, step, action.iteration, reason)
            return
        depends_on = []
        for need in step.needs:
            state = states.get((need, action.iteration))
            if state and state.status == "done" and state.task_id:
                depends_on.append(state.task_id)
        fields["depends_on"] = depends_on
        previous = self._failed_work(states, fields["paths"])
        if previous is not None and not any(
            label.startswith(f"{CONTINUES_LABEL}=") for label in fields["labels"]
        ):
            # in its own worktree the step would not see the failed work it is to fix
            fields["labels"].append(f"{CONTINUES_LABEL}={previous}")
        title = fields.pop("title")

        def create() -> Task:
            return self._create_task(title, fields, step)

        task = self.store.start_step(run.id, step.id, action.iteration, create)
        gate = " (awaiting approval)" if step.approval else ""
        self.progress(f"step {_label(step, action.iteration)}: task {task.id} created{gate}")

    def _failed_work(
        self, states: Mapping[tuple[str, int], StepState], paths: Sequence[str]
    ) -> int | None:
        """The run's latest failed step task, when its paths overlap ``paths``: a step started
        after it (a fix step, the next round of a loop) continues its work (``continues``)."""
        failed = [s.task_id for s in states.values() if s.status == "failed" and s.task_id]
        if not failed:
            return None
        latest = self.service.get(max(failed))
        if any(globs_intersect(a, b) for a in latest.paths for b in paths):
            return latest.id
        return None

    def _task_fields(
        self,
        workflow: Workflow,
        run_id: int,
        step: Step,
        iteration: int,
        scope: dict[str, Any],
        render: Callable[..., str],
    ) -> dict[str, Any]:
        template = step.task
        assert template is not None
        labels = {key: render(value, scope) for key, value in template.labels.items()}
        labels.update(
            {"workflow": workflow.name, "workflow_run": str(run_id), "workflow_step": step.id}
        )
        if template.ai:
            labels.setdefault("ai", template.ai)
        fields: dict[str, Any] = {
            "title": render(template.title, scope),
            "description": render(template.description, scope),
            "paths": [render(path, scope) for path in template.paths],
            "requires": list(template.requires),
            "labels": [f"{key}={value}" for key, value in labels.items()],
            "priority": template.priority,
            "type": template.type,
        }
        if step.retry_max:
            fields["max_attempts"] = step.retry_max + 1
        if template.skills and "skills" in inspect.signature(self.service.new_task).parameters:
            fields["skills"] = list(template.skills)
        return fields

    def _create_task(self, title: str, fields: dict[str, Any], step: Step) -> Task:
        """Create the step's task with its policy decision; an approval gate raises the
        decision to ``require_approval`` (recorded with a rule naming the workflow step)."""
        if not step.approval:
            return self.service.create(title, **fields)
        reason = step.approval_reason or "the workflow step has an approval gate"
        hold = Hold(f"workflow-step:{step.id}", reason)
        return self.service.create(title, hold=hold, **fields)

    def _drive_step(self, workflow: Workflow, run_id: int, action: Drive) -> None:
        step, iteration = action.step, action.iteration
        task = self.service.get(action.task_id)
        status = task.status
        if status == Status.QUEUED:
            now = self.service.store.clock.now()
            if task.not_before is not None and task.not_before > now:
                wait = (task.not_before - now).total_seconds()
                self.progress(f"step {_label(step, iteration)}: retry in {wait:.1f}s")
                self.sleep(wait)
                return
            self.store.count_execution(run_id, step.id, iteration)
            self.progress(f"step {_label(step, iteration)}: running task {task.id}")
            assert step.task is not None
            try:
                self.executor.execute(task.id, ai=step.task.ai)
            except (LeaseLost, Contention) as error:
                self.progress(f"step {_label(step, iteration)}: {error}")
            except (NothingReady, PolicyDenied):
                # Refused before any agent ran: not a run. The run stays `running`, resumable
                # once an AI is registered or the policy allows it.
                self.store.count_execution(run_id, step.id, iteration, -1)
                raise
            return
        if status in (Status.CLAIMED, Status.RUNNING):
            self.service.sweep()
            if self.service.get(task.id).status in (Status.CLAIMED, Status.RUNNING):
                self.progress(
                    f"step {_label(step, iteration)}: task {task.id} is held by "
                    f"{task.lease_holder} until {task.lease_expires_at:%H:%M:%S}; waiting"
                )
                self.sleep(self.poll)
            return
        if status == Status.DONE:
            outcome = _outcome(task, task.evidence or {})
            self.store.finish_step(
                run_id, step.id, iteration, "done", outcome=outcome, task_id=task.id
            )
            self.progress(f"step {_label(step, iteration)} done (tests {outcome['tests'] or '-'})")
            return
        if status == Status.FAILED:
            state = self.store.states(run_id)[(step.id, iteration)]
            reason = task.failure_reason or "failed"
            if state.retries < step.retry_max:
                self.store.count_retry(run_id, step.id, iteration, reason)
                self.progress(
                    f"step {_label(step, iteration)} failed ({reason}); "
                    f"retry {state.retries + 1} of {step.retry_max}"
                )
                if step.retry_backoff:
                    self.sleep(step.retry_backoff)
                self.service.retry(task.id)
                return
            outcome = _outcome(task, self._failed_evidence(task))
            self.store.finish_step(
                run_id, step.id, iteration, "failed", outcome=outcome, task_id=task.id
            )
            self.progress(f"step {_label(step, iteration)} failed: {reason}")
            self._after_failure(workflow, run_id, step, iteration, reason)
            return
        if status == Status.CANCELLED:
            reason = task.failure_reason or "its task was cancelled"
            self.store.finish_step(
                run_id, step.id, iteration, "failed", outcome={"reason": reason}, task_id=task.id
            )
            self.progress(f"step {_label(step, iteration)} failed: {reason}")
            self._after_failure(workflow, run_id, step, iteration, reason)
            return
        # blocked, but not awaiting approval: a dependency of its task cannot finish
        reason = task.blocked_reason or "its task is blocked"
        self.store.finish_step(
            run_id, step.id, iteration, "failed", outcome={"reason": reason}, task_id=task.id
        )
        self._after_failure(workflow, run_id, step, iteration, reason)

    def _failed_evidence(self, task: Task) -> dict[str, Any]:
        from aictl.services.executor import read_evidence

        try:
            return read_evidence(self.service.workspace, task.id)[1]
        except AictlError:
            return {}

    def _after_failure(
        self, workflow: Workflow, run_id: int, step: Step, iteration: int, reason: str
    ) -> None:
        effect = failure_effect(workflow, step)
        if effect.kind == "continue":
            return
        if effect.kind == "goto":
            assert effect.target is not None
            states = self.store.states(run_id)
            target = states.get((effect.target, iteration))
            if target is not None and target.status != "pending":
                self.store.set_run_status(
                    run_id,
                    "failed",
                    f"step {step.id} failed and its goto target {effect.target} has already "
                    f"{target.status}",
                )
                return
            for skipped in effect.skip:
                if (skipped, iteration) not in states:
                    self.store.finish_step(
                        run_id,
                        skipped,
                        iteration,
                        "skipped",
                        outcome={"reason": f"{step.id} failed; the run went to {effect.target}"},
                        decided={"goto": effect.target, "failed": step.id},
                    )
            self.store.force(run_id, effect.target, iteration, step.id)
            self.progress(f"step {step.id} failed: going to {effect.target}")
            return
        if effect.kind == "fail_loop" and step.parent is not None:
            loop = workflow.step(step.parent)
            why = f"step {step.id} failed: {reason}"
            self.store.finish_step(run_id, loop.id, 0, "failed", outcome={"reason": why})
            self.progress(f"loop {loop.id} failed: {why}")
            self._after_failure(workflow, run_id, loop, 0, why)
            return
        self.store.set_run_status(run_id, "failed", f"step {step.id} failed: {reason}")
        self.progress(f"run {run_id} failed: step {step.id} failed")


def _label(step: Step, iteration: int) -> str:
    return f"{step.id}#{iteration}" if iteration else step.id


def _outcome(task: Task, evidence: Mapping[str, Any]) -> dict[str, Any]:
    found = evidence.get("tests")
    tests: Mapping[str, Any] = found if isinstance(found, dict) else {}
    output = str(tests.get("output") or "")
    return {
        "tests": tests.get("status") or "",
        "tests_output": output[-TESTS_OUTPUT_CHARS:],
        "files_changed": list(evidence.get("files_changed") or []),
        "reason": task.failure_reason or "",
    }


def parse_inputs(workflow: Workflow, pairs: Sequence[str]) -> dict[str, Any]:
    """``K=V`` pairs checked against the declared inputs; defaults filled in."""
    declared = {item.name: item for item in workflow.inputs}
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"invalid --input {pair!r}", hint="write it as NAME=VALUE")
        if key not in declared:
            valid = ", ".join(declared) or "none"
            raise InvalidInput(
                f"workflow {workflow.name} has no input {key!r}", hint=f"its inputs: {valid}"
            )
        values[key] = value
    for item in workflow.inputs:
        if item.name in values:
            continue
        if item.required:
            raise InvalidInput(
                f"workflow {workflow.name} needs --input {item.name}=...",
                hint=item.description or None,
            )
        values[item.name] = item.default if item.default is not None else ""
    return values
