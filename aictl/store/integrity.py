"""Whether the state agrees with the audit chain: the tasks and the decision records.

This module reads the rows; :mod:`aictl.domain.audit_replay` decides. ``snapshot`` holds one
read transaction around a whole verification, so the chain, the tasks and the decisions are
read at the same commit (WAL readers see a fixed snapshot): a writer committing meanwhile
cannot make the state look ahead of its log.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from aictl.domain.audit_replay import (
    Difference,
    StoredDecision,
    compare_comments,
    compare_decisions,
    compare_tasks,
    evidence_digest,
    replay,
)
from aictl.store.decisions import COLUMNS as DECISION_COLUMNS
from aictl.store.decisions import decision_digest

_TASK_EVENTS = """
SELECT seq, kind, actor, task_id, data FROM audit_log
WHERE task_id IS NOT NULL AND kind LIKE 'task.%' ORDER BY seq
"""
_DECISION_EVENTS = """
SELECT seq, actor, task_id, data FROM audit_log WHERE kind = 'policy.decision' ORDER BY seq
"""
_COMMENT_EVENTS = """
SELECT seq, actor, task_id, data FROM audit_log WHERE kind = 'task.commented' ORDER BY seq
"""
_TASKS = """
SELECT id, status, lease_epoch, lease_holder, approval, result, evidence, title, priority, paths,
       max_attempts
FROM tasks
"""


@dataclass(frozen=True)
class StateCheck:
    """The first difference (None when the state agrees), how many there are, what was
    compared, and notes on what older rows could not vouch for."""

    difference: Difference | None
    differences: int
    tasks: int
    decisions: int
    notes: tuple[str, ...]


@contextmanager
def snapshot(connection: sqlite3.Connection) -> Iterator[None]:
    """One read transaction (a no-op inside a transaction already open)."""
    if connection.in_transaction:
        yield
        return
    connection.execute("BEGIN")
    try:
        yield
    finally:
        if connection.in_transaction:
            connection.execute("ROLLBACK")  # read only: nothing to keep


def check_state(connection: sqlite3.Connection) -> StateCheck:
    """Replay the chain's task events and compare every task row with what they imply, every
    decision record with the digest (or, for older rows, the fields) its audit row carries,
    and every task comment with its ``task.commented`` row."""
    implied = replay(
        (row[0], row[1], row[2], row[3], json.loads(row[4]))
        for row in connection.execute(_TASK_EVENTS)
    )
    actual = _tasks(connection)
    task_difference, task_count = compare_tasks(implied, actual)
    stored = _decisions(connection)
    decision_difference, decision_count, partial = compare_decisions(
        (
            (row[0], row[1], row[2], json.loads(row[3]))
            for row in connection.execute(_DECISION_EVENTS)
        ),
        stored,
    )
    notes = [
        f"{name} of {count} task(s) not compared: their audit rows predate that field"
        for name, count in sorted(implied.unknown.items())
    ]
    if partial:
        notes.append(
            f"{partial} decision record(s) predate decision digests: only their action, effect, "
            "rules, policy hash, subject and task were compared"
        )
    comments = {
        row[0]: (row[1], row[2], row[3])
        for row in connection.execute("SELECT id, task_id, author, body FROM task_comments")
    }
    comment_difference, comment_count = compare_comments(
        (
            (row[0], row[1], row[2], json.loads(row[3]))
            for row in connection.execute(_COMMENT_EVENTS)
        ),
        comments,
    )
    difference = _first(decision_difference, task_difference, comment_difference)
    return StateCheck(
        difference,
        task_count + decision_count + comment_count,
        len(actual),
        len(stored),
        tuple(notes),
    )


def _first(*found: Difference | None) -> Difference | None:
    """The difference at the earliest audit row; one with no row (a record or task the log
    never mentions) after those."""
    present = [item for item in found if item is not None]
    if not present:
        return None
    return min(present, key=lambda item: (item.seq is None, item.seq or 0))


def _tasks(connection: sqlite3.Connection) -> dict[int, dict[str, Any]]:
    deps: dict[int, list[int]] = {}
    for task_id, depends_on in connection.execute("SELECT task_id, depends_on FROM task_deps"):
        deps.setdefault(task_id, []).append(depends_on)
    tasks: dict[int, dict[str, Any]] = {}
    for row in connection.execute(_TASKS):
        values = dict(zip(
            ("id", "status", "lease_epoch", "lease_holder", "approval", "result", "evidence",
             "title", "priority", "paths", "max_attempts"),
            tuple(row),
            strict=True,
        ))  # fmt: skip
        values["evidence"] = evidence_digest(_json(values["evidence"]))
        values["paths"] = _json(values["paths"])
        values["depends_on"] = sorted(deps.get(values["id"], []))
        tasks[values["id"]] = values
    return tasks


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text  # not JSON (written past the CHECK constraint): compared as it is


def _decisions(connection: sqlite3.Connection) -> dict[str, StoredDecision]:
    found: dict[str, StoredDecision] = {}
    for row in connection.execute(f"SELECT {DECISION_COLUMNS} FROM decisions"):
        values = tuple(row)
        rules = _json(values[7])
        found[values[0]] = StoredDecision(
            digest=decision_digest(values),
            action=values[2],
            subject=values[3],
            task_id=values[4],
            effect=values[6],
            rules=rules if isinstance(rules, list) else [],
            policy_hash=values[10],
        )
    return found
