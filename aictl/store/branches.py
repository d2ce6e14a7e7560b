"""The worktrees and branches of task attempts (``task_branches``): one row per attempt run in
its own worktree, updated at each step of its integration.

The row is written before git is asked to do anything it describes (the worktree before
``git worktree add``, the merge commit before ``git update-ref``), so that every worktree and
branch aictl made is known even when the process was killed between two steps: ``aictl
worktree list`` shows it, ``prune`` judges it, ``aictl task integrate`` finishes it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from typing import Any

from aictl.clock import Clock
from aictl.domain.tasks import format_time
from aictl.store.audit import AuditLog
from aictl.store.db import Database

_COLUMNS = (
    "task_id, attempt, branch, worktree, target, base_commit, task_commit, target_before,"
    " merge_commit, mode, status, reason, created_at, updated_at"
)
#: A new row for the same attempt replaces the old one whole (an upsert both engines accept).
_REPLACE = ", ".join(
    f"{name} = excluded.{name}" for name in _COLUMNS.replace(" ", "").split(",")[2:]
)
#: The fields a step may change.
_MUTABLE = frozenset(
    {"task_commit", "target_before", "merge_commit", "status", "reason", "target", "branch"}
)


@dataclass(frozen=True)
class BranchRecord:
    """One attempt's worktree (``worktree``, relative to the repository root), its branch and
    how far its integration got (see the migration for the statuses)."""

    task_id: int
    attempt: int
    branch: str
    worktree: str
    target: str | None
    base_commit: str
    task_commit: str | None
    target_before: str | None
    merge_commit: str | None
    mode: str
    status: str
    reason: str | None
    created_at: str
    updated_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class BranchStore:
    def __init__(self, db: Database, clock: Clock, *, actor: str = "aictl") -> None:
        self.db = db
        self.clock = clock
        self.actor = actor

    def add(
        self,
        *,
        task_id: int,
        attempt: int,
        branch: str,
        worktree: str,
        target: str | None,
        base_commit: str,
        mode: str,
    ) -> BranchRecord:
        """Record a new attempt's worktree (status ``running``); replaces a row of the same
        attempt (a run that gave its attempt number back and ran again)."""
        stamp = format_time(self.clock.now())
        with self.db.transaction() as connection:
            row = connection.execute(
                f"INSERT INTO task_branches ({_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, NULL, ?, 'running', NULL, ?, ?)"
                f" ON CONFLICT (task_id, attempt) DO UPDATE SET {_REPLACE}"
                f" RETURNING {_COLUMNS}",
                (task_id, attempt, branch, worktree, target, base_commit, mode, stamp, stamp),
            ).fetchone()
            AuditLog(connection).append(
                stamp,
                "worktree.created",
                self.actor,
                task_id,
                {"attempt": attempt, "branch": branch, "worktree": worktree, "base": base_commit},
            )
        return _record(row)

    def update(self, task_id: int, attempt: int, **fields: Any) -> BranchRecord:
        """Change the named fields of one attempt's row in one transaction; a change of
        ``status`` is written to the audit log with the row's commits and reason."""
        unknown = set(fields) - _MUTABLE
        if unknown:
            raise ValueError(f"not updatable: {', '.join(sorted(unknown))}")
        stamp = format_time(self.clock.now())
        assignments = ", ".join(f"{name} = ?" for name in sorted(fields))
        with self.db.transaction() as connection:
            row = connection.execute(
                f"UPDATE task_branches SET {assignments}, updated_at = ?"
                f" WHERE task_id = ? AND attempt = ? RETURNING {_COLUMNS}",
                (*(fields[name] for name in sorted(fields)), stamp, task_id, attempt),
            ).fetchone()
            if row is None:
                raise LookupError(f"no worktree recorded for task {task_id} attempt {attempt}")
            record = _record(row)
            if "status" in fields:
                AuditLog(connection).append(
                    stamp,
                    f"worktree.{record.status}",
                    self.actor,
                    task_id,
                    {
                        "attempt": attempt,
                        "branch": record.branch,
                        "target": record.target,
                        "task_commit": record.task_commit,
                        "merge_commit": record.merge_commit,
                        "reason": record.reason,
                    },
                )
        return record

    def latest(self, task_id: int) -> BranchRecord | None:
        """The task's most recent attempt run in a worktree, or None."""
        row = self.db.connection.execute(
            f"SELECT {_COLUMNS} FROM task_branches WHERE task_id = ? ORDER BY attempt DESC LIMIT 1",
            (task_id,),
        ).fetchone()
        return None if row is None else _record(row)

    def list_all(self) -> list[BranchRecord]:
        """Every recorded attempt, by task then attempt."""
        rows = self.db.connection.execute(
            f"SELECT {_COLUMNS} FROM task_branches ORDER BY task_id, attempt"
        ).fetchall()
        return [_record(row) for row in rows]


def _record(row: sqlite3.Row | tuple[Any, ...]) -> BranchRecord:
    return BranchRecord(*tuple(row))
