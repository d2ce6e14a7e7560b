"""`aictl route`: where the router would send a task, and why."""

from __future__ import annotations

from typing import Annotated

import typer

from aictl.cli import output
from aictl.cli.ai import ai_service
from aictl.cli.common import JsonOption, Typer, parse_task_id

app = Typer(help="Ask the router where a task would go, and why.")


@app.command()
def explain(
    ctx: typer.Context,
    task_id: Annotated[
        int, typer.Argument(help="The task id.", metavar="ID", parser=parse_task_id)
    ],
    json_output: JsonOption = False,
) -> None:
    """Show the AI the router would choose for a task now, and for every registered AI the
    reasons it was or was not chosen (status, capabilities, labels, load). Changes nothing.

    Example: aictl route explain 12 --json
    """
    with ai_service(ctx) as service:
        result = service.explain_route(task_id)
    if json_output:
        output.emit_json(result.to_dict())
        return
    if result.ai:
        output.line(f"Task {result.task_id} → {result.ai}")
    else:
        output.line(f"Task {result.task_id}: no eligible AI")
    if not result.candidates:
        output.note("no AIs registered (`aictl ai register` adds one)")
        return
    output.table(
        None,
        ["AI", "STATUS", "LOAD", "CHOSEN", "REASONS"],
        (
            (
                candidate.ai,
                candidate.status,
                f"{candidate.load}/{candidate.max_concurrency}",
                "yes" if candidate.chosen else "",
                "; ".join(candidate.reasons),
            )
            for candidate in result.candidates
        ),
    )
