"""Task writes that came with issue 15: editing a task before it is claimed, comments, and
creating many tasks with their dependencies in one transaction (``task import``).

Functions over a :class:`~aictl.store.tasks.TaskStore` rather than more methods on it: they
use its transaction, audit log and block propagation, and keep that module to the lease
lifecycle. Each function is one ``BEGIN IMMEDIATE`` transaction with its audit rows in it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, NamedTuple

from aictl.domain.dag import cycle_closed_by
from aictl.domain.tasks import LEASED, Status, Task, format_time, parse_time
from aictl.errors import (
    AictlError,
    DependencyCycle,
    IllegalTransition,
    InvalidInput,
    PolicyDenied,
    TaskHeld,
)
from aictl.store.decisions import Ruling
from aictl.store.tasks import _ANCESTOR_EDGES, NewTask, TaskStore

EDITABLE = (Status.QUEUED, Status.BLOCKED)
"""Statuses in which a task's definition may change: nobody has claimed it yet."""


@dataclass(frozen=True)
class Edit:
    """The fields to change (None: unchanged). ``labels`` is the whole new mapping."""

    title: str | None = None
    description: str | None = None
    priority: int | None = None
    paths: list[str] | None = None
    labels: dict[str, str] | None = None
    add_dependencies: list[int] = field(default_factory=list)
    remove_dependencies: list[int] = field(default_factory=list)

    def columns(self) -> dict[str, Any]:
        """The changed columns, as the audit row and the update carry them."""
        values = {
            "title": self.title,
            "description": self.description,
            "priority": self.priority,
            "paths": self.paths,
            "labels": self.labels,
        }
        return {name: value for name, value in values.items() if value is not None}


class Comment(NamedTuple):
    id: int
    task_id: int
    author: str
    body: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task_id": self.task_id,
            "author": self.author,
            "body": self.body,
            "created_at": format_time(self.created_at),
        }


class BatchTask(NamedTuple):
    """One task of a batch: ``after`` are the indexes of earlier tasks of the batch it depends
    on; ``ruling`` the policy's decision on creating it."""

    spec: NewTask
    after: Sequence[int]
    ruling: Ruling | None = None
    where: str = ""


def editable(task: Task) -> None:
    """Raise unless ``task`` may still be edited: ``TaskHeld`` (exit 4) while a lease holds
    it, ``IllegalTransition`` (exit 2) once it finished."""
    if task.status in LEASED:
        raise TaskHeld(
            f"cannot edit task {task.id}: it is {task.status} by {task.lease_holder}",
            hint="edit a task before it is claimed; `aictl task release` gives it back",
        )
    if task.status not in EDITABLE:
        raise IllegalTransition(
            f"cannot edit task {task.id}: it is {task.status}",
            hint="only queued or blocked tasks can be edited; `aictl task comment` adds a note",
        )


def edit(
    store: TaskStore, task_id: int, change: Edit, decide: Callable[[Task], Ruling] | None = None
) -> Task:
    """Apply ``change`` to a task not yet claimed, in one transaction with a ``task.edited``
    audit row naming every changed field with its new value (and the whole new dependency
    list when it changed).

    ``decide`` judges the task as it would be after the edit (the policy's ``create`` action:
    an edit must not make a task that could not have been created). A denial is recorded and
    raised (``PolicyDenied``) with the task unchanged; ``require_approval`` applies the edit
    and sends the task (back) to await a person's approval. A dependency that would close a
    cycle raises ``DependencyCycle`` naming it; nothing is written then.
    """
    refusal: AictlError | None = None
    with store.db.transaction() as connection:
        task = store.get(task_id)
        editable(task)
        deps = _new_dependencies(store, connection, task, change)
        draft = replace(task, **change.columns(), depends_on=deps)
        ruling = decide(draft) if decide is not None else None
        now = store.clock.now()
        stamp = format_time(now)
        if ruling is not None:
            store.decisions.enforce(ruling, at=now, task_id=task_id)
            if ruling.effect == "deny":
                refusal = PolicyDenied(
                    f"policy denies task {task_id} as edited: {ruling.reason}",
                    hint="the edit was not applied",
                )
        if refusal is None:
            _apply(store, connection, task, change, deps, stamp)
            if ruling is not None and ruling.effect == "require_approval":
                store._await_approval(connection, store.get(task_id), ruling.reason, stamp)
            return store.get(task_id)
    raise refusal


def _new_dependencies(
    store: TaskStore, connection: sqlite3.Connection, task: Task, change: Edit
) -> list[int]:
    """The dependency list after the change; checks every id and refuses a cycle."""
    current = set(task.depends_on)
    missing = [dep for dep in change.remove_dependencies if dep not in current]
    if missing:
        raise InvalidInput(f"task {task.id} does not depend on task {missing[0]}")
    store._statuses(connection, change.add_dependencies)
    for dep in change.add_dependencies:
        cycle = cycle_closed_by(
            connection.execute(_ANCESTOR_EDGES, (dep,)).fetchall(), task.id, dep
        )
        if cycle:
            raise DependencyCycle(cycle)
    return sorted((current | set(change.add_dependencies)) - set(change.remove_dependencies))


def _apply(
    store: TaskStore,
    connection: sqlite3.Connection,
    task: Task,
    change: Edit,
    deps: list[int],
    stamp: str,
) -> None:
    columns = change.columns()
    stored = {
        name: json.dumps(value) if name in ("paths", "labels") else value
        for name, value in columns.items()
    }
    assignments = "".join(f"{name} = ?, " for name in stored)
    connection.execute(
        f"UPDATE tasks SET {assignments}updated_at = ? WHERE id = ?",
        (*stored.values(), stamp, task.id),
    )
    data = dict(columns)
    if deps != task.depends_on:
        connection.execute("DELETE FROM task_deps WHERE task_id = ?", (task.id,))
        connection.executemany(
            "INSERT INTO task_deps (task_id, depends_on) VALUES (?, ?)",
            [(task.id, dep) for dep in deps],
        )
        connection.execute(
            "UPDATE tasks SET unmet_deps = (SELECT count(*) FROM task_deps d"
            " JOIN tasks t ON t.id = d.depends_on WHERE d.task_id = ? AND t.status != 'done')"
            " WHERE id = ?",
            (task.id, task.id),
        )
        data["depends_on"] = deps
    store.audit.append(stamp, "task.edited", store.actor, task.id, data)
    store._refresh_block(connection, task.id, stamp)
    store._propagate(connection, task.id, stamp)


def add_comment(store: TaskStore, task_id: int, author: str, body: str) -> Comment:
    """Append a comment (any status: a comment changes no state) with its ``task.commented``
    audit row, which carries the text, in the same transaction."""
    with store.db.transaction() as connection:
        store.get(task_id)
        stamp = format_time(store.clock.now())
        row = connection.execute(
            "INSERT INTO task_comments (task_id, author, body, created_at) VALUES (?, ?, ?, ?)"
            " RETURNING id",
            (task_id, author, body, stamp),
        ).fetchone()
        store.audit.append(
            stamp, "task.commented", author, task_id, {"comment": row[0], "body": body}
        )
        return Comment(row[0], task_id, author, body, parse_time(stamp))


def comments(store: TaskStore, task_id: int) -> list[Comment]:
    """A task's comments, oldest first."""
    rows = store.db.connection.execute(
        "SELECT id, task_id, author, body, created_at FROM task_comments WHERE task_id = ?"
        " ORDER BY id",
        (task_id,),
    ).fetchall()
    return [Comment(r[0], r[1], r[2], r[3], parse_time(r[4])) for r in rows]


def create_batch(store: TaskStore, batch: Sequence[BatchTask]) -> list[Task]:
    """Create every task of ``batch`` in one transaction, all or none: each may depend on
    existing tasks (``spec.depends_on``) and on earlier tasks of the batch (``after``).

    A policy denial of any task is recorded, raised (``PolicyDenied`` naming the task's
    ``where``) and nothing is created; ``require_approval`` creates that task blocked until a
    person approves it, as ``task create`` does.
    """
    refusal = denial(batch, "nothing was imported")
    with store.db.transaction() as connection:
        now = store.clock.now()
        if refusal is None:
            return _insert_batch(store, connection, batch, now)
        for item in batch:
            if item.ruling is not None and item.ruling.effect == "deny":
                store.decisions.enforce(item.ruling, at=now, task_id=None)
    raise refusal


def denial(batch: Sequence[BatchTask], hint: str) -> PolicyDenied | None:
    """The error naming the first task of ``batch`` the policy denies (and how many more),
    or None when it denies none."""
    denied = [item for item in batch if item.ruling and item.ruling.effect == "deny"]
    if not denied:
        return None
    first, more = denied[0], len(denied) - 1
    reason = first.ruling.reason if first.ruling else ""
    return PolicyDenied(
        f"policy denies creating {first.where or repr(first.spec.title)}: {reason}"
        + (f" ({more} more denied)" if more else ""),
        hint=hint,
    )


def _insert_batch(
    store: TaskStore, connection: sqlite3.Connection, batch: Sequence[BatchTask], now: datetime
) -> list[Task]:
    stamp = format_time(now)
    created: list[Task] = []
    for item in batch:
        deps = [*item.spec.depends_on, *(created[index].id for index in item.after)]
        task = store._insert(connection, replace(item.spec, depends_on=deps), stamp)
        if item.ruling is not None:
            store.decisions.enforce(item.ruling, at=now, task_id=task.id)
            if item.ruling.effect == "require_approval":
                store._await_approval(connection, task, item.ruling.reason, stamp)
        created.append(task)
    return [store.get(task.id) for task in created]
