"""The executor: run one task with one AI, from claim to a judged, evidenced outcome.

``execute`` picks a task and an AI (the router, unless one is named), claims the task as that
AI, records an ``execute`` decision, starts it, drives the AI's connector while a background
thread heartbeats the lease, then gathers evidence from git and from aictl's own run of the
policy's ``test_command`` (never from the model's words), stores it under
``.ai/runs/<task>/<attempt>/`` and completes or fails the task.

A retryable failure is requeued with a ``not_before`` time (``retry_delay``: exponential
backoff with full jitter, from the policy's ``retry_backoff`` and ``retry_backoff_max``).
Every run's outcome is recorded on the AI's health (the circuit breaker): a successful run
resets ``consecutive_failures``, a retryable failure (API 5xx, crash, timeouts) counts, and
``quarantine_after`` of them in a row quarantine the AI, which the router then skips. Policy
denials and bad input (non-retryable reasons) are not the AI's failures and count neither way.

Two companions do the parts that read git: ``aictl.services.evidence`` (what the run changed,
the tests, the verdict) and ``aictl.services.isolation`` (the attempt's own worktree: made
before the agent starts, then committed, tested and integrated).
"""

from __future__ import annotations

import json
import os
import random as random_module
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import connectors
from aictl.domain.actors import AGENT_RUN_ENV
from aictl.domain.ais import AIStatus
from aictl.domain.backoff import (
    DEFAULT_QUARANTINE_AFTER,
    DEFAULT_RETRY_BACKOFF,
    DEFAULT_RETRY_BACKOFF_MAX,
    RandomSource,
    retry_delay,
)
from aictl.domain.budgets import format_usd
from aictl.domain.durations import parse_duration
from aictl.domain.routing import route
from aictl.domain.tasks import LeaseToken, Task
from aictl.errors import AictlError, InvalidInput, LeaseLost, NothingReady, PolicyDenied
from aictl.policy.layers import Policy
from aictl.services.budgets import account_run, check_budgets
from aictl.services.confinement import (
    require_sandbox,
    sandbox_for,
    setting_sources,
    user_login,
)
from aictl.services.evidence import Inspector, judge_outcome, listing
from aictl.services.isolation import Isolation
from aictl.services.tasks import DEFAULT_TTL, TaskService
from aictl.services.toolgate import ToolGate
from aictl.store.ais import AIStore
from aictl.workspace import Workspace
from connectors import RunRequest, RunResult
from connectors.claude_code.stream import AssistantTurn, Result, ToolResult

DEFAULT_TASK_TIMEOUT = timedelta(minutes=5)
DEFAULT_IDLE_TIMEOUT = timedelta(minutes=2)
DEFAULT_PERMISSION_MODE = "acceptEdits"
#: Environment names passed to the agent when aictl has them (test and operator knobs), and
#: the agent-run marker, which tells aictl that a request comes from inside an agent run
#: (approvals and overrides refuse it: aictl.domain.actors).
AGENT_ENV = ("CLAUDE_CODE_MAX_RETRIES", "API_TIMEOUT_MS", AGENT_RUN_ENV)
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Execution:
    """How one ``execute`` ended."""

    task: Task
    ai: str
    attempt: int
    outcome: str  # done | requeued | failed
    reason: str | None
    evidence_path: Path
    evidence: dict[str, Any]
    quarantined: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task.id,
            "ai": self.ai,
            "attempt": self.attempt,
            "outcome": self.outcome,
            "status": str(self.task.status),
            "reason": self.reason,
            "not_before": self.task.to_dict()["not_before"],
            "ai_quarantined": self.quarantined,
            "evidence_path": str(self.evidence_path),
        }


def runs_dir(workspace: Workspace) -> Path:
    return workspace.state_dir / "runs"


def read_evidence(
    workspace: Workspace, task_id: int, attempt: int | None = None
) -> tuple[int, dict[str, Any]]:
    """The stored evidence of ``attempt`` (default: the latest) of ``task_id``."""
    folder = runs_dir(workspace) / str(task_id)
    attempts = (
        sorted(
            int(p.name)
            for p in folder.glob("*")
            if p.name.isdigit() and (p / "evidence.json").is_file()
        )
        if folder.is_dir()
        else []
    )
    if not attempts:
        raise InvalidInput(
            f"task {task_id} has no stored evidence", hint="run it with `aictl task execute`"
        )
    chosen = attempts[-1] if attempt is None else attempt
    if chosen not in attempts:
        raise InvalidInput(
            f"task {task_id} has no evidence for attempt {chosen}",
            hint="attempts with evidence: " + ", ".join(map(str, attempts)),
        )
    path = folder / str(chosen) / "evidence.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return chosen, data


def new_run_dir(workspace: Workspace, task: Task) -> Path:
    """A new folder for this run's evidence, ``.ai/runs/<task>/<n>/``, created. ``n`` is the
    task's attempt count, unless an earlier run already used that number (``task retry``
    starts the count afresh, and a released run gives its attempt back), then one past the
    highest: a new run never overwrites an earlier run's evidence. ``n`` is the attempt
    number that ``task evidence --attempt`` shows."""
    folder = runs_dir(workspace) / str(task.id)
    used = [int(p.name) for p in folder.glob("*") if p.name.isdigit()] if folder.is_dir() else []
    number = max(task.attempts, 1)
    if number <= max(used, default=0):
        number = max(used) + 1
    run_dir = folder / str(number)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


class Executor:
    def __init__(
        self,
        service: TaskService,
        *,
        environ: Mapping[str, str] | None = None,
        progress: Progress | None = None,
        random: RandomSource | None = None,
    ) -> None:
        self.service = service
        self.workspace = service.workspace
        self.environ = dict(os.environ if environ is None else environ)
        self.progress = progress or (lambda text: None)
        self.random: RandomSource = random or random_module.Random()
        self.inspector = Inspector(service, self.environ, self.progress)
        self.isolation = Isolation(service, self.inspector, self.environ, self.progress)

    # choosing

    def _pick_task(self, task_id: int | None) -> Task:
        if task_id is not None:
            return self.service.get(task_id)
        ready = self.service.list_tasks(ready=True)
        if not ready:
            raise NothingReady("no task is ready to execute")
        return sorted(ready, key=lambda t: (-t.priority, t.created_at, t.id))[0]

    def _pick_ai(self, task: Task, ai: str | None) -> tuple[str, str, str | None]:
        """The AI id, its connector name and its registered model."""
        store = AIStore(self.service.db, self.service.store.clock)
        store.refresh_busy()
        if ai is not None:
            found = store.get(ai)
            return found.id, found.connector, found.model
        checks = None
        if task.skills:  # the skills machinery (and its imports) only when a task names some
            from aictl.services.skills import skill_checks

            checks = skill_checks(self.service, task)
        answer = route(task, store.list_ais(), store.load(), checks)
        if answer.ai is None:
            why = "; ".join(f"{c.ai}: {', '.join(c.reasons)}" for c in answer.candidates)
            raise NothingReady(
                f"no registered AI can take task {task.id}: {why or 'no AI is registered'}",
                hint="register one with `aictl ai register`, or pass --ai",
            )
        chosen = store.get(answer.ai)
        return chosen.id, chosen.connector, chosen.model

    # the run

    def execute(
        self,
        task_id: int | None = None,
        *,
        ai: str | None = None,
        timeout: str | None = None,
        cancel: threading.Event | None = None,
    ) -> Execution:
        """Run one task to a judged outcome. Setting ``cancel`` (from another thread) stops
        the agent and releases the task, lease and locks, with the evidence so far kept: the
        outcome is then ``released``."""
        task = self._pick_task(task_id)
        ai_id, connector_name, registered_model = self._pick_ai(task, ai)
        policy = self.service.enforcer.policy(ai_id)
        total = (
            parse_duration(timeout, field="--timeout")
            if timeout
            else policy.duration("timeouts.task") or DEFAULT_TASK_TIMEOUT
        )
        idle = policy.duration("timeouts.idle") or DEFAULT_IDLE_TIMEOUT
        ttl = policy.duration("lease_ttl") or DEFAULT_TTL
        connector = connectors.get(connector_name)
        sandbox_mode = require_sandbox(policy, task.id, self.environ.get("PATH"))
        budget = check_budgets(self.service, task, ai_id, policy)  # before the claim is spent

        claim = self.service.claim(ai_id, task_id=task.id)
        token, task = claim.token, claim.task
        decision = self._enforce_execute(task, ai_id, token, sandbox_mode)
        task = self.service.start(token)
        AIStore(self.service.db, self.service.store.clock).refresh_busy()
        run_dir = new_run_dir(self.workspace, task)
        attempt = int(run_dir.name)
        self.progress(f"task {task.id} attempt {attempt}: running as {ai_id} ({connector_name})")

        isolated, root = self.isolation.isolate(task, token, attempt, policy)
        base_commit = self.inspector.head(root)
        dirty_before = self.inspector.dirty(root) if base_commit else {}
        confinement = self._confinement(task, policy, sandbox_mode, root)
        watch = _Watch(self.workspace, token, ttl.total_seconds() / 3, connector, cancel)
        gate = ToolGate(
            self.workspace,
            task,
            ai_id,
            token,
            self.progress,
            self.service.enforcer,
            watch.lose,
            root=root,
        )
        transcript = (run_dir / "transcript.jsonl").open("w", encoding="utf-8")
        watch.start()  # before the skills' scripts: they run under the lease too
        try:
            context, skills_evidence = self._prepare_skills(task, ai_id, run_dir)
            request = RunRequest(
                prompt=build_prompt(task),
                context=context,
                cwd=root,
                run_dir=run_dir / "agent",
                base_env={**self.environ, AGENT_RUN_ENV: f"{task.id}:{attempt}"},
                allow_env=AGENT_ENV,
                idle_timeout=idle.total_seconds(),
                total_timeout=total.total_seconds(),
                on_event=self._on_event,
                on_line=lambda line: print(line, file=transcript),
                gate=gate,
                **confinement,
                **agent_settings(policy.ai_settings(ai_id), registered_model, budget),
            )
            # what the run cost is recorded, and judged against its budget, whatever its end
            result = account_run(
                self.service, task, ai_id, token, attempt, connector.run(request), budget
            )
        except connectors.ConnectorError as error:  # it could not start: not the task's fault
            self.service.release(token)
            AIStore(self.service.db, self.service.store.clock).refresh_busy()
            error.hint = error.hint or f"task {task.id} was released; no attempt was counted"
            raise
        finally:
            watch.stop()
            transcript.close()
            gate.close()

        stopped = watch.lost.is_set() or watch.cancelled.is_set()  # no tests for a stopped run
        test_timeout = None if stopped or not result.ok else total.total_seconds()
        evidence = self.inspector.evidence(
            task,
            ai_id,
            attempt,
            base_commit,
            dirty_before,
            result,
            None if isolated is not None else test_timeout,
            root=root,
        )
        if isolated is not None:
            self.isolation.finish(
                isolated, task, ai_id, token, decision, result, evidence, test_timeout, watch.lost
            )
        evidence_path = self._keep_evidence(
            task,
            run_dir,
            evidence,
            result,
            gate=gate.summary(),
            skills=skills_evidence,
            watch=watch,
        )
        try:
            return self._settle(task, token, ai_id, attempt, result, evidence_path, evidence, watch)
        finally:
            AIStore(self.service.db, self.service.store.clock).refresh_busy()

    def _keep_evidence(
        self,
        task: Task,
        run_dir: Path,
        evidence: dict[str, Any],
        result: RunResult,
        *,
        gate: dict[str, Any],
        skills: dict[str, Any],
        watch: _Watch,
    ) -> Path:
        """Complete the attempt's evidence, write it beside the transcript and say what the
        agent did; returns the evidence file."""
        evidence["tool_decisions"] = gate
        evidence["skills"] = skills
        evidence["heartbeat_errors"] = watch.errors[-10:]
        evidence_path = run_dir / "evidence.json"
        evidence_path.write_text(json.dumps(evidence, indent=2, sort_keys=True) + "\n")
        self._summarise(task, evidence, result)
        return evidence_path

    def _confinement(
        self, task: Task, policy: Policy, sandbox_mode: str, root: Path
    ) -> dict[str, Any]:
        """The run's sandbox (planned now, while the task holds its locks and the others
        theirs) and the agent settings it loads. In a worktree (``root`` is not the
        repository's) the plan is the same, drawn in the worktree: only the agent's working
        directory and its allowed folders are writable, so the main working tree, ``.ai/``,
        the other worktrees and git's objects and refs are read-only; other tasks' globs
        need no deny there (their files are in other worktrees)."""
        sandbox = None
        if sandbox_mode == "required":
            home = None if policy.setting("reads") == "anywhere" else self.environ.get("HOME")
            if root == self.workspace.root:
                held = [lock.glob for lock in self.service.locks() if lock.task_id != task.id]
                sandbox = sandbox_for(self.workspace, task.paths, held, home)
            else:
                place = Workspace(root, self.workspace.db_path)
                sandbox = sandbox_for(place, task.paths, [], home)
        return {
            "sandbox": sandbox,
            "setting_sources": setting_sources(policy),
            "user_login": user_login(policy),
        }

    def _prepare_skills(
        self, task: Task, ai_id: str, run_dir: Path
    ) -> tuple[str | None, dict[str, Any]]:
        """The context the task's skills give the agent, and their evidence."""
        if not task.skills:
            return None, {"skills": [], "scripts": [], "problems": []}
        from aictl.services.skills import prepare_skills

        prepared = prepare_skills(self.service, task, ai_id, run_dir)
        return prepared.context, prepared.evidence

    def _settle(
        self,
        task: Task,
        token: LeaseToken,
        ai_id: str,
        attempt: int,
        result: RunResult,
        evidence_path: Path,
        evidence: dict[str, Any],
        watch: _Watch,
    ) -> Execution:
        """Complete, fail, requeue or release the task from the judged run."""
        policy = self.service.enforcer.policy(ai_id)
        if watch.lost.is_set():
            raise LeaseLost(
                f"the lease on task {task.id} was lost during the run; the agent was stopped",
                hint=f"its evidence is kept in {evidence_path}",
            )
        if watch.cancelled.is_set():
            task = self.service.release(token)
            self.progress(f"task {task.id} released: the run was cancelled")
            return Execution(task, ai_id, attempt, "released", "cancelled", evidence_path, evidence)
        outside = evidence.get("changes_outside_paths") or []
        isolated = evidence.get("isolation") == "worktree"
        # in a worktree nothing outside the task's paths is ever merged: the run fails
        on_outside = "fail" if isolated else str(policy.setting("outside_changes") or "fail")
        outcome, reason = judge_outcome(
            result, evidence["tests"], outside=outside, on_outside=on_outside, paths=task.paths
        )
        integration = evidence.get("integration") or {}
        if reason is None and integration.get("status") in ("refused", "failed"):
            outcome, reason = "fail", str(integration.get("reason"))
        if outside and on_outside == "warn":
            self.progress(
                f"warning: task {task.id}'s run changed {len(outside)} file(s) outside its "
                f"paths: {listing(outside)} (outside_changes: warn)"
            )
        if reason is None:
            summary = f"{ai_id} finished in {result.num_turns} turns; "
            changed = len(evidence["files_changed"])
            summary += f"{changed} file(s) changed; tests {evidence['tests']['status']}"
            task = self.service.complete(token, result=summary, evidence=evidence)
            self._record_health(ai_id, result, policy)
            return Execution(task, ai_id, attempt, "done", None, evidence_path, evidence)
        task = self._fail(token, reason, attempt, retry=outcome == "retry", policy=policy)
        final = "requeued" if str(task.status) == "queued" else "failed"
        quarantined = self._record_health(ai_id, result, policy)
        return Execution(task, ai_id, attempt, final, reason, evidence_path, evidence, quarantined)

    def _summarise(self, task: Task, evidence: Mapping[str, Any], result: RunResult) -> None:
        """The closing lines of the live progress: what the agent did and what it cost."""
        agent = evidence["agent"]
        decisions = evidence["tool_decisions"]
        cost = agent["total_cost_usd"]
        self.progress(
            f"task {task.id}: agent {result.status}"
            + (f" ({result.reason})" if result.reason else "")
            + f"; {agent['num_turns'] or 0} turns, {agent['duration']:.1f}s"
            + (f", {format_usd(cost)}" if isinstance(cost, (int, float)) else "")
            + f"; tool calls allowed {decisions['allowed']}, denied {decisions['denied']}"
            + f"; files changed {len(evidence['files_changed'])}"
        )

    def _fail(
        self, token: LeaseToken, reason: str, attempt: int, *, retry: bool, policy: Policy
    ) -> Task:
        """Fail the task; a retryable failure is requeued after ``retry_delay``."""
        backoff = None
        if retry:
            backoff = retry_delay(
                attempt,
                policy.duration("retry_backoff") or DEFAULT_RETRY_BACKOFF,
                policy.duration("retry_backoff_max") or DEFAULT_RETRY_BACKOFF_MAX,
                self.random,
            )
        return self.service.fail(token, reason=reason, retry=retry, backoff=backoff)

    def _record_health(self, ai_id: str, result: RunResult, policy: Policy) -> bool:
        """The circuit breaker: count the run on the AI's health. True when this run put the
        AI in quarantine. A run that failed for a non-retryable reason (a policy denial, bad
        input, a limit) says nothing about the AI's health and is not counted."""
        if not result.ok and not result.retryable:
            return False
        store = AIStore(self.service.db, self.service.store.clock)
        before = store.get(ai_id).status
        threshold = policy.setting("quarantine_after")
        after = store.record_run(
            ai_id,
            failed=not result.ok,
            error=None if result.ok else f"{result.reason}: {result.detail}"[:500],
            quarantine_after=DEFAULT_QUARANTINE_AFTER if threshold is None else int(threshold),
        )
        tripped = after.status is AIStatus.QUARANTINED and before is not AIStatus.QUARANTINED
        if tripped:
            failures = after.health.get("consecutive_failures")
            self.progress(
                f"AI {ai_id} quarantined after {failures} consecutive failed runs; "
                f"`aictl ai status {ai_id} --set available` lifts it"
            )
        return tripped

    def _enforce_execute(self, task: Task, ai_id: str, token: LeaseToken, sandbox_mode: str) -> str:
        """Decide and record the execution; the record names the sandbox the run gets.
        Returns the decision record's id."""
        resource = {"task": task.id, "paths": list(task.paths), "sandbox": sandbox_mode}
        ruling = self.service.enforcer.ruling(
            "execute", subject=ai_id, task=task, ai=ai_id, resource=resource
        )
        store = self.service.store
        with self.service.db.transaction():
            record = store.decisions.enforce(
                ruling, at=store.clock.now(), task_id=task.id, lease_epoch=token.epoch
            )
        if ruling.effect != "allow":
            self.service.release(token)
            raise PolicyDenied(
                f"policy denies executing task {task.id} by {ai_id}: {ruling.reason}"
            )
        return record.id

    def _on_event(self, event: Any) -> None:
        if isinstance(event, AssistantTurn):
            for use in event.tool_uses:
                shown = json.dumps(dict(use.input))[:120]
                self.progress(f"  tool {use.name} {shown}")
            if event.text.strip():
                self.progress(f"  turn: {event.text.strip()[:200]}")
        elif isinstance(event, ToolResult) and event.is_error:
            self.progress(f"  tool error: {event.content[:200]}")
        elif isinstance(event, Result):
            self.progress(f"  result: {event.subtype} after {event.num_turns} turns")


class _Watch:
    """The run's companion thread: renews the lease every ``every`` seconds on a connection of
    its own, and stops the agent when the lease is lost or ``cancel`` is set.

    A heartbeat that fails for another reason (a busy database, a full disk) is retried on the
    next tick; only a lost lease, which no retry can mend, stops the run.
    """

    TICK = 0.1

    def __init__(
        self,
        workspace: Workspace,
        token: LeaseToken,
        every: float,
        connector: connectors.Connector,
        cancel: threading.Event | None,
    ) -> None:
        self.workspace = workspace
        self.token = token
        self.every = max(every, 0.5)
        self.connector = connector
        self.cancel = cancel
        self.lost = threading.Event()
        self.cancelled = threading.Event()
        #: heartbeats that failed and were retried, kept in the evidence
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="aictl-heartbeat")

    def start(self) -> None:
        self._thread.start()

    def lose(self) -> None:
        """The lease is gone (a heartbeat or the gate found it so): stop the agent now."""
        self.lost.set()
        self.connector.cancel()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        service = TaskService(self.workspace)
        try:
            due = time.monotonic() + self.every
            while not self._stop.wait(self.TICK):
                if self.cancel is not None and self.cancel.is_set():
                    # every tick, not once: a cancel that came before the agent started
                    # (the connector had nothing to stop yet) must stop it when it does
                    self.cancelled.set()
                    self.connector.cancel()
                if time.monotonic() < due:
                    continue
                due = time.monotonic() + self.every
                try:
                    service.heartbeat(self.token)
                except LeaseLost:
                    self.lose()
                    return
                except (AictlError, sqlite3.Error) as error:
                    self.errors.append(str(error))
        finally:
            service.close()


def agent_settings(
    settings: Mapping[str, Any], registered_model: str | None, budget_usd: float | None = None
) -> dict[str, Any]:
    """The ``RunRequest`` fields that come from the policy's per-AI settings; the run's budget
    is ``budget_usd`` when given (see ``budget_for_run``), else the AI's ``max_cost_usd``."""
    return {
        "model": settings.get("model") or registered_model,
        "max_turns": settings.get("max_turns"),
        "max_budget_usd": settings.get("max_cost_usd") if budget_usd is None else budget_usd,
        "permission_mode": settings.get("permission_mode") or DEFAULT_PERMISSION_MODE,
        "allowed_tools": tuple(settings.get("allowed_tools") or ()),
        "disallowed_tools": tuple(settings.get("denied_tools") or ()),
    }


def build_prompt(task: Task) -> str:
    parts = [f"Task {task.id}: {task.title}"]
    if task.description:
        parts.append(task.description)
    if task.paths:
        parts.append("You may edit only these paths: " + ", ".join(task.paths))
    return "\n\n".join(parts)
