"""`aictl lock`: the path locks held by claimed and running tasks."""

from __future__ import annotations

from typing import Annotated

import typer

from aictl.cli import output
from aictl.cli.common import JsonOption, QuietOption, Typer, paths_from_here, task_service
from aictl.domain.tasks import format_time

app = Typer(help="Inspect path locks (globs held by claimed and running tasks).")


@app.command("list")
def list_(ctx: typer.Context, json_output: JsonOption = False, quiet: QuietOption = False) -> None:
    """List held path locks with their task, holder and lease expiry.

    Example: aictl lock list --json
    """
    with task_service(ctx) as service:
        locks = service.locks()
    fmt = output.pick(json_output, quiet)
    if fmt is output.Format.JSON:
        output.emit_json(
            [
                {
                    "task_id": lock.task_id,
                    "glob": lock.glob,
                    "holder": lock.holder,
                    "lease_epoch": lock.lease_epoch,
                    "acquired_at": format_time(lock.acquired_at),
                    "lease_expires_at": format_time(lock.lease_expires_at),
                }
                for lock in locks
            ]
        )
    elif fmt is output.Format.QUIET:
        for lock in locks:
            output.line(lock.glob)
    elif not locks:
        output.note("no locks held")
    else:
        output.table(
            None,
            ["TASK", "GLOB", "HOLDER", "EPOCH", f"EXPIRES ({output.zone()})"],
            (
                (
                    lock.task_id,
                    lock.glob,
                    lock.holder,
                    lock.lease_epoch,
                    output.when(lock.lease_expires_at),
                )
                for lock in locks
            ),
        )


@app.command()
def check(
    ctx: typer.Context,
    globs: Annotated[list[str], typer.Argument(help="Globs you intend to lock.")],
    json_output: JsonOption = False,
) -> None:
    """Say which held locks these globs would conflict with, and why. Exit 4 on a conflict.

    Example: aictl lock check 'src/*/a.py' 'docs/**'
    """
    with task_service(ctx) as service:
        globs = paths_from_here(service, globs)
        conflicts = service.check_locks(globs)
    if json_output:
        output.emit_json(
            [
                {
                    "glob": c.glob,
                    "task_id": c.task_id,
                    "held": c.held,
                    "holder": c.holder,
                    "example_path": c.witness,
                }
                for c in conflicts
            ]
        )
    elif not conflicts:
        output.line("free: no held lock overlaps " + " ".join(globs))
    for c in conflicts if not json_output else []:
        output.line(
            f"{c.glob} conflicts with {c.held} held by task {c.task_id} ({c.holder})"
            + (f": both cover {c.witness}" if c.witness else "")
        )
    if conflicts:
        raise typer.Exit(4)
