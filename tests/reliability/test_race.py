"""Exclusive claims under a real race: many OS processes drain one database at once (a SQLite
file, and a PostgreSQL database: see conftest's ``state_db``).

This is the test of the claim transaction itself (``BEGIN IMMEDIATE``, the ready index, the
path-lock check and the lock rows written in one step). An in-process test cannot prove it:
the bugs it catches (a deferred transaction upgraded too late, a lock check read outside the
write lock, a clock read before the lock) only show when separate processes interleave.
"""

from __future__ import annotations

import random
import subprocess
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import combinations
from pathlib import Path

import pytest

from aictl.clock import ManualClock
from aictl.domain.globs import globs_intersect
from aictl.domain.tasks import Status, Task
from aictl.store.db import connect
from aictl.store.tasks import NewTask, TaskStore
from tests.reliability.lock_order import clashes_in_chain
from tests.reliability.workers import read_log, wait_for

WORKERS = 8
TASKS = 500
SEED = 20260101
# A small pool so that intersections are frequent: src/a/** meets src/*/x.py (src/a/x.py) and
# src/b/y.py meets nothing else in src; docs/*.md meets docs/guide.md; tests/** meets only
# itself. A third of the tasks lock nothing, so there is always parallel work.
GLOB_POOL = ("src/a/**", "src/*/x.py", "src/b/y.py", "docs/*.md", "docs/guide.md", "tests/**")


def dag_of_tasks(rng: random.Random) -> list[NewTask]:
    """TASKS tasks; each depends on up to three random earlier ones and locks up to two globs."""
    specs = []
    for index in range(TASKS):
        dep_count = min(index, rng.choice((0, 0, 1, 1, 2, 3)))
        deps = rng.sample(range(1, index + 1), dep_count)  # ids are 1-based, in creation order
        paths = [] if rng.random() < 0.35 else rng.sample(GLOB_POOL, rng.choice((1, 1, 2)))
        specs.append(NewTask(title=f"task {index + 1}", paths=paths, depends_on=deps))
    return specs


def overlaps(a: Task, b: Task) -> bool:
    """Whether the leases [claimed_at, finished_at] of two tasks overlapped in time.

    Touching ends do not count: the store stamps a claim with a time read after it took the
    write lock, so a claim right after a completion may carry the same microsecond.
    """
    assert a.claimed_at and a.finished_at and b.claimed_at and b.finished_at
    return a.claimed_at < b.finished_at and b.claimed_at < a.finished_at


def conflicting(a: Task, b: Task) -> bool:
    return any(globs_intersect(x, y) for x in a.paths for y in b.paths)


@pytest.mark.slow
def test_racing_processes_claim_every_task_exactly_once_in_dag_and_lock_order(
    tmp_path: Path,
    state_db: Path | str,
    spawn: Callable[..., subprocess.Popen[bytes]],
    worker_stderr: Callable[[int], str],
) -> None:
    """Eight processes released together drain 500 tasks with dependencies and path locks.

    Proves, from the database and from the workers' own logs:

    * every task was completed exactly once, by the worker the database names (result), on its
      first and only claim (attempts == 1, epoch 1);
    * no task was claimed before every one of its dependencies had finished;
    * no two tasks with intersecting globs were ever leased at overlapping times.

    It fails if two processes can claim the same task (double completion, attempts 2, a task in
    two logs), if the ready check or the lock check runs outside the claim's write lock (a
    dependent claimed before its dependency finished, two conflicting leases overlapping), or if
    a worker crashes with SQLITE_BUSY (a deferred transaction that could not upgrade).

    The workers keep the default ``synchronous=FULL``: on this machine the whole race takes a
    few seconds, so there is no reason to test a weaker setting than the one users run.
    """
    db = connect(state_db)
    created = TaskStore(db, ManualClock(datetime(2026, 1, 1, tzinfo=UTC))).create_many(
        dag_of_tasks(random.Random(SEED))
    )
    db.close()
    all_ids = {task.id for task in created}
    assert len(all_ids) == TASKS

    gate = tmp_path / "gate"
    logs = [tmp_path / f"worker-{n}.jsonl" for n in range(WORKERS)]
    ready = [tmp_path / f"ready-{n}" for n in range(WORKERS)]
    common = ["--db", str(state_db), "--gate", str(gate)]
    processes = [
        spawn(
            "race",
            *common,
            "--name",
            f"worker-{n}",
            "--log",
            str(logs[n]),
            "--ready",
            str(ready[n]),
        )
        for n in range(WORKERS)
    ]
    # Release them together: every worker has its connection open before the gate opens.
    wait_for(
        lambda: (
            all(path.exists() for path in ready) or any(p.poll() is not None for p in processes)
        ),
        timeout=120,
        what="workers ready",
    )
    dead = [worker_stderr(n) for n, p in enumerate(processes) if p.poll() is not None]
    assert dead == [], "workers died before the race started"
    gate.touch()
    for n, process in enumerate(processes):
        code = process.wait(timeout=180)
        assert code == 0, f"worker-{n} exited {code}: {worker_stderr(n)} {read_log(logs[n])[-2:]}"

    records = [record for path in logs for record in read_log(path)]
    completions = [record for record in records if record["event"] == "completed"]
    completed_by = {record["task"]: record["worker"] for record in completions}
    counts = Counter(record["task"] for record in completions)
    assert [task for task, count in counts.items() if count > 1] == []
    assert set(counts) == all_ids
    assert {record["epoch"] for record in completions} == {1}
    assert len(set(completed_by.values())) > 1, "one worker did everything: there was no race"

    db = connect(state_db)
    try:
        store = TaskStore(db, ManualClock())
        tasks = {task.id: task for task in store.list_tasks()}
        entries = store.audit.entries()
        locks_left = store.held_locks()
    finally:
        db.close()
    assert locks_left == []
    for task in tasks.values():
        assert (task.status, task.attempts, task.lease_epoch) == (Status.DONE, 1, 1), task
        assert task.result == completed_by[task.id], "the database and the logs disagree"

    early = [
        (task.id, dep)
        for task in tasks.values()
        for dep in task.depends_on
        if task.claimed_at < tasks[dep].finished_at  # type: ignore[operator]
    ]
    assert early == [], "tasks claimed before their dependency finished (task, dependency)"

    concurrent = [(a, b) for a, b in combinations(tasks.values(), 2) if overlaps(a, b)]
    clashes = [(a.id, b.id) for a, b in concurrent if conflicting(a, b)]
    assert clashes == [], "tasks with intersecting globs were leased at the same time"
    # The checks above are only worth something if leases really overlapped and if the data
    # really had conflicting pairs that the store had to keep apart.
    assert len(concurrent) > 0
    assert any(conflicting(a, b) for a, b in combinations(tasks.values(), 2))
    # The same from the chain's order, which no clock can blur (PostgreSQL's server-side
    # claim reads the clock before it waits for the claims' lock).
    in_chain, chain_clashes = clashes_in_chain(entries)
    assert chain_clashes == [], "leases of intersecting globs open at once in the chain"
    assert in_chain > 0
