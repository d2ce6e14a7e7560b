"""Read-only queries for the dashboard: plain rows (dicts), bounded, cheap at 10,000 tasks.

The dashboard renders what it reads and never builds a ``Task`` per row: every listing has a
``limit`` and the counts come from indexes (``tasks_status``, ``run_spend_day``). Nothing here
writes; approvals go through ``TaskService`` like the CLI's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from aictl.store.db import Database

_TASK_FIELDS = (
    "id, title, status, priority, labels, paths, attempts, max_attempts, lease_holder,"
    " lease_expires_at, heartbeat_at, blocked_reason, failure_reason, approval, approval_by,"
    " not_before, unmet_deps, updated_at, started_at, claimed_at"
)
_JSON_FIELDS = ("labels", "paths")


def _task_row(row: Any) -> dict[str, Any]:
    item = dict(row)
    for key in _JSON_FIELDS:
        if key in item:
            item[key] = json.loads(item[key])
    return item


def data_version(db: Database) -> int:
    """SQLite's ``PRAGMA data_version``: changes whenever another connection commits, so a
    watcher polling it on its own connection sees every write at the cost of no table read.
    PostgreSQL has no such counter; there the audit log's head serves (every state change
    appends to it in its own transaction), read from its primary key's index."""
    if db.url is not None:
        return int(
            db.connection.execute("SELECT coalesce(max(seq), 0) FROM audit_log").fetchone()[0]
        )
    return int(db.connection.execute("PRAGMA data_version").fetchone()[0])


def count_by_status(db: Database) -> dict[str, int]:
    rows = db.connection.execute("SELECT status, count(*) FROM tasks GROUP BY status")
    return {row[0]: row[1] for row in rows}


def tasks(
    db: Database,
    *,
    statuses: Sequence[str] = (),
    label: tuple[str, str] | None = None,
    text: str = "",
    limit: int = 500,
) -> tuple[list[dict[str, Any]], int]:
    """Tasks matching the filters, newest first, at most ``limit``; and how many matched."""
    where: list[str] = []
    params: list[Any] = []
    if statuses:
        where.append(f"status IN ({', '.join('?' for _ in statuses)})")
        params.extend(statuses)
    if label is not None:
        where.append("json_extract(labels, ?) = ?")
        params.extend([f'$."{label[0]}"', label[1]])
    if text:
        where.append("instr(lower(title), lower(?)) > 0")
        params.append(text)
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    connection = db.connection
    total = int(connection.execute("SELECT count(*) FROM tasks" + clause, params).fetchone()[0])
    rows = connection.execute(
        f"SELECT {_TASK_FIELDS} FROM tasks{clause} ORDER BY id DESC LIMIT ?", [*params, limit]
    ).fetchall()
    return [_task_row(row) for row in rows], total


def task(db: Database, task_id: int) -> dict[str, Any] | None:
    row = db.connection.execute(
        f"SELECT {_TASK_FIELDS}, description, result, evidence FROM tasks WHERE id = ?", (task_id,)
    ).fetchone()
    if row is None:
        return None
    item = _task_row(row)
    item["evidence"] = json.loads(item["evidence"]) if item["evidence"] else None
    return item


def edges_among(db: Database, ids: Sequence[int]) -> list[tuple[int, int]]:
    """Dependency edges (task, depends_on) with both ends in ``ids``."""
    if not ids:
        return []
    found: list[tuple[int, int]] = []
    wanted = set(ids)
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        rows = db.connection.execute(
            f"SELECT task_id, depends_on FROM task_deps WHERE task_id IN "
            f"({', '.join('?' for _ in chunk)})",
            chunk,
        )
        found.extend((row[0], row[1]) for row in rows if row[1] in wanted)
    return sorted(found)


def running(db: Database) -> list[dict[str, Any]]:
    """Claimed and running tasks (the ``tasks_leased`` index), soonest expiry first."""
    rows = db.connection.execute(
        f"SELECT {_TASK_FIELDS} FROM tasks WHERE status IN ('claimed', 'running')"
        " ORDER BY lease_expires_at"
    ).fetchall()
    return [_task_row(row) for row in rows]


def current_worktrees(db: Database, tasks: list[dict[str, Any]]) -> dict[int, dict[str, str]]:
    """The worktree and branch of each task's current attempt: its newest ``task_branches``
    row made since the task's claim. An earlier attempt's row does not count, and a task run
    in the main working tree (``isolation: shared``, an agent session of its own) has none."""
    claimed = {int(task["id"]): task.get("claimed_at") or "" for task in tasks}
    if not claimed:
        return {}
    marks = ", ".join("?" * len(claimed))
    rows = db.connection.execute(
        "SELECT task_id, worktree, branch, created_at FROM task_branches"
        f" WHERE task_id IN ({marks}) ORDER BY task_id, attempt",
        tuple(claimed),
    ).fetchall()
    found: dict[int, dict[str, str]] = {}
    for task_id, worktree, branch, created_at in rows:
        if created_at >= claimed[task_id]:
            found[task_id] = {"worktree": worktree, "branch": branch}
    return found


def locks(db: Database) -> list[dict[str, Any]]:
    """Every held path lock with its task's title and lease expiry."""
    rows = db.connection.execute(
        "SELECT l.task_id, l.glob, l.holder, l.lease_epoch, l.acquired_at, t.title,"
        " t.lease_expires_at FROM path_locks l JOIN tasks t ON t.id = l.task_id"
        " ORDER BY l.task_id, l.glob"
    ).fetchall()
    return [dict(row) for row in rows]


def pending_approvals(db: Database) -> list[dict[str, Any]]:
    """Tasks awaiting a person's approval, each with the latest ``require_approval`` record
    (its rules and reason)."""
    rows = db.connection.execute(
        f"SELECT {_TASK_FIELDS} FROM tasks WHERE status = 'blocked' AND approval = 'pending'"
        " ORDER BY id"
    ).fetchall()
    found = []
    for row in rows:
        item = _task_row(row)
        record = db.connection.execute(
            "SELECT id, at, action, rules FROM decisions WHERE task_id = ?"
            " AND effect = 'require_approval' ORDER BY at DESC LIMIT 1",
            (item["id"],),
        ).fetchone()
        item["decision"] = (
            {**dict(record), "rules": json.loads(record["rules"])} if record is not None else None
        )
        found.append(item)
    return found


def decisions(db: Database, *, limit: int = 100) -> list[dict[str, Any]]:
    rows = db.connection.execute(
        "SELECT id, at, action, subject, task_id, effect, rules, lease_epoch FROM decisions"
        " ORDER BY at DESC, id DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [{**dict(row), "rules": json.loads(row["rules"])} for row in rows]


def audit_tail(db: Database, *, limit: int = 100) -> list[dict[str, Any]]:
    rows = db.connection.execute(
        "SELECT seq, at, kind, actor, task_id, data FROM audit_log ORDER BY seq DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [dict(row) for row in rows]


def spend_by_task(db: Database, *, limit: int = 50) -> list[dict[str, Any]]:
    """The costliest tasks: cost and tokens summed over their runs."""
    rows = db.connection.execute(
        "SELECT s.task_id, t.title, count(*) AS runs, total(s.cost_usd) AS cost_usd,"
        " sum(s.input_tokens) AS input_tokens, sum(s.output_tokens) AS output_tokens"
        " FROM run_spend s JOIN tasks t ON t.id = s.task_id GROUP BY s.task_id"
        " ORDER BY cost_usd DESC, s.task_id LIMIT ?",
        (limit,),
    ).fetchall()
    return [dict(row) for row in rows]


def spend_by_ai(db: Database) -> list[dict[str, Any]]:
    rows = db.connection.execute(
        "SELECT ai, count(*) AS runs, total(cost_usd) AS cost_usd,"
        " sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens"
        " FROM run_spend GROUP BY ai ORDER BY ai"
    ).fetchall()
    return [dict(row) for row in rows]


def spend_by_day(db: Database, *, days: int = 30) -> list[dict[str, Any]]:
    """The last ``days`` days that had runs (UTC dates, oldest first)."""
    rows = db.connection.execute(
        "SELECT substr(finished_at, 1, 10) AS day, count(*) AS runs,"
        " total(cost_usd) AS cost_usd, sum(input_tokens) AS input_tokens,"
        " sum(output_tokens) AS output_tokens FROM run_spend GROUP BY day"
        " ORDER BY day DESC LIMIT ?",
        (days,),
    ).fetchall()
    return [dict(row) for row in reversed(rows)]
