"""What each dashboard page shows, read from the database and ``.ai/runs/``.

Each function opens nothing itself: it gets a ``Database`` (one per request, in the request's
thread) and returns plain dicts for ``pages`` to render. Waiting reasons and tool calls are
derived here from rows and files, by pure helpers that tests call directly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from aictl.domain import globs
from aictl.domain.dag import topological_layers
from aictl.errors import AictlError
from aictl.store import dashboard as queries
from aictl.store.db import Database
from aictl.workspace import Workspace

GRAPH_LIMIT = 150
"""Most tasks drawn in the graph (the newest of the filtered ones); the table shows more."""
TABLE_LIMIT = 500
TRANSCRIPT_TAIL = 256 * 1024
"""Bytes read from the end of a running agent's transcript for its last tool calls."""
STATUSES = ("queued", "claimed", "running", "done", "failed", "blocked", "cancelled")


def waiting_reason(task: Mapping[str, Any], held: Sequence[str], now: str) -> str:
    """Why ``task`` is not running (empty for one that is, or has finished)."""
    status = task["status"]
    if status == "blocked":
        if task.get("approval") == "pending":
            return "awaiting a person's approval: " + str(task.get("blocked_reason") or "")
        return str(task.get("blocked_reason") or "blocked")
    if status != "queued":
        return ""
    if task.get("unmet_deps"):
        count = int(task["unmet_deps"])
        return f"waiting for {count} dependenc{'y' if count == 1 else 'ies'} to finish"
    if task.get("not_before") and str(task["not_before"]) > now:
        return f"retry backoff until {task['not_before']}"
    if task.get("paths") and held and globs.has_conflict(task["paths"], held):
        return "waiting for a path lock held by a running task"
    return "ready: waiting for a free agent"


def tool_calls(lines: Sequence[str], *, last: int = 10) -> list[dict[str, Any]]:
    """The last ``last`` tool calls in Claude Code stream-json ``lines`` (assistant messages'
    ``tool_use`` blocks), oldest first, each ``{"tool", "input"}``. Lines that are not JSON
    (a cut first line of a tail) are skipped."""
    found: list[dict[str, Any]] = []
    for line in lines:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if not isinstance(message, dict) or message.get("type") != "assistant":
            continue
        inner = message.get("message")
        blocks = inner.get("content") if isinstance(inner, dict) else None
        for block in blocks if isinstance(blocks, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_use":
                found.append({"tool": str(block.get("name")), "input": block.get("input")})
    return found[-last:]


def latest_transcript(workspace: Workspace, task_id: int) -> Path | None:
    """The transcript of the task's newest run folder, if any."""
    folder = workspace.state_dir / "runs" / str(task_id)
    if not folder.is_dir():
        return None
    runs = sorted((int(p.name) for p in folder.iterdir() if p.name.isdigit()), reverse=True)
    for run in runs:
        path = folder / str(run) / "transcript.jsonl"
        if path.is_file():
            return path
    return None


def read_tail(path: Path, size: int = TRANSCRIPT_TAIL) -> list[str]:
    """The whole lines in the last ``size`` bytes of ``path`` (none if it cannot be read)."""
    try:
        with path.open("rb") as stream:
            stream.seek(0, 2)
            end = stream.tell()
            stream.seek(max(end - size, 0))
            data = stream.read()
    except OSError:
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[1:] if end > size else lines


def tasks_page(
    db: Database, *, statuses: Sequence[str], label: str, text: str, now: str
) -> dict[str, Any]:
    """The filtered table, the counts by status, and the graph of the newest filtered tasks."""
    pair = tuple(label.split("=", 1)) if "=" in label else None
    rows, total = queries.tasks(
        db,
        statuses=[s for s in statuses if s in STATUSES],
        label=(pair[0], pair[1]) if pair else None,
        text=text,
        limit=TABLE_LIMIT,
    )
    held = [lock["glob"] for lock in queries.locks(db)]
    for row in rows:
        row["why"] = waiting_reason(row, held, now)
    shown = rows[:GRAPH_LIMIT]
    ids = [int(row["id"]) for row in shown]
    edges = queries.edges_among(db, ids)
    return {
        "rows": rows,
        "total": total,
        "counts": queries.count_by_status(db),
        "graph": {"nodes": shown, "edges": edges, "layers": topological_layers(ids, edges)},
    }


def agents_page(db: Database, workspace: Workspace) -> list[dict[str, Any]]:
    """Claimed and running tasks with their lease, the worktree and branch of the current
    attempt (None: the main working tree) and their agent's last tool calls."""
    found = queries.running(db)
    worktrees = queries.current_worktrees(db, found)
    for row in found:
        row["worktree"] = worktrees.get(int(row["id"]))
        path = latest_transcript(workspace, int(row["id"]))
        row["transcript"] = str(path) if path else None
        row["tool_calls"] = tool_calls(read_tail(path)) if path else []
    return found


def locks_page(db: Database, root: Path, path: str) -> dict[str, Any]:
    """The held locks and, for ``path`` (a path or a glob, normalised as a task's paths are),
    the locks whose globs can match it (or the error in it)."""
    held = queries.locks(db)
    answer: dict[str, Any] = {"path": path, "holders": [], "error": None}
    if path:
        try:
            wanted = globs.normalize_glob(path, root)
            answer["normal"] = wanted
            answer["holders"] = [
                lock for lock in held if globs.globs_intersect(lock["glob"], wanted)
            ]
        except AictlError as error:
            answer["error"] = error.message
    return {"locks": held, "query": answer}


def decisions_page(db: Database, workspace: Workspace) -> dict[str, Any]:
    """Recent decision records and audit rows, and ``audit verify``'s outcome."""
    from aictl.services.audit import AuditService

    audit = AuditService(workspace)
    try:
        verified = audit.verify()
        verify: dict[str, Any] = {
            "ok": verified.ok,
            "rows": verified.rows,
            "head_seq": verified.head_seq,
            "problem": verified.problem,
            "bad_seq": verified.bad_seq,
        }
    except AictlError as error:
        verify = {"ok": False, "rows": None, "problem": error.message}
    finally:
        audit.close()
    return {
        "decisions": queries.decisions(db, limit=100),
        "audit": queries.audit_tail(db, limit=100),
        "verify": verify,
    }


def money_page(db: Database, workspace: Workspace) -> dict[str, Any]:
    """Spend by task, AI and day, with the policy's budgets (None where unset, or unknown
    when the policy cannot be loaded: its error is returned instead)."""
    budgets: dict[str, Any] = {"daily_usd": None, "task_usd": None, "error": None}
    try:
        from aictl.services.tasks import TaskService

        # The service borrows this request's connection (not closed here): the policy with
        # the overrides in force, as the executor sees it.
        policy = TaskService(workspace, db=db).enforcer.policy(None)
        budgets["daily_usd"] = policy.setting("budgets.daily_usd")
        budgets["task_usd"] = policy.setting("budgets.task_usd")
    except AictlError as error:
        budgets["error"] = error.message
    return {
        "by_task": queries.spend_by_task(db),
        "by_ai": queries.spend_by_ai(db),
        "by_day": queries.spend_by_day(db),
        "budgets": budgets,
    }


def task_page(db: Database, workspace: Workspace, task_id: int) -> dict[str, Any] | None:
    """A task with its evidence (diff, tests) and its latest transcript's tool calls."""
    row = queries.task(db, task_id)
    if row is None:
        return None
    path = latest_transcript(workspace, task_id)
    lines = read_tail(path) if path else []
    row["transcript_lines"] = lines[-200:]
    row["tool_calls"] = tool_calls(lines, last=50)
    return row


def now_text(now: datetime) -> str:
    from aictl.domain.tasks import format_time

    return format_time(now)
