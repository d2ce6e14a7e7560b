"""`aictl audit`: the tamper-evident log of every state change and decision."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from aictl.cli import output
from aictl.cli.common import JsonOption, parse_task_id, state
from aictl.services.audit import AuditBroken, AuditService
from aictl.workspace import locate

app = typer.Typer(help="Read and verify the tamper-evident audit log.")


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
        int | None, typer.Option("--task", help="Only this task's events.", parser=parse_task_id)
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="An ISO time, or a duration back from now: 2h, 1d.")
    ] = None,
    kind: Annotated[
        list[str] | None, typer.Option("--kind", help="An event kind or prefix: task, policy.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Show audit events in order.

    Example: aictl audit log --task 12 --since 1d
    """
    with audit_service(ctx) as service:
        entries = service.entries(task_id=task_id, since=since, kinds=kind or [])
    if json_output:
        output.emit_json([entry.to_dict() for entry in entries])
    elif not entries:
        output.note("no audit events")
    else:
        output.table(
            None,
            ["SEQ", "TIME (UTC)", "KIND", "ACTOR", "TASK", "DATA"],
            (
                (
                    e.seq,
                    f"{e.at:%Y-%m-%d %H:%M:%S}",
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
        typer.Option(help="A checkpoint file (default: .ai/audit-checkpoint.json if present)."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Check the hash chain row by row; exit 1 naming the first changed, missing or reordered
    row, or a truncation against the checkpoint. With --json the outcome is printed either way
    ("ok" false, "bad_seq" and "problem" when broken).

    Example: aictl audit verify
    """
    with audit_service(ctx) as service:
        result = service.verify(checkpoint)
    if json_output:
        output.emit_json(
            {
                "ok": result.ok,
                "rows": result.rows,
                "head_seq": result.head_seq,
                "head_hash": result.head_hash,
                "bad_seq": result.bad_seq,
                "problem": result.problem,
            }
        )
    elif result.ok:
        output.line(f"audit log intact: {result.rows} rows, head {result.head_hash[:16]}")
    if not result.ok:
        raise AuditBroken.of(result)


@app.command()
def export(
    ctx: typer.Context,
    format: Annotated[str, typer.Option("--format", help="Only jsonl for now.")] = "jsonl",
    output_file: Annotated[
        Path | None, typer.Option("--output", "-o", help="A file (default: stdout).")
    ] = None,
) -> None:
    """Export every audit row as JSON Lines, hashes included, for archiving elsewhere.

    Example: aictl audit export -o audit.jsonl
    """
    if format != "jsonl":
        raise typer.BadParameter(f"unknown format {format!r}; valid: jsonl", param_hint="--format")
    with audit_service(ctx) as service:
        if output_file is None:
            count = service.export(sys.stdout)
        else:
            count = service.export_file(output_file)
    output.note(f"exported {count} rows")


@app.command()
def checkpoint(
    ctx: typer.Context,
    output_file: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Where (default: .ai/audit-checkpoint.json)."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Record the head hash and row count, so a later truncation of the log is detected.
    Keep a copy where the log's writers cannot reach it.

    Example: aictl audit checkpoint -o /secure/aictl-checkpoint.json
    """
    with audit_service(ctx) as service:
        mark, path = service.checkpoint(output_file)
    if json_output:
        output.emit_json({**mark.to_dict(), "path": str(path)})
    else:
        output.line(f"checkpoint at row {mark.seq} ({mark.hash[:16]}) written to {path}")
