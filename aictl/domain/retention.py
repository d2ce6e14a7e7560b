"""Which run folders (``.ai/runs/<task>/``) a retention rule lets ``aictl prune`` remove.

Pure: the folders found, the tasks' statuses and finish times, the rule and the time are
passed in; the answer is the task ids whose folders may go, each with its reason, and those
kept with theirs.

What evidence and audit need is never removed:

- the folder of a task that is not **done** or **cancelled** stays, whatever its age: a queued,
  claimed, running or blocked task is still being worked on, and a **failed** one may be
  retried or integrated (``aictl task integrate`` reads its last run);
- a folder whose task is not in the database (written by another database, or before a
  restore) stays: nothing says it is finished;
- the audit log, the decision records and the tasks' own evidence column live in the database
  and are never touched; ``audit verify`` needs nothing from ``.ai/runs``.

The rule is a count (keep the folders of the N tasks finished last) or a duration (remove the
folders of tasks finished longer ago than that).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

FINISHED = ("done", "cancelled")
"""Task statuses whose run folders a retention rule may remove."""


@dataclass(frozen=True)
class TaskState:
    status: str
    finished_at: datetime | None


@dataclass(frozen=True)
class Verdict:
    task_id: int
    remove: bool
    reason: str


def judge(
    folders: Iterable[int],
    tasks: Mapping[int, TaskState],
    rule: int | timedelta,
    now: datetime,
) -> list[Verdict]:
    """A verdict for every task folder, in task id order."""
    verdicts: dict[int, Verdict] = {}
    finished: list[tuple[datetime, int]] = []
    for task_id in sorted(set(folders)):
        state = tasks.get(task_id)
        if state is None:
            verdicts[task_id] = Verdict(task_id, False, "no such task in the database")
        elif state.status not in FINISHED:
            verdicts[task_id] = Verdict(task_id, False, f"task is {state.status}")
        else:
            finished.append((state.finished_at or datetime.min.replace(tzinfo=now.tzinfo), task_id))
    finished.sort(reverse=True)  # most recently finished first
    for rank, (when, task_id) in enumerate(finished):
        status = tasks[task_id].status
        if isinstance(rule, int):
            remove = rank >= rule
            reason = (
                f"{status}; among the {rule} finished last"
                if not remove
                else (f"{status}; older than the {rule} finished last")
            )
        else:
            remove = now - when > rule
            reason = f"{status} {_age(now - when)} ago"
        verdicts[task_id] = Verdict(task_id, remove, reason)
    return [verdicts[task_id] for task_id in sorted(verdicts)]


def _age(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:.1f}d" if hours >= 48 else f"{hours:.1f}h"
