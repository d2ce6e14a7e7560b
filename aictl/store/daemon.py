"""Read-only queries for the daemon's tick, cheap at any queue size (SQL lives in the store).

The tick runs twice a second: it must not build a ``Task`` for every row of a 100,000-task
queue. These read only what changed, the head of the ready index, and counts.
"""

from __future__ import annotations

from datetime import timedelta
from typing import NamedTuple

from aictl.domain.tasks import format_time, parse_time
from aictl.store.db import Database
from aictl.store.tasks import READY_CANDIDATES


class TaskState(NamedTuple):
    id: int
    status: str
    approval: str | None
    updated_at: str


def decisions_by_effect(db: Database) -> dict[str, int]:
    """How many decision records the database holds, by effect."""
    rows = db.connection.execute("SELECT effect, count(*) FROM decisions GROUP BY effect")
    return {row[0]: row[1] for row in rows}


CHANGE_MARGIN = timedelta(seconds=60)


def changed_since(db: Database, since: str | None) -> list[TaskState]:
    """Tasks updated at or after ``since`` less ``CHANGE_MARGIN`` (every task when None), in
    id order. The margin: on PostgreSQL a transaction's stamp is read before it commits, and
    concurrent ones (the lease holders' completes, other hosts' clocks) commit out of stamp
    order, so a change stamped before ``since`` can become visible after it; the caller
    compares each task's state with what it saw, so rows read again change nothing."""
    sql = "SELECT id, status, approval, updated_at FROM tasks"
    if since is None:
        rows = db.connection.execute(sql + " ORDER BY id")
    else:
        earliest = format_time(parse_time(since) - CHANGE_MARGIN)
        rows = db.connection.execute(sql + " WHERE updated_at >= ? ORDER BY id", (earliest,))
    return [TaskState(*row) for row in rows]


def ready_head(db: Database, now: str, limit: int) -> list[int]:
    """The first ``limit`` ready task ids in claim order (priority, then id), from the ready
    index: dependencies done and no retry backoff pending; locks are the caller's check."""
    cursor = db.connection.execute(READY_CANDIDATES, (now,))
    return [int(row[0]) for row in cursor.fetchmany(limit)]
