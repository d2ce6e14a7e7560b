"""Databases to measure against, built only through aictl's public store API (no raw SQL).

Setup opens its connection with ``synchronous=OFF``: setup is not what is measured, and the
measured connection opens the same file again with the durability setting under test (the
setting is per connection; the file format and WAL are the same).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from aictl.clock import SystemClock
from aictl.store.db import Database
from aictl.store.tasks import NewTask, TaskStore

SETUP_TTL = timedelta(hours=6)
BATCH = 5_000
"""Tasks per ``create_many`` transaction, and leases finished per outer transaction."""


def open_store(path: Path, synchronous: str = "FULL") -> TaskStore:
    """A store on its own connection, with the wall clock (as a worker would have)."""
    return TaskStore(Database(path, synchronous=synchronous), SystemClock())


def create_in_batches(store: TaskStore, specs: Sequence[NewTask]) -> None:
    """``create_many`` in transactions of ``BATCH`` tasks (one huge transaction would hold
    the whole batch's Task objects in memory at once)."""
    for start in range(0, len(specs), BATCH):
        store.create_many(specs[start : start + BATCH])


def finish_ready(store: TaskStore, count: int) -> int:
    """Claim, start and complete ``count`` ready tasks through the store; returns how many.

    Each store call is its own transaction; ``Database.transaction`` nests them as savepoints
    inside an outer one per ``BATCH`` tasks, so setup pays one commit per batch instead of
    three per task. The state changes are exactly those a worker makes.
    """
    finished = 0
    while finished < count:
        with store.db.transaction():
            for _ in range(min(BATCH, count - finished)):
                claim = store.claim("bench-setup", SETUP_TTL)
                store.start(claim.token)
                store.complete(claim.token)
                finished += 1
    return finished


def flat_tasks(count: int, *, with_paths_every: int = 2, prefix: str = "pkg") -> list[NewTask]:
    """``count`` independent tasks; every ``with_paths_every``-th has a disjoint lock
    (``pkg{i}/**``) so that the claims do not serialise on path locks."""
    return [
        NewTask(
            title=f"bench task {i}",
            paths=[f"{prefix}{i}/**"] if i % with_paths_every == 0 else [],
        )
        for i in range(count)
    ]


@dataclass(frozen=True)
class HistoryShape:
    """A database that has been in use for a while.

    The first ``done_fraction`` of the tasks are done (history); the rest are queued. Each task
    depends on 0-3 earlier tasks drawn uniformly from all earlier ones, so a queued task is
    ready when its dependencies fell in the history, and waits otherwise. Every task locks one
    or two globs of its own (``area{i % 40}/mod{i}/**``, sometimes ``docs/mod{i}.md``).
    """

    size: int
    done_fraction: float = 0.2
    seed: int = 1

    @property
    def done(self) -> int:
        return int(self.size * self.done_fraction)


def history_tasks(
    shape: HistoryShape, first_id: int, count: int, rng: random.Random
) -> Iterator[NewTask]:
    """Tasks ``first_id`` .. ``first_id + count - 1`` of ``shape`` (ids start at 1 in a fresh
    database, so task ``i`` may depend on ids ``1 .. i - 1``)."""
    for task_id in range(first_id, first_id + count):
        dependencies = rng.sample(range(1, task_id), min(task_id - 1, rng.randint(0, 3)))
        paths = [f"area{task_id % 40}/mod{task_id}/**"]
        if task_id % 3 == 0:
            paths.append(f"docs/mod{task_id}.md")
        yield NewTask(
            title=f"history task {task_id}",
            paths=paths,
            depends_on=dependencies,
            labels={"area": f"area{task_id % 40}"},
        )


def build_history(path: Path, shape: HistoryShape) -> dict[str, int]:
    """Fill the (new or freshly initialised) database at ``path`` with ``shape``.

    The history is created first and finished through claim/start/complete; the queued tasks
    are created after it, so their unmet-dependency counters are right from the start and no
    completion has to walk them. Returns the task counts by status.
    """
    rng = random.Random(shape.seed)
    store = open_store(path, synchronous="OFF")
    try:
        if store.count_by_status():
            raise RuntimeError(f"{path} is not empty; build_history needs a fresh database")
        create_in_batches(store, list(history_tasks(shape, 1, shape.done, rng)))
        finish_ready(store, shape.done)
        rest = shape.size - shape.done
        create_in_batches(store, list(history_tasks(shape, shape.done + 1, rest, rng)))
        return store.count_by_status()
    finally:
        store.db.close()
