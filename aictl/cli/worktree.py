"""`aictl worktree`: the git worktrees of task runs, and pruning those that hold no unmerged
work."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from aictl.cli import output
from aictl.cli.common import JsonOption, QuietOption, Typer, task_service

app = Typer(help="List and prune the git worktrees of task runs.")

_COLUMNS = ["TASK", "ATTEMPT", "WORKTREE", "BRANCH", "STATUS", "MERGED"]


def _rows(rows: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            row["task_id"],
            row["attempt"],
            row["worktree"] if row["exists"] else f"{row['worktree']} (gone)",
            row["branch"],
            row["status"],
            "yes" if row["merged"] else "no",
        ]
        for row in rows
    ]


@app.command("list")
def list_(ctx: typer.Context, json_output: JsonOption = False, quiet: QuietOption = False) -> None:
    """List every worktree aictl made for a task attempt: its task, status, branch, whether
    its work is merged into the target branch and whether `prune` would remove it, and why.

    Example: aictl worktree list --json
    """
    from aictl.services.worktrees import list_worktrees

    with task_service(ctx) as service:
        rows = list_worktrees(service)
    fmt = output.pick(json_output, quiet)
    if fmt is output.Format.JSON:
        output.emit_json(rows)
    elif fmt is output.Format.QUIET:
        for row in rows:
            output.line(row["worktree"])
    elif not rows:
        output.note("no task worktrees")
    else:
        output.table(
            None,
            [*_COLUMNS, "PRUNE"],
            (
                [*cells, "remove" if row["prunable"] else f"keep: {row['why']}"]
                for cells, row in zip(_rows(rows), rows, strict=True)
            ),
        )


@app.command()
def prune(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be removed; remove nothing.")
    ] = False,
    json_output: JsonOption = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print the worktrees removed (or to remove).")
    ] = False,
) -> None:
    """Remove the worktrees and branches of task runs whose work is all merged into the
    target branch, or that hold nothing; keep every one with commits not merged or with
    uncommitted changes (a failed or killed run), and say why. Never forces a removal.

    Example: aictl worktree prune --dry-run
    """
    from aictl.services.worktrees import prune_worktrees

    with task_service(ctx) as service:
        rows = prune_worktrees(service, dry_run=dry_run)
    if json_output:
        output.emit_json(rows)
        return
    if quiet:
        for row in rows:
            if row["action"] != "kept":
                output.line(row["worktree"])
        return
    if not rows:
        output.note("no task worktrees")
        return
    for row in rows:
        output.line(
            f"{row['action']}: {row['worktree']} (task {row['task_id']}, {row['branch']}): "
            f"{row['why']}"
        )
    kept = [row for row in rows if row["action"] == "kept" and row["exists"]]
    if kept and not dry_run:
        # aictl never throws unmerged work away; a person who has looked at it may
        output.note(
            "kept work stays until it is merged (a task labelled continues=TASK carries it "
            "on) or you discard it yourself, for example: git worktree remove --force "
            f"{kept[0]['worktree']} && git branch -D {kept[0]['branch']}"
        )
