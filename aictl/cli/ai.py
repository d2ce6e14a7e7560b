"""`aictl ai`: the registry of AI instances the router hands tasks to."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aictl.cli import output
from aictl.cli.common import JsonOption, QuietOption, Typer, state

if TYPE_CHECKING:
    from aictl.domain.ais import AI
    from aictl.services.ais import AIService

app = Typer(help="Register AI instances, label them, and set their status.")

AIId = Annotated[str, typer.Argument(help="The AI id.", metavar="ID", show_default=False)]

_STATUS_STYLE = {"available": "green", "busy": "yellow", "offline": "dim", "quarantined": "red"}


@contextmanager
def ai_service(ctx: typer.Context) -> Iterator[AIService]:
    from aictl.services.ais import AIService
    from aictl.workspace import locate

    service = AIService(locate(state(ctx).db))
    try:
        yield service
    finally:
        service.close()


def _labels(ai: AI) -> str:
    return " ".join(f"{key}={value}" for key, value in sorted(ai.labels.items()))


def _render_list(items: Sequence[AI], fmt: output.Format) -> None:
    if fmt is output.Format.JSON:
        output.emit_json([ai.to_dict() for ai in items])
    elif fmt is output.Format.QUIET:
        for ai in items:
            output.line(ai.id)
    elif not items:
        output.note("no AIs registered (`aictl ai register` adds one)")
    else:
        output.table(
            None,
            ["ID", "CONNECTOR", "STATUS", "MAX", "MODEL", "CAPABILITIES", "LABELS", "VERSION"],
            (
                (
                    ai.id,
                    ai.connector,
                    output.Styled(ai.status.value, _STATUS_STYLE[ai.status.value]),
                    ai.max_concurrency,
                    ai.model,
                    ",".join(ai.capabilities),
                    _labels(ai),
                    ai.health.get("version"),
                )
                for ai in items
            ),
        )


def _render_one(ai: AI, fmt: output.Format, *, headline: str | None = None) -> None:
    if fmt is output.Format.JSON:
        output.emit_json(ai.to_dict())
    elif fmt is output.Format.QUIET:
        output.line(ai.id)
    elif headline:
        output.line(headline)
    else:
        health = ai.health
        rows: list[tuple[str, Any]] = [
            ("id", ai.id),
            ("connector", ai.connector),
            ("status", output.Styled(ai.status.value, _STATUS_STYLE[ai.status.value])),
            ("max concurrency", ai.max_concurrency),
            ("model", ai.model or ""),
            ("capabilities", ", ".join(ai.capabilities)),
            ("labels", _labels(ai)),
            ("version", health.get("version") or ""),
            ("binary", health.get("binary") or ""),
            ("tools", ", ".join(health.get("tools") or [])),
            ("failures in a row", health.get("consecutive_failures", 0)),
            ("last error", health.get("last_error") or ""),
            ("registered", output.when(ai.created_at, zoned=True)),
            ("updated", output.when(ai.updated_at, zoned=True)),
        ]
        output.table(None, ["FIELD", "VALUE"], [(k, v) for k, v in rows if v != ""])


@app.command()
def register(
    ctx: typer.Context,
    ai_id: AIId,
    connector: Annotated[
        str, typer.Option("--connector", help="How aictl drives it (known: claude-code).")
    ] = ...,  # type: ignore[assignment]
    label: Annotated[
        list[str] | None, typer.Option("--label", help="KEY=VALUE.", metavar="KEY=VALUE")
    ] = None,
    capability: Annotated[
        list[str] | None,
        typer.Option("--capability", help="A capability it offers.", metavar="NAME"),
    ] = None,
    max_concurrency: Annotated[
        int, typer.Option("--max-concurrency", help="Tasks it may hold at once.", metavar="N")
    ] = 1,
    model: Annotated[
        str | None, typer.Option("--model", help="The model it should use.", metavar="NAME")
    ] = None,
    no_check: Annotated[
        bool, typer.Option("--no-check", help="Do not look for the connector's program.")
    ] = False,
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite an AI with this id.")
    ] = False,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Register an AI instance. The connector's program is found and its version recorded
    (unless --no-check); an existing id is refused unless --replace.

    Example: aictl ai register claude-1 --connector claude-code --capability python --label team=web
    """
    with ai_service(ctx) as service:
        ai = service.register(
            ai_id,
            connector=connector,
            labels=label or [],
            capabilities=capability or [],
            max_concurrency=max_concurrency,
            model=model,
            check=not no_check,
            replace=replace,
        )
    version = ai.health.get("version")
    detail = f" ({version})" if version else " (not checked)"
    _render_one(
        ai,
        output.pick(json_output, quiet),
        headline=f"Registered AI {ai.id}: {ai.connector}{detail}",
    )


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[
        str | None,
        typer.Option(
            "--status", help="Only AIs in this status: available, busy, offline or quarantined."
        ),
    ] = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """List the registered AIs in id order.

    Example: aictl ai list --status available --json
    """
    with ai_service(ctx) as service:
        items = service.list_ais(status=status)
    _render_list(items, output.pick(json_output, quiet))


@app.command()
def show(
    ctx: typer.Context, ai_id: AIId, json_output: JsonOption = False, quiet: QuietOption = False
) -> None:
    """Show every field of an AI, with its health.

    Example: aictl ai show claude-1 --json
    """
    with ai_service(ctx) as service:
        ai = service.get(ai_id)
    _render_one(ai, output.pick(json_output, quiet))


@app.command()
def label(
    ctx: typer.Context,
    ai_id: AIId,
    changes: Annotated[
        list[str],
        typer.Argument(help="KEY=VALUE sets a label; KEY- removes it.", metavar="CHANGE..."),
    ],
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Set or remove labels of an AI.

    Example: aictl ai label claude-1 team=web gpu-
    """
    with ai_service(ctx) as service:
        ai = service.label(ai_id, changes)
    _render_one(
        ai, output.pick(json_output, quiet), headline=f"AI {ai.id} labels: {_labels(ai) or '-'}"
    )


@app.command()
def edit(
    ctx: typer.Context,
    ai_id: AIId,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", help="KEY=VALUE sets a label; KEY- removes it.", metavar="CHANGE"),
    ] = None,
    capability: Annotated[
        list[str] | None, typer.Option("--capability", help="A capability to add.", metavar="NAME")
    ] = None,
    remove_capability: Annotated[
        list[str] | None,
        typer.Option("--remove-capability", help="A capability to remove.", metavar="NAME"),
    ] = None,
    max_concurrency: Annotated[
        int | None,
        typer.Option("--max-concurrency", help="Tasks it may hold at once.", metavar="N"),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="The model it should use.", metavar="NAME")
    ] = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Change an AI's labels, capabilities, concurrency or model (audited as ai.edited);
    its status and health stay.

    Example: aictl ai edit claude-1 --capability python --max-concurrency 2 --model sonnet
    """
    with ai_service(ctx) as service:
        ai = service.edit(
            ai_id,
            labels=label or [],
            add_capabilities=capability or [],
            remove_capabilities=remove_capability or [],
            max_concurrency=max_concurrency,
            model=model,
        )
    _render_one(ai, output.pick(json_output, quiet), headline=f"Edited AI {ai.id}")


@app.command()
def status(
    ctx: typer.Context,
    ai_id: AIId,
    set_: Annotated[
        str | None,
        typer.Option(
            "--set",
            help="available or offline (aictl sets busy and quarantined).",
            metavar="STATUS",
        ),
    ] = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Show an AI's status, or set it to available or offline. Setting available clears the
    failure counters, which ends a quarantine.

    Example: aictl ai status claude-1 --set available
    """
    with ai_service(ctx) as service:
        ai = service.set_status(ai_id, set_) if set_ else service.get(ai_id)
    fmt = output.pick(json_output, quiet)
    if fmt is output.Format.JSON:
        output.emit_json({"id": ai.id, "status": ai.status.value, "health": ai.health})
    elif fmt is output.Format.QUIET:
        output.line(ai.status.value)
    else:
        failures = ai.health.get("consecutive_failures", 0)
        last = ai.health.get("last_error")
        extra = f"; {failures} failures in a row" if failures else ""
        extra += f"; last error: {last}" if last else ""
        output.line(f"{ai.id}: {ai.status.value}{extra}")


@app.command()
def remove(
    ctx: typer.Context, ai_id: AIId, json_output: JsonOption = False, quiet: QuietOption = False
) -> None:
    """Remove an AI from the registry. Refused (exit 4) while it holds a task's lease.

    Example: aictl ai remove claude-1
    """
    with ai_service(ctx) as service:
        ai = service.remove(ai_id)
    _render_one(ai, output.pick(json_output, quiet), headline=f"Removed AI {ai.id}")
