"""The `aictl` command: sub-apps mounted in one place, and the exit-code contract in `main()`.

Exit codes: 0 ok, 1 error, 2 invalid input or usage, 3 policy denied, 4 conflict (lease lost,
held by another, lock held), 5 nothing ready to claim, 130 interrupted.
"""

from __future__ import annotations

import copy
import functools
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from aictl.cli import output
from aictl.cli.common import State
from aictl.errors import AictlError, InvalidInput

#: Every command group: its module, imported only when the group is used (or for help), so
#: `aictl task list` does not pay for the daemon's or the workflows' imports.
GROUPS = {
    "task": "aictl.cli.task",
    "lock": "aictl.cli.lock",
    "audit": "aictl.cli.audit",
    "policy": "aictl.cli.policy",
    "ai": "aictl.cli.ai",
    "route": "aictl.cli.route",
    "daemon": "aictl.cli.daemon",
    "skill": "aictl.cli.skill",
    "workflow": "aictl.cli.workflow",
    "worktree": "aictl.cli.worktree",
    "mcp": "aictl.cli.mcp",
    "hook": "aictl.cli.hook",
    "setup": "aictl.cli.setup",
}


def _group(name: str, command: str | None = None) -> typer.Typer:
    """The group's app; with ``command``, a copy holding that one command if the group has it
    (typer turns every command into a click one before parsing, about 1 ms each)."""
    group: typer.Typer = importlib.import_module(GROUPS[name]).app
    if command is None:
        return group
    kept = [info for info in group.registered_commands if _command_name(info) == command]
    if not kept:  # a subgroup, or a typo: click needs every name to answer it
        return group
    pruned = copy.copy(group)
    pruned.registered_commands = kept
    return pruned


def _command_name(info: typer.models.CommandInfo) -> str | None:
    if info.name:
        return info.name
    callback = info.callback
    return None if callback is None else callback.__name__.lower().replace("_", "-")


@functools.cache
def build(only: str | None = None, command: str | None = None) -> typer.Typer:
    """The ``aictl`` app with every group, or with group ``only`` alone (the commands of the
    root, such as ``init``, are always there); ``command`` narrows that group to the one
    command the line names."""
    app = typer.Typer(
        name="aictl",
        help="A control plane for AI coding agents working in one repository.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    app.callback()(root)
    app.command()(init)
    app.command()(doctor)
    app.command()(prime)
    from aictl.cli.dashboard import dashboard  # its imports are deferred: cheap to register

    app.command()(dashboard)
    for name in GROUPS:
        if only is None or name == only:
            app.add_typer(_group(name, command), name=name)
    return app


def __getattr__(name: str) -> typer.Typer:
    if name == "app":  # the whole app, built on first use (docgen, tests)
        return build()
    raise AttributeError(name)


def _named(argv: Sequence[str]) -> tuple[str | None, str | None]:
    """The group and the word after it on the command line (after the root's own ``--db``):
    ``(None, None)`` when the line does not start with a group."""
    words = iter(argv)
    for word in words:
        if word == "--db":
            next(words, None)
        elif not word.startswith("-"):
            if word not in GROUPS:
                return None, None
            after = next(words, None)
            return word, after if after and not after.startswith("-") else None
        elif not word.startswith("--db="):
            return None, None
    return None, None


def _version(shown: bool) -> None:
    if shown:
        from importlib.metadata import version

        output.line(f"aictl {version('aictl')}")
        raise typer.Exit()


def root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print aictl's version and exit."
        ),
    ] = False,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="AICTL_DB",
            help="State database: a SQLite file or a postgresql:// URL (default: .ai/state.db, "
            "or database: in .ai/config, found by walking up from the working directory).",
        ),
    ] = None,
) -> None:
    ctx.obj = State(db=db)


def init(
    ctx: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    database: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Keep the state in this PostgreSQL database (postgresql://...): creates its "
            "schema and records the URL in .ai/config.",
        ),
    ] = None,
) -> None:
    """Create .ai/ (state database, example policy) at the root of the enclosing git
    repository; refused outside one (run evidence comes from git). Safe to run twice.

    Example: aictl init   (at the root of a repository)
    """
    from aictl.cli.common import state
    from aictl.store.db import is_postgres_url
    from aictl.workspace import initialise

    chosen = state(ctx).db
    workspace, created = initialise(
        database=database or (chosen if is_postgres_url(chosen) else None)
    )
    if json_output:
        output.emit_json(
            {"root": str(workspace.root), "db": str(workspace.database), "created": created}
        )
    elif created:
        output.line(f"Initialised aictl in {workspace.root}: created {', '.join(created)}")
    else:
        output.line(f"aictl is already initialised in {workspace.root}; nothing changed")


def doctor(
    ctx: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check what aictl needs here: git, the state database and its schema, the policy, the
    daemon, free disk, the agent's sandbox (bubblewrap, socat) and the claude binary. Each
    problem comes with what to do; exit 1 when something stops aictl from working.

    Example: aictl doctor
    """
    from aictl.services.doctor import diagnose, healthy

    checks = diagnose(Path.cwd(), os.environ, ctx.obj.db if ctx.obj else None)
    if json_output:
        output.emit_json({"ok": healthy(checks), "checks": [c.to_dict() for c in checks]})
    else:
        rows = [
            (c.level.upper(), c.name, c.found + (f" ({c.hint})" if c.hint else "")) for c in checks
        ]
        output.table("aictl doctor", ["", "CHECK", "FOUND"], rows)
    if not healthy(checks):
        raise typer.Exit(1)


def prime(ctx: typer.Context) -> None:
    """Print what an agent needs at the start of a session (Claude Code's SessionStart hook):
    who it is (AICTL_AGENT), what it holds, what is ready, and how to claim and finish work.

    Example: aictl prime
    """
    from aictl.cli.common import state
    from aictl.services.peers import current_agent
    from aictl.services.peers import prime as prime_text
    from aictl.workspace import locate

    output.line(prime_text(locate(state(ctx).db), current_agent()).rstrip("\n"))


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code instead of exiting (tests call this)."""
    args = list(argv) if argv is not None else sys.argv[1:]
    try:
        result = build(*_named(args))(args=args, prog_name="aictl", standalone_mode=False)
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
        known = _not_a_bug(error)
        if known is not None:
            output.error(known.message, known.hint)
            return known.exit_code
        if os.environ.get("AICTL_DEBUG"):
            raise
        output.error(
            f"internal error: {type(error).__name__}: {error}",
            "this is a bug in aictl; rerun with AICTL_DEBUG=1 for the traceback and report it",
        )
        return 1
    return result if isinstance(result, int) else 0


def _not_a_bug(error: Exception) -> AictlError | None:
    """What ``error`` means when it is not a bug although it is no ``AictlError``: a failure of
    the state database met outside the store's own translation (a read, for example: a full
    disk, a damaged file), or a number too large for SQLite that reached a query."""
    if isinstance(error, OverflowError) and "SQLite INTEGER" in str(error):
        return InvalidInput(
            "a number is too large: aictl stores ids, epochs and counts as 64-bit integers "
            "(at most 9223372036854775807)",
            hint="check the ids and numbers on the command line",
        )
    if type(error).__module__ == "sqlite3":
        from aictl.store.failures import explain

        return explain(error)
    return None


def main() -> None:
    sys.exit(run())
