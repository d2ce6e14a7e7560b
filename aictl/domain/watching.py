"""What `aictl task watch` shows: a view narrowed by filters, and the events between two views.

Pure functions over the view ``aictl.daemon.status.watch_snapshot`` builds (plain dicts), so
that the filters and the event lines are tested without a terminal or a clock.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

View = Mapping[str, Any]


def narrowed(
    view: View,
    *,
    statuses: Collection[str] = (),
    task_ids: Collection[int] = (),
    ai: str | None = None,
) -> dict[str, Any]:
    """``view`` with only the tasks that pass every filter given (status among ``statuses``,
    id among ``task_ids``, held by ``ai``), the locks of those tasks, and with ``ai`` only
    that AI's row. No filter: the view unchanged."""
    tasks = [
        task
        for task in view["tasks"]
        if (not statuses or task["status"] in statuses)
        and (not task_ids or task["id"] in task_ids)
        and (ai is None or task["holder"] == ai)
    ]
    shown = {task["id"] for task in tasks}
    return {
        **view,
        "tasks": tasks,
        "locks": [lock for lock in view["locks"] if lock["task_id"] in shown],
        "ais": [row for row in view["ais"] if ai is None or row["id"] == ai],
    }


def steady(view: View) -> dict[str, Any]:
    """The parts of ``view`` whose change is news: not the time, the seconds a lease has
    left, nor the daemon's last tick (they change on every look)."""
    return {
        "tasks": [{k: v for k, v in t.items() if k != "lease_expires_in"} for t in view["tasks"]],
        "locks": view["locks"],
        "ais": view["ais"],
        "daemon": str(view["daemon"]).split(", last tick")[0],
    }


def events(before: View | None, after: View) -> list[str]:
    """One line per thing that changed from ``before`` to ``after`` (every task, lock and
    AI of ``after`` when ``before`` is None), oldest concern first: tasks, locks, AIs, the
    daemon. Each line starts with the time of ``after`` (HH:MM:SS, UTC)."""
    at = str(after["at"])[11:19]
    lines = [*_task_events(before, after), *_lock_events(before, after)]
    lines += _ai_events(before, after)
    old_daemon = None if before is None else steady(before)["daemon"]
    if steady(after)["daemon"] != old_daemon:
        lines.append(str(steady(after)["daemon"]))
    return [f"{at} {line}" for line in lines]


def _task_events(before: View | None, after: View) -> list[str]:
    old = {t["id"]: t for t in (before or {"tasks": []})["tasks"]}
    new = {t["id"]: t for t in after["tasks"]}
    lines = []
    for task_id, task in new.items():
        was = old.get(task_id)
        holder = f" by {task['holder']}" if task["holder"] else ""
        note = f": {task['note']}" if task["note"] else ""
        if was is None:
            lines.append(f"task {task_id} {task['status']}{holder}: {task['title']}")
        elif was["status"] != task["status"]:
            lines.append(f"task {task_id} {was['status']} -> {task['status']}{holder}{note}")
        elif was["holder"] != task["holder"]:
            lines.append(f"task {task_id} {task['status']}{holder or ', no holder'}")
        elif was["note"] != task["note"] and task["note"]:
            lines.append(f"task {task_id} {task['status']}{note}")
    lines += [f"task {task_id} is no longer shown" for task_id in old if task_id not in new]
    return lines


def _lock_events(before: View | None, after: View) -> list[str]:
    def key(lock: Mapping[str, Any]) -> tuple[int, str]:
        return lock["task_id"], lock["glob"]

    old = {key(lock): lock for lock in (before or {"locks": []})["locks"]}
    new = {key(lock): lock for lock in after["locks"]}
    lines = [
        f"lock {lock['glob']} taken by task {lock['task_id']} ({lock['holder']})"
        for k, lock in new.items()
        if k not in old
    ]
    lines += [
        f"lock {lock['glob']} released by task {lock['task_id']}"
        for k, lock in old.items()
        if k not in new
    ]
    return lines


def _ai_events(before: View | None, after: View) -> list[str]:
    old = {row["id"]: row for row in (before or {"ais": []})["ais"]}
    lines = []
    for row in after["ais"]:
        was = old.get(row["id"])
        load = f"load {row['load']}/{row['max_concurrency']}"
        if was is None or (was["status"], was["load"]) != (row["status"], row["load"]):
            lines.append(f"ai {row['id']} {row['status']}, {load}")
        elif was["consecutive_failures"] != row["consecutive_failures"]:
            lines.append(f"ai {row['id']} failures in a row: {row['consecutive_failures']}")
    return lines
