"""`aictl task watch`: a live view of tasks, leases and AIs (registered on the task sub-app)."""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import typer

from aictl.cli import output
from aictl.cli.common import JsonOption, parse_task_id, state
from aictl.workspace import locate

_CLEAR = "\x1b[H\x1b[2J"
NOTE_WIDTH = 60
"""The widest note (blocked or failure reason) a row shows; longer ones end in an ellipsis."""


def watch(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Print one view and exit.")] = False,
    status: Annotated[
        list[str] | None,
        typer.Option("--status", help="Only tasks in this status (repeatable).", metavar="STATUS"),
    ] = None,
    task_id: Annotated[
        list[int] | None,
        typer.Option(
            "--task", help="Only this task (repeatable).", parser=parse_task_id, metavar="ID"
        ),
    ] = None,
    ai: Annotated[
        str | None,
        typer.Option("--ai", help="Only the tasks this AI holds, their locks and the AI's row."),
    ] = None,
    interval: Annotated[
        str,
        typer.Option(
            "--interval", metavar="DURATION", help="How often to look at the state: 1s, 500ms."
        ),
    ] = "1s",
    json_output: JsonOption = False,
) -> None:
    """A live view of tasks (status, holder, lease time left), held locks, AIs and the
    daemon; redrawn when the state changes, until Ctrl-C. --once prints one view. In a pipe
    (not a terminal) it prints one line per change instead: task status changes, locks taken
    and released, AIs' load, the daemon.

    Example: aictl task watch --status running --status failed
    """
    from aictl.daemon.status import watch_snapshot
    from aictl.domain.durations import parse_duration
    from aictl.domain.watching import events, narrowed
    from aictl.services.tasks import parse_status

    pause = parse_duration(interval, field="--interval").total_seconds()
    statuses = {parse_status(text).value for text in status or []}
    workspace = locate(state(ctx).db)
    live = not once and not json_output
    lines = live and not sys.stdout.isatty()
    shown: Any = None
    before: Any = None
    while True:
        view = narrowed(
            watch_snapshot(workspace), statuses=statuses, task_ids=set(task_id or []), ai=ai
        )
        if lines:
            for line in events(before, view):
                output.line(line)
            before = view
        elif (comparable := {k: v for k, v in view.items() if k != "at"}) != shown or once:
            shown = comparable
            if json_output:
                output.emit_json(view)
            else:
                if live:
                    sys.stdout.write(_CLEAR)
                _render(view)
        sys.stdout.flush()
        if once:
            return
        time.sleep(pause)


def _render(view: dict[str, Any]) -> None:
    tasks = view["tasks"]
    counts: dict[str, int] = {}
    for task in tasks:
        counts[task["status"]] = counts.get(task["status"], 0) + 1
    output.line(f"{output.when(view['at'], zoned=True)}  {view['daemon']}")
    output.line("tasks: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"))
    if tasks:
        output.table(
            None,
            ["ID", "STATUS", "HOLDER", "LEASE", "TRIES", "TITLE", "NOTE"],
            (
                (
                    t["id"],
                    output.task_status(t["status"]),
                    t["holder"] or "",
                    f"{t['lease_expires_in']}s" if t["lease_expires_in"] is not None else "",
                    t["attempts"],
                    t["title"],
                    output.cut(t["note"], NOTE_WIDTH),
                )
                for t in tasks
            ),
        )
    if view["locks"]:
        output.table(
            "locks",
            ["TASK", "GLOB", "HOLDER"],
            ((lock["task_id"], lock["glob"], lock["holder"]) for lock in view["locks"]),
        )
    if view["ais"]:
        output.table(
            "AIs",
            ["AI", "STATUS", "LOAD", "FAILURES"],
            (
                (
                    ai["id"],
                    ai["status"],
                    f"{ai['load']}/{ai['max_concurrency']}",
                    ai["consecutive_failures"],
                )
                for ai in view["ais"]
            ),
        )
