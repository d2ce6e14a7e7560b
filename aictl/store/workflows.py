"""Workflow runs and their step records: named queries, one transaction per change, each with
its audit event (``workflow.*``) in the same transaction.

A step's task is created by the task store inside the transaction that records the step
(a savepoint, see :meth:`Database.transaction`), so a crash leaves either both or neither: a
resumed run never creates a second task for a step, and never loses one.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aictl.clock import Clock
from aictl.domain.tasks import Task, format_time, parse_time
from aictl.domain.workflows import StepState
from aictl.errors import InvalidInput
from aictl.store.audit import AuditLog
from aictl.store.db import Database


class RunNotFound(InvalidInput):
    """No workflow run has that id."""


@dataclass(frozen=True)
class Run:
    id: int
    workflow: str
    definition: str
    hash: str
    inputs: dict[str, Any]
    status: str
    reason: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "workflow": self.workflow,
            "hash": self.hash,
            "inputs": self.inputs,
            "status": self.status,
            "reason": self.reason,
            "created_by": self.created_by,
            "created_at": format_time(self.created_at),
            "updated_at": format_time(self.updated_at),
            "finished_at": format_time(self.finished_at) if self.finished_at else None,
        }


@dataclass(frozen=True)
class StepRecord:
    """A step row as stored, with its task's status and approval joined in."""

    state: StepState
    decided: dict[str, Any] | None
    task_status: str | None
    started_at: datetime
    finished_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        state = self.state
        return {
            "step": state.step,
            "iteration": state.iteration,
            "status": state.status,
            "task_id": state.task_id,
            "task_status": self.task_status,
            "forced": state.forced,
            "retries": state.retries,
            "executions": state.executions,
            "rounds": state.rounds,
            "decided": self.decided,
            "outcome": dict(state.outcome),
            "started_at": format_time(self.started_at),
            "finished_at": format_time(self.finished_at) if self.finished_at else None,
        }


_STEP_COLUMNS = (
    "s.step, s.iteration, s.status, s.task_id, s.forced, s.retries, s.executions, s.rounds,"
    " s.decided, s.outcome, s.started_at, s.finished_at, t.status AS task_status, t.approval"
)


class WorkflowStore:
    def __init__(self, db: Database, clock: Clock, *, actor: str) -> None:
        self.db = db
        self.clock = clock
        self.actor = actor
        self.audit = AuditLog(db.connection)
        #: Decoded step records by (run, step, iteration), with the row they came from. The
        #: engine reads every step of its run at each decision; most rows have not changed.
        self._decoded: dict[tuple[int, str, int], tuple[tuple[Any, ...], StepRecord]] = {}

    # runs

    def create_run(
        self, workflow: str, definition: str, digest: str, inputs: Mapping[str, Any]
    ) -> Run:
        with self.db.transaction() as connection:
            stamp = format_time(self.clock.now())
            row = connection.execute(
                "INSERT INTO workflow_runs (workflow, definition, hash, inputs, created_by,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (workflow, definition, digest, json.dumps(dict(inputs)), self.actor, stamp, stamp),
            ).fetchone()
            self.audit.append(
                stamp,
                "workflow.run_started",
                self.actor,
                None,
                {"run": row[0], "workflow": workflow, "hash": digest, "inputs": dict(inputs)},
            )
        return self.get_run(int(row[0]))

    def get_run(self, run_id: int) -> Run:
        row = self.db.connection.execute(
            "SELECT * FROM workflow_runs WHERE id = ?", (run_id,)
        ).fetchone()
        if row is None:
            raise RunNotFound(
                f"no workflow run {run_id}", hint="`aictl workflow list --runs` lists them"
            )
        return _run(row)

    def list_runs(self, workflow: str | None = None) -> list[Run]:
        if workflow is None:
            rows = self.db.connection.execute("SELECT * FROM workflow_runs ORDER BY id")
        else:
            rows = self.db.connection.execute(
                "SELECT * FROM workflow_runs WHERE workflow = ? ORDER BY id", (workflow,)
            )
        return [_run(row) for row in rows]

    def set_run_status(self, run_id: int, status: str, reason: str | None = None) -> Run:
        """Move the run to ``status``; a finished run (done, failed, cancelled) stays as it
        is and is returned unchanged (a cancel wins over an engine finishing at the same
        time)."""
        with self.db.transaction() as connection:
            run = self.get_run(run_id)
            if run.finished_at is not None or (run.status == status and run.reason == reason):
                return run
            stamp = format_time(self.clock.now())
            finished = stamp if status in ("done", "failed", "cancelled") else None
            connection.execute(
                "UPDATE workflow_runs SET status = ?, reason = ?, updated_at = ?,"
                " finished_at = ? WHERE id = ?",
                (status, reason, stamp, finished, run_id),
            )
            self.audit.append(
                stamp,
                f"workflow.run_{status}",
                self.actor,
                None,
                {"run": run_id, "workflow": run.workflow, "reason": reason},
            )
        return self.get_run(run_id)

    # steps

    def steps(self, run_id: int) -> list[StepRecord]:
        rows = self.db.connection.execute(
            f"SELECT {_STEP_COLUMNS} FROM workflow_steps s LEFT JOIN tasks t ON t.id = s.task_id"
            " WHERE s.run_id = ? ORDER BY s.started_at, s.iteration, s.step",
            (run_id,),
        )
        records = []
        for row in rows:  # decoding is most of the cost: reuse a record whose row is unchanged
            raw, key = tuple(row), (run_id, row["step"], row["iteration"])
            cached = self._decoded.get(key)
            if cached is None or cached[0] != raw:
                cached = self._decoded[key] = (raw, _record(row))
            records.append(cached[1])
        return records

    def states(self, run_id: int) -> dict[tuple[str, int], StepState]:
        return {
            (record.state.step, record.state.iteration): record.state
            for record in self.steps(run_id)
        }

    def start_step(
        self, run_id: int, step: str, iteration: int, create_task: Callable[[], Task]
    ) -> Task:
        """Create the step's task (``create_task``, inside this transaction) and record it."""
        with self.db.transaction() as connection:
            task = create_task()
            stamp = format_time(self.clock.now())
            connection.execute(
                "INSERT INTO workflow_steps (run_id, step, iteration, status, task_id,"
                " started_at, updated_at) VALUES (?, ?, ?, 'started', ?, ?, ?)"
                " ON CONFLICT (run_id, step, iteration) DO UPDATE SET status = 'started',"
                " task_id = excluded.task_id, updated_at = excluded.updated_at",
                (run_id, step, iteration, task.id, stamp, stamp),
            )
            self.audit.append(
                stamp,
                "workflow.step_started",
                self.actor,
                task.id,
                {"run": run_id, "step": step, "iteration": iteration, "status": str(task.status)},
            )
        return task

    def start_loop(self, run_id: int, step: str) -> None:
        with self.db.transaction() as connection:
            stamp = format_time(self.clock.now())
            connection.execute(
                "INSERT INTO workflow_steps (run_id, step, iteration, status, rounds, started_at,"
                " updated_at) VALUES (?, ?, 0, 'looping', 1, ?, ?) ON CONFLICT"
                " (run_id, step, iteration) DO UPDATE SET status = 'looping', rounds = 1",
                (run_id, step, stamp, stamp),
            )
            self.audit.append(
                stamp,
                "workflow.loop_round",
                self.actor,
                None,
                {"run": run_id, "step": step, "round": 1},
            )

    def next_round(self, run_id: int, step: str, round: int, decided: Mapping[str, Any]) -> None:
        with self.db.transaction() as connection:
            stamp = format_time(self.clock.now())
            connection.execute(
                "UPDATE workflow_steps SET rounds = ?, decided = ?, updated_at = ?"
                " WHERE run_id = ? AND step = ? AND iteration = 0 AND status = 'looping'",
                (round, json.dumps(dict(decided)), stamp, run_id, step),
            )
            self.audit.append(
                stamp,
                "workflow.loop_round",
                self.actor,
                None,
                {"run": run_id, "step": step, "round": round, "decided": dict(decided)},
            )

    def finish_step(
        self,
        run_id: int,
        step: str,
        iteration: int,
        status: str,
        *,
        outcome: Mapping[str, Any] | None = None,
        decided: Mapping[str, Any] | None = None,
        task_id: int | None = None,
    ) -> None:
        """Record a step's end: done, failed, skipped (``decided`` says why) or cancelled.
        A step with no record yet (skipped before it started) gets one."""
        with self.db.transaction() as connection:
            stamp = format_time(self.clock.now())
            connection.execute(
                "INSERT INTO workflow_steps (run_id, step, iteration, status, outcome, decided,"
                " started_at, updated_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (run_id, step, iteration) DO UPDATE SET status = excluded.status,"
                " outcome = excluded.outcome,"
                " decided = coalesce(excluded.decided, workflow_steps.decided),"
                " updated_at = excluded.updated_at, finished_at = excluded.finished_at",
                (
                    run_id,
                    step,
                    iteration,
                    status,
                    json.dumps(dict(outcome or {})),
                    json.dumps(dict(decided)) if decided is not None else None,
                    stamp,
                    stamp,
                    stamp,
                ),
            )
            data: dict[str, Any] = {"run": run_id, "step": step, "iteration": iteration}
            if decided is not None:
                data["decided"] = dict(decided)
            if outcome:
                data["outcome"] = {k: v for k, v in outcome.items() if k != "tests_output"}
            kind = "workflow.step_skipped" if status == "skipped" else f"workflow.step_{status}"
            self.audit.append(stamp, kind, self.actor, task_id, data)

    def force(self, run_id: int, step: str, iteration: int, because: str) -> None:
        """Mark ``step`` ready whatever its needs (the target of a goto)."""
        with self.db.transaction() as connection:
            stamp = format_time(self.clock.now())
            connection.execute(
                "INSERT INTO workflow_steps (run_id, step, iteration, status, forced, decided,"
                " started_at, updated_at) VALUES (?, ?, ?, 'pending', 1, ?, ?, ?)"
                " ON CONFLICT (run_id, step, iteration) DO UPDATE SET forced = 1",
                (run_id, step, iteration, json.dumps({"goto_from": because}), stamp, stamp),
            )
            self.audit.append(
                stamp,
                "workflow.goto",
                self.actor,
                None,
                {"run": run_id, "step": step, "iteration": iteration, "from": because},
            )

    def count_execution(self, run_id: int, step: str, iteration: int, delta: int = 1) -> None:
        """Count one run of the step's task; written before the run, so a run cut short by a
        crash is counted too (``delta=-1`` takes back a run refused before it started)."""
        with self.db.transaction() as connection:
            connection.execute(
                "UPDATE workflow_steps SET executions = max(executions + ?, 0), updated_at = ?"
                " WHERE run_id = ? AND step = ? AND iteration = ?",
                (delta, format_time(self.clock.now()), run_id, step, iteration),
            )

    def count_retry(self, run_id: int, step: str, iteration: int, reason: str) -> None:
        with self.db.transaction() as connection:
            stamp = format_time(self.clock.now())
            row = connection.execute(
                "UPDATE workflow_steps SET retries = retries + 1, updated_at = ?"
                " WHERE run_id = ? AND step = ? AND iteration = ? RETURNING retries, task_id",
                (stamp, run_id, step, iteration),
            ).fetchone()
            self.audit.append(
                stamp,
                "workflow.step_retried",
                self.actor,
                row["task_id"] if row else None,
                {
                    "run": run_id,
                    "step": step,
                    "iteration": iteration,
                    "reason": reason,
                    "retry": row["retries"] if row else None,
                },
            )


def _run(row: sqlite3.Row) -> Run:
    return Run(
        id=row["id"],
        workflow=row["workflow"],
        definition=row["definition"],
        hash=row["hash"],
        inputs=json.loads(row["inputs"]),
        status=row["status"],
        reason=row["reason"],
        created_by=row["created_by"],
        created_at=parse_time(row["created_at"]),
        updated_at=parse_time(row["updated_at"]),
        finished_at=parse_time(row["finished_at"]) if row["finished_at"] else None,
    )


def _record(row: sqlite3.Row) -> StepRecord:
    live = None
    if row["status"] == "started":
        awaiting = row["task_status"] == "blocked" and row["approval"] == "pending"
        live = "waiting" if awaiting else "running"
    state = StepState(
        step=row["step"],
        iteration=row["iteration"],
        status=row["status"],
        task_id=row["task_id"],
        forced=bool(row["forced"]),
        retries=row["retries"],
        executions=row["executions"],
        rounds=row["rounds"],
        live=live,
        outcome=json.loads(row["outcome"]),
    )
    return StepRecord(
        state=state,
        decided=json.loads(row["decided"]) if row["decided"] else None,
        task_status=row["task_status"],
        started_at=parse_time(row["started_at"]),
        finished_at=parse_time(row["finished_at"]) if row["finished_at"] else None,
    )
