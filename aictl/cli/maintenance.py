"""`aictl backup`, `aictl restore` and `aictl prune`: commands of the root (docs/maintenance.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aictl.cli import output
from aictl.cli.common import JsonOption, QuietOption, state

FileArgument = Annotated[
    Path, typer.Argument(help="The backup file.", metavar="FILE", show_default=False)
]


def backup(
    ctx: typer.Context,
    file: FileArgument,
    force: Annotated[bool, typer.Option("--force", help="Overwrite FILE if it exists.")] = False,
    json_output: JsonOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print the path only.")] = False,
) -> None:
    """Copy the state database to FILE through SQLite's online backup (safe while agents
    and the daemon write), then verify the copy's audit chain.

    Example: aictl backup /backups/aictl-$(date +%F).db
    """
    from aictl.services.maintenance import backup as run
    from aictl.workspace import locate

    result = run(locate(state(ctx).db), file, force=force)
    if json_output:
        output.emit_json(result.to_dict())
        return
    if quiet:
        output.line(str(result.path))
        return
    output.line(
        f"Backed up to {result.path} ({result.bytes:,} bytes; {result.verification.rows} audit "
        f"rows, {result.verification.tasks} task(s), verified)"
    )


def restore(
    ctx: typer.Context,
    file: FileArgument,
    json_output: JsonOption = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print where the replaced database went.")
    ] = False,
) -> None:
    """Replace the state database with a backup, once the backup verifies as `audit verify`
    would. The replaced database is kept under .ai/backups/. Refused (exit 4) while a daemon
    runs; a backup that does not verify is refused (exit 1) and nothing changes.

    Example: aictl restore /backups/aictl-2026-12-01.db
    """
    from aictl.services.maintenance import restore as run
    from aictl.workspace import locate

    result = run(locate(state(ctx).db, damaged=True), file)
    if json_output:
        output.emit_json(result.to_dict())
        return
    if quiet:
        output.line(str(result.saved))
        return
    output.line(
        f"Restored {result.source} ({result.verification.rows} audit rows, "
        f"{result.verification.tasks} task(s), verified); the previous database is "
        f"{result.saved}"
    )
    for path in result.moved:
        output.note(f"the audit checkpoint of the previous database was moved to {path}")


def prune(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be removed; remove nothing.")
    ] = False,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Remove the run folders (.ai/runs/TASK/) of finished tasks that the policy's
    settings.retention.runs lets go, and rotate the daemon log past daemon_log_mb. The runs of
    tasks not done or cancelled are always kept. The daemon does this hourly.

    Example: aictl prune --dry-run
    """
    from aictl.services.maintenance import prune as run
    from aictl.workspace import locate

    report = run(locate(state(ctx).db), dry_run=dry_run)
    if json_output:
        output.emit_json(report.to_dict())
        return
    if quiet:
        for verdict in report.removed:
            output.line(str(verdict.task_id))
        return
    if report.retention.runs is None:
        output.note("no settings.retention.runs in the policy: run folders are all kept")
    verb = "would remove" if dry_run else "removed"
    output.line(f"{verb} the run folders of {len(report.removed)} task(s)")
    if report.verdicts:
        output.table(
            None,
            ["TASK", "", "WHY"],
            [(v.task_id, verb if v.remove else "kept", v.reason) for v in report.verdicts],
        )
    if report.log_rotated:
        output.line(f"rotated the daemon log to {report.log_rotated}")
    if report.log_note:
        output.note(report.log_note)
