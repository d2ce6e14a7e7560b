"""`aictl task watch`: a live view of tasks, leases and AIs (registered on the task sub-app)."""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import typer

from aictl.cli import output
from aictl.cli.common import JsonOption, state
from aictl.workspace import locate

_CLEAR = "\x1b[H\x1b[2J"


def watch(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Print one view and exit.")] = False,
    interval: Annotated[
        float,
        typer.Option(
            "--interval", min=0.1, metavar="SECONDS", help="Seconds between looks at the state."
        ),
    ] = 1.0,
    json_output: JsonOption = False,
) -> None:
    """A live view of tasks (status, holder, lease time left), held locks, AIs and the
    daemon; redrawn when the state changes, until Ctrl-C. --once prints one view.

    Example: aictl task watch --once --json
    """
    from aictl.daemon.status import watch_snapshot

    workspace = locate(state(ctx).db)
    shown: Any = None
    while True:
        view = watch_snapshot(workspace)
        comparable = {key: value for key, value in view.items() if key != "at"}
        if comparable != shown:
            shown = comparable
            if json_output:
                output.emit_json(view)
            else:
                if not once and sys.stdout.isatty():
                    sys.stdout.write(_CLEAR)
                _render(view)
            sys.stdout.flush()
        if once:
            return
        time.sleep(interval)


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
                    t["note"][:60],
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
