"""The `aictl` command: sub-apps mounted in one place, and the exit-code contract in `main()`.

Exit codes: 0 ok, 1 error, 2 invalid input or usage, 3 policy denied, 4 conflict (lease lost,
held by another, lock held), 5 nothing ready to claim, 130 interrupted.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from aictl.cli import (
    ai,
    audit,
    daemon,
    lock,
    output,
    policy,
    policy_records,
    route,
    skill,
    task,
    watch,
    workflow,
)
from aictl.cli.common import State
from aictl.errors import AictlError

app = typer.Typer(
    name="aictl",
    help="A control plane for AI coding agents working in one repository.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(task.app, name="task")
app.add_typer(lock.app, name="lock")
app.add_typer(audit.app, name="audit")
app.add_typer(policy.app, name="policy")
app.add_typer(ai.app, name="ai")
app.add_typer(route.app, name="route")
app.add_typer(daemon.app, name="daemon")
task.app.command("watch")(watch.watch)
app.add_typer(skill.app, name="skill")
app.add_typer(workflow.app, name="workflow")
policy.app.command("decisions")(policy_records.decisions)
policy.app.add_typer(policy_records.override_app, name="override")


@app.callback()
def root(
    ctx: typer.Context,
    db: Annotated[
        Path | None,
        typer.Option(
            "--db",
            envvar="AICTL_DB",
            help="State database (default: .ai/state.db "
            "found by walking up from the working directory).",
        ),
    ] = None,
) -> None:
    ctx.obj = State(db=db)


@app.command()
def init(json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Create .ai/ (state database, example policy) at the repository root. Safe to run twice.

    Example: aictl init   (at the root of a repository)
    """
    from aictl.workspace import initialise

    workspace, created = initialise()
    if json_output:
        output.emit_json(
            {"root": str(workspace.root), "db": str(workspace.db_path), "created": created}
        )
    elif created:
        output.line(f"Initialised aictl in {workspace.root}: created {', '.join(created)}")
    else:
        output.line(f"aictl is already initialised in {workspace.root}; nothing changed")


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code instead of exiting (tests call this)."""
    try:
        result = app(
            args=list(argv) if argv is not None else None, prog_name="aictl", standalone_mode=False
        )
    except AictlError as error:
        output.error(error.message, error.hint)
        return error.exit_code
    except typer.TyperException as error:  # usage errors: unknown option, bad integer...
        error.show()  # type: ignore[attr-defined]
        return int(error.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        output.note("Interrupted")
        return 130
    except Exception as error:
        if os.environ.get("AICTL_DEBUG"):
            raise
        output.error(
            f"internal error: {type(error).__name__}: {error}",
            "this is a bug in aictl; rerun with AICTL_DEBUG=1 for the traceback and report it",
        )
        return 1
    return result if isinstance(result, int) else 0


def main() -> None:
    sys.exit(run())
