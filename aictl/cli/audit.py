"""`aictl audit`: the tamper-evident log of every state change and decision."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from aictl.cli import output
from aictl.cli.common import JsonOption, Typer, one_of, parse_task_id, state
from aictl.services.audit import AuditBroken, AuditService
from aictl.workspace import locate

app = Typer(help="Read and verify the tamper-evident audit log.")


@contextmanager
def audit_service(ctx: typer.Context) -> Iterator[AuditService]:
    service = AuditService(locate(state(ctx).db))
    try:
        yield service
    finally:
        service.close()


@app.command("log")
def log_(
    ctx: typer.Context,
    task_id: Annotated[
        int | None,
        typer.Option("--task", help="Only this task's events.", parser=parse_task_id, metavar="ID"),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="An ISO time, or a duration back from now: 2h, 1d.", metavar="WHEN"),
    ] = None,
    kind: Annotated[
        list[str] | None, typer.Option("--kind", help="An event kind or prefix: task, policy.")
    ] = None,
    json_output: JsonOption = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print sequence numbers only.")
    ] = False,
) -> None:
    """Show audit events in order.

    Example: aictl audit log --task 12 --since 1d
    """
    with audit_service(ctx) as service:
        entries = service.entries(task_id=task_id, since=since, kinds=kind or [])
    if json_output:
        output.emit_json([entry.to_dict() for entry in entries])
    elif quiet:
        for entry in entries:
            output.line(str(entry.seq))
    elif not entries:
        output.note("no audit events")
    else:
        output.table(
            None,
            ["SEQ", f"TIME ({output.zone()})", "KIND", "ACTOR", "TASK", "DATA"],
            (
                (
                    e.seq,
                    output.when(e.at),
                    e.kind,
                    e.actor,
                    e.task_id or "",
                    output.compact(e.data),
                )
                for e in entries
            ),
        )


@app.command()
def verify(
    ctx: typer.Context,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="A signed checkpoint file (default: .ai/audit-checkpoint.json if present).",
            metavar="FILE",
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Check the hash chain row by row, the chain against a checkpoint (its signature, and
    that the chain still holds its head), and the tasks and decision records against what the
    chain says. Exit 1 naming the first changed, missing or reordered row, the first task or
    decision that differs, a truncation, or a bad signature. With --json the outcome is
    printed either way ("ok" false, "bad_seq", "bad_task", "bad_decision" and "problem" when
    broken).

    Example: aictl audit verify --checkpoint ~/aictl-checkpoints/repo.json
    """
    with audit_service(ctx) as service:
        result = service.verify(checkpoint)
    if json_output:
        output.emit_json(result.to_dict())
    elif result.ok:
        output.line(
            f"audit log intact: {result.rows} rows, head {result.head_hash[:16]}; "
            f"{result.tasks} task(s) and {result.decisions} decision record(s) agree with it"
        )
    if not json_output:
        for note in result.notes:
            output.note(f"note: {note}")
    if not result.ok:
        raise AuditBroken.of(result)


@app.command()
def export(
    ctx: typer.Context,
    format: Annotated[
        str, typer.Option("--format", help="Only jsonl for now.", parser=one_of(("jsonl",)))
    ] = "jsonl",
    output_file: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="A file (default: stdout).", metavar="FILE"),
    ] = None,
) -> None:
    """Export every audit row as JSON Lines, hashes included, for archiving elsewhere.

    Example: aictl audit export -o audit.jsonl
    """
    with audit_service(ctx) as service:
        if output_file is None:
            count = service.export(sys.stdout)
        else:
            count = service.export_file(output_file)
    output.note(f"exported {count} rows")


@app.command()
def checkpoint(
    ctx: typer.Context,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            "--output",
            "-o",
            help="A file outside the repository, or an http(s):// URL to POST it to "
            "(default: .ai/audit-checkpoint.json).",
            metavar="TARGET",
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Sign the chain's head (HMAC-SHA256 with the audit key, ~/.config/aictl/audit.key or
    AICTL_AUDIT_KEY_FILE, created on first use) and write it atomically to a file, or POST it
    to a webhook. A later `audit verify --checkpoint FILE` proves the chain still holds that
    head. Keep it where the database's writers cannot reach it.

    Example: aictl audit checkpoint --to ~/aictl-checkpoints/repo.json
    """
    with audit_service(ctx) as service:
        mark, where = service.checkpoint(to)
    if json_output:
        output.emit_json({**mark.to_dict(), "path": where})
    else:
        output.line(
            f"checkpoint at row {mark.seq} ({mark.hash[:16]}) signed and written to {where}"
        )
