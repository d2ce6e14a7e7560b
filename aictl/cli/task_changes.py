"""`aictl task edit`, `task comment` and `task import`: registered on the `task` group
(``aictl.cli.task`` imports this module), kept apart so that file stays about the lease
lifecycle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aictl.cli import output
from aictl.cli.common import (
    JsonOption,
    QuietOption,
    one_of,
    parse_task_id,
    paths_from_here,
    task_service,
)
from aictl.cli.task import TaskId, app
from aictl.domain.imports import FORMATS
from aictl.errors import InvalidInput


@app.command()
def edit(
    ctx: typer.Context,
    task_id: TaskId,
    title: Annotated[str | None, typer.Option(help="A new title.", metavar="TEXT")] = None,
    description: Annotated[
        str | None, typer.Option(help="A new description.", metavar="TEXT")
    ] = None,
    priority: Annotated[
        int | None, typer.Option(help="A new priority (higher runs first).", metavar="N")
    ] = None,
    path: Annotated[
        list[str] | None,
        typer.Option(
            "--path", help="A glob it will edit; the given ones replace the old.", metavar="GLOB"
        ),
    ] = None,
    clear_paths: Annotated[
        bool, typer.Option("--clear-paths", help="Remove every path glob.")
    ] = False,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", help="KEY=VALUE sets a label; KEY- removes it.", metavar="CHANGE"),
    ] = None,
    depends_on: Annotated[
        list[int] | None,
        typer.Option(
            "--depends-on", help="Add a task it waits for.", parser=parse_task_id, metavar="ID"
        ),
    ] = None,
    remove_dependency: Annotated[
        list[int] | None,
        typer.Option(
            "--remove-dependency",
            help="Stop waiting for this task.",
            parser=parse_task_id,
            metavar="ID",
        ),
    ] = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Change a task that is not claimed yet (queued or blocked), audited as task.edited.
    Paths are checked as by `task create`; a dependency that closes a cycle is refused with
    the cycle named; the policy judges the edited task as a new one. Exit 4 while a lease
    holds the task, 2 once it finished.

    Example: aictl task edit 12 --title "Add the login endpoint" --path "src/api/**"
    """
    from aictl.services.task_changes import edit_task

    if clear_paths and path:
        raise InvalidInput("--path and --clear-paths contradict each other", hint="give one")
    with task_service(ctx) as service:
        paths = [] if clear_paths else path and paths_from_here(service, path)
        task = edit_task(
            service,
            task_id,
            title=title,
            description=description,
            priority=priority,
            paths=paths,
            labels=label or [],
            depends_on=depends_on or [],
            remove_dependencies=remove_dependency or [],
        )
    output.task(task, output.pick(json_output, quiet), headline=f"Edited task {task.id}")


@app.command()
def comment(
    ctx: typer.Context,
    task_id: TaskId,
    text: Annotated[str, typer.Argument(help="The comment.", metavar="TEXT", show_default=False)],
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Add a comment to a task, in any status. Comments are never changed or removed; the
    author is the actor (AICTL_ACTOR, else user:LOGIN); `task show` lists them.

    Example: aictl task comment 12 "Blocked on the schema review"
    """
    from aictl.services.task_changes import comment as add

    with task_service(ctx) as service:
        note = add(service, task_id, text)
    fmt = output.pick(json_output, quiet)
    if fmt is output.Format.JSON:
        output.emit_json(note.to_dict())
    elif fmt is output.Format.QUIET:
        output.line(str(note.id))
    else:
        output.line(f"Comment {note.id} added to task {task_id}")


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(help="The file to import.", metavar="FILE", show_default=False)
    ],
    format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="aictl, taskmaster or beads (default: from the file).",
            parser=one_of(FORMATS),
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check the file and show the plan; create nothing.")
    ] = False,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Create many tasks with their dependencies in one transaction, all or none: from
    aictl's YAML/JSON, a Taskmaster tasks.json or a beads issues.jsonl (docs/tasks.md).
    A problem names the file, the line or entry and the field; a cycle is refused.

    Example: aictl task import .taskmaster/tasks/tasks.json --dry-run
    """
    from aictl.services.task_changes import import_file

    with task_service(ctx) as service:
        plan = import_file(service, file, format=format, dry_run=dry_run)
    fmt = output.pick(json_output, quiet)
    if fmt is output.Format.JSON:
        output.emit_json(plan.to_dict(dry_run=dry_run))
    elif fmt is output.Format.QUIET:
        for task in plan.tasks:
            output.line(str(task.id))
    elif dry_run:
        output.table(
            f"Would import {len(plan.entries)} task(s) ({plan.format}); nothing was created",
            ["REF", "TITLE", "DEPENDS ON", "FROM"],
            [(e.ref, e.title, ", ".join(e.depends_on), e.where) for e in plan.entries],
        )
    else:
        first, last = plan.tasks[0].id, plan.tasks[-1].id
        output.line(
            f"Imported {len(plan.tasks)} task(s) from {file} ({plan.format}): {first}-{last}"
        )
