"""1. Claims per second: claim + start + complete, end to end, N processes on one database file.

What is measured: every worker process opens its own connection, waits at a start barrier,
then loops claim -> start -> complete (three write transactions per task) until the queue is
empty or the time limit passes. The figure is tasks completed by all workers over the wall
time from the first worker leaving the barrier to the last one finishing.

The baseline is a bare SQLite loop run in the same session, over the same number of
processes, with the same durability (WAL, the same ``synchronous``, ``BEGIN IMMEDIATE``, the
same busy timeout): plain ``sqlite3`` on a minimal table doing the same three transactions per
task. The ratio aictl / bare is therefore the price of everything aictl adds (the lease
sweep, the path-lock check, the fenced writes, the Task objects, dependency bookkeeping).

Why a ratio: SQLite write throughput is bounded by one writer at a time and by fsync; the
absolute rate says more about the disk than about aictl.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from aictl.errors import NothingReady
from bench.common import (
    BARRIER_TIMEOUT_S,
    Goal,
    Measurement,
    Row,
    Settings,
    loop_worker,
    median,
    run_workers,
    scratch_dir,
)
from bench.fixtures import create_in_batches, flat_tasks, open_store

GOAL = Goal("ratio >= 0.50 at 8 processes", "ratio", ">=", 0.5)
BUSY_TIMEOUT_S = 60.0  # as aictl.store.db.BUSY_TIMEOUT_MS

_BARE_SCHEMA = (
    "CREATE TABLE t (id INTEGER PRIMARY KEY, priority INTEGER NOT NULL DEFAULT 0,"
    " status TEXT NOT NULL, holder TEXT, epoch INTEGER NOT NULL DEFAULT 0, expires_at REAL)",
    "CREATE INDEX t_ready ON t (priority DESC, id) WHERE status = 'queued'",
)
_BARE_CLAIM = """
UPDATE t SET status = 'claimed', holder = ?, epoch = epoch + 1, expires_at = ?
WHERE id = (SELECT id FROM t WHERE status = 'queued' ORDER BY priority DESC, id LIMIT 1)
RETURNING id, epoch
"""
_BARE_START = (
    "UPDATE t SET status = 'running', expires_at = ?"
    " WHERE id = ? AND epoch = ? AND status = 'claimed' AND expires_at > ?"
)
_BARE_COMPLETE = (
    "UPDATE t SET status = 'done', expires_at = NULL"
    " WHERE id = ? AND epoch = ? AND status = 'running' AND expires_at > ?"
)


@dataclass(frozen=True)
class Plan:
    """The sizes of one run of this part."""

    process_counts: tuple[int, ...]
    tasks: int
    repeats: int
    time_limit_s: float
    normal_at: int = 8


FULL_PLAN = Plan(process_counts=(1, 4, 8, 16), tasks=4_000, repeats=4, time_limit_s=4.0)
QUICK_PLAN = Plan(process_counts=(1, 8), tasks=400, repeats=2, time_limit_s=1.5)


# --------------------------------------------------------------------------- the two loops


def _aictl_loop(path: Path, synchronous: str, holder: str) -> Callable[[], bool]:
    """One task through the library: ``TaskStore.claim``, ``start``, ``complete``."""
    store = open_store(path, synchronous)
    ttl = timedelta(minutes=10)

    def one_task() -> bool:
        try:
            claim = store.claim(holder, ttl)
        except NothingReady:
            return False
        store.start(claim.token)
        store.complete(claim.token)
        return True

    return one_task


def _bare_connection(path: Path, synchronous: str) -> sqlite3.Connection:
    """Plain sqlite3 with aictl's connection settings (autocommit, WAL, busy timeout)."""
    connection = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_S)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={synchronous}")
    connection.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    return connection


def _bare_loop(path: Path, synchronous: str, holder: str) -> Callable[[], bool]:
    """One task through plain sqlite3: the same three fenced transactions, nothing else."""
    connection = _bare_connection(path, synchronous)
    execute = connection.execute
    ttl_s = 600.0

    def one_task() -> bool:
        execute("BEGIN IMMEDIATE")
        row = execute(_BARE_CLAIM, (holder, time.time() + ttl_s)).fetchone()
        execute("COMMIT")
        if row is None:
            return False
        task_id, epoch = row
        for statement, first in ((_BARE_START, (time.time() + ttl_s,)), (_BARE_COMPLETE, ())):
            execute("BEGIN IMMEDIATE")
            changed = execute(statement, (*first, task_id, epoch, time.time())).rowcount
            execute("COMMIT")
            if changed != 1:
                raise RuntimeError(f"bare loop lost the lease of task {task_id}")
        return True

    return one_task


LOOPS = {"aictl": _aictl_loop, "bare": _bare_loop}


def _prepare(kind: str, path: Path, tasks: int) -> None:
    """A fresh database with ``tasks`` queued tasks for loop ``kind``."""
    if kind == "aictl":
        store = open_store(path, synchronous="OFF")
        try:
            create_in_batches(store, flat_tasks(tasks))
        finally:
            store.db.close()
        return
    connection = _bare_connection(path, "OFF")
    try:
        for statement in _BARE_SCHEMA:
            connection.execute(statement)
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(
            "INSERT INTO t (status) VALUES ('queued')", [() for _ in range(tasks)]
        )
        connection.execute("COMMIT")
    finally:
        connection.close()


# --------------------------------------------------------------------------- processes


def run_once(
    kind: str, processes: int, synchronous: str, plan: Plan, folder: Path
) -> dict[str, Any]:
    """One timed run on a fresh database; returns the rate and what it was computed from."""
    path = folder / f"{kind}-{processes}-{synchronous}.db"
    _prepare(kind, path, plan.tasks)
    try:
        completed, wall = run_workers(
            loop_worker,
            (LOOPS[kind], path, synchronous),
            processes,
            plan.time_limit_s,
            f"{kind} x{processes}",
            BARRIER_TIMEOUT_S,
        )
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return {"completed": completed, "wall_s": wall, "rate": completed / wall}


def _compare(
    processes: int, synchronous: str, plan: Plan, folder: Path, *, goal: Goal | None
) -> Row:
    """aictl beside bare SQLite at one process count; the median rate of each.

    The runs alternate in ABBA order (aictl, bare, bare, aictl, ...) so that a drift in the
    machine's load (other jobs' disk writes slow every fsync) falls on both loops alike.
    """
    runs: dict[str, list[dict[str, Any]]] = {"aictl": [], "bare": []}
    for repeat in range(plan.repeats):
        order = ("aictl", "bare") if repeat % 2 == 0 else ("bare", "aictl")
        for kind in order:
            runs[kind].append(run_once(kind, processes, synchronous, plan, folder))
    rates = {kind: median([run["rate"] for run in done]) for kind, done in runs.items()}
    noun = "process" if processes == 1 else "processes"
    return Row(
        label=f"aictl, {processes} {noun}, {synchronous}",
        value=rates["aictl"],
        unit="tasks/s",
        baseline_label="bare sqlite",
        baseline=rates["bare"],
        goal=goal,
        detail={
            "processes": processes,
            "synchronous": synchronous,
            "runs": {
                kind: [{k: round(v, 4) for k, v in run.items()} for run in done]
                for kind, done in runs.items()
            },
        },
    )


def run(settings: Settings) -> Measurement:
    plan = QUICK_PLAN if settings.quick else FULL_PLAN
    measurement = Measurement(
        "claims",
        "1. Claims per second (claim + start + complete), aictl vs bare SQLite",
        parameters={
            "process_counts": list(plan.process_counts),
            "tasks_per_run": plan.tasks,
            "repeats": plan.repeats,
            "time_limit_s": plan.time_limit_s,
            "start_method": "spawn",
        },
    )
    with scratch_dir("claims") as folder:
        for processes in plan.process_counts:
            goal = GOAL if processes == plan.normal_at else None
            measurement.rows.append(_compare(processes, "FULL", plan, folder, goal=goal))
        measurement.rows.append(_compare(plan.normal_at, "NORMAL", plan, folder, goal=None))
    measurement.notes += [
        f"each figure is the median of {plan.repeats} run(s), aictl and bare in ABBA order; a "
        f"run stops when its {plan.tasks:,} queued tasks are done or after {plan.time_limit_s:g} s",
        "with FULL every commit waits for an fsync: when other jobs load the disk, both loops "
        "become fsync-bound and their rates and ratio move together; NORMAL shows the CPU cost",
        "half of the tasks lock a disjoint glob (pkg{i}/**); none has dependencies",
        "the goal is judged on the FULL line at 8 processes; NORMAL is shown for reference",
    ]
    return measurement
