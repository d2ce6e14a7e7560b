"""The `aictl` command: sub-apps mounted in one place, and the exit-code contract in `main()`.

Exit codes (``aictl.errors.EXIT_CODES``): 0 ok, 1 error, 2 invalid input or usage, 3 policy
denied, 4 conflict (lease lost, held by another, lock held), 5 nothing ready to claim, 6 task
execute queued the task again for a retry, 130 interrupted.

typer is imported when the app is built, not with this package: ``aictl.cli.fast`` (the
fast path of the commonest command lines) and ``aictl.cli.output`` import without it.
"""

from __future__ import annotations

import copy
import functools
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from aictl.cli import output
from aictl.errors import AictlError, InvalidInput

if TYPE_CHECKING:
    import typer

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


def _load_typer() -> None:
    """Import typer into this module's globals, where typer itself looks up the names in the
    commands' annotations (``typer.Context``, ``typer.Option``) when it builds the app."""
    globals()["typer"] = importlib.import_module("typer")


@functools.cache
def build(only: str | None = None, command: str | None = None) -> typer.Typer:
    """The ``aictl`` app with every group, or with group ``only`` alone (the commands of the
    root, such as ``init``, are always there); ``command`` narrows that group to the one
    command the line names."""
    _load_typer()
    from aictl.cli.common import Typer

    app = Typer(
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
    app.command()(version)
    from aictl.cli.dashboard import dashboard  # its imports are deferred: cheap to register

    app.command()(dashboard)
    from aictl.cli import maintenance  # its imports are deferred too
    from aictl.cli.completion import completion

    app.command()(maintenance.backup)
    app.command()(maintenance.restore)
    app.command()(maintenance.prune)
    app.command()(completion)
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


def version(
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print aictl's version (as `aictl --version` does), and with --json the Python it runs
    on.

    Example: aictl version --json
    """
    import platform
    from importlib.metadata import version as installed

    if json_output:
        output.emit_json({"version": installed("aictl"), "python": platform.python_version()})
    else:
        _version(True)


def root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            callback=_version,
            is_eager=True,
            help="Print aictl's version and exit.",
        ),
    ] = False,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="AICTL_DB",
            metavar="FILE|URL",
            help="State database: a SQLite file or a postgresql:// URL (default: .ai/state.db, "
            "or database: in .ai/config, found by walking up from the working directory).",
        ),
    ] = None,
) -> None:
    from aictl.cli.common import State

    ctx.obj = State(db=db)


def init(
    ctx: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    database: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Keep the state in this PostgreSQL database (postgresql://...): creates its "
            "schema, copies an existing .ai/state.db into it, and records the URL in .ai/config.",
        ),
    ] = None,
) -> None:
    """Create .ai/ (state database, example policy) at the root of the enclosing git
    repository; refused outside one (run evidence comes from git). Safe to run twice.

    With --db postgresql://..., a repository already on SQLite moves there: every row of
    .ai/state.db is copied into the (empty) database and verified, and the file is kept under
    .ai/backups/. Refused while a daemon runs (exit 4) or when the database already holds
    aictl state (exit 2); nothing changes then.

    Example: aictl init   (at the root of a repository)
    """
    from aictl.cli.common import state
    from aictl.services.maintenance import move_to_postgres
    from aictl.store.db import is_postgres_url, shown
    from aictl.workspace import STATE_DIR, git_root, initialise

    chosen = state(ctx).db
    url = database or (chosen if is_postgres_url(chosen) else None)
    root = git_root(Path.cwd().resolve()) if url else None
    moved = move_to_postgres(root / STATE_DIR, url) if url and root else None
    workspace, created = initialise(database=url)
    if json_output:
        output.emit_json(
            {
                "root": str(workspace.root),
                "db": str(workspace.database),
                "created": created,
                "moved": moved.to_dict() if moved else None,
            }
        )
        return
    if moved:
        output.line(
            f"Moved the SQLite state into {shown(moved.url)}: {moved.rows.get('tasks', 0)} "
            f"task(s), {moved.verification.rows} audit rows, verified; the SQLite file is kept "
            f"as {moved.kept.relative_to(workspace.root)}"
        )
    if created:
        output.line(f"Initialised aictl in {workspace.root}: created {', '.join(created)}")
    elif not moved:
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
    """Run the CLI and return its exit code instead of exiting (tests call this). Every
    failure goes through :func:`output.failure`: a JSON error object too under ``--json``."""
    args = list(argv) if argv is not None else sys.argv[1:]
    json_output = _asks_json(args)
    output.begin()
    if not args:
        from aictl.cli.completion import answering

        answering()  # a completion script asks: the answer goes out through click, which exits
    try:
        result = build(*_named(args))(args=args, prog_name="aictl", standalone_mode=False)
    except (Exception, KeyboardInterrupt) as error:
        return failure(error, json_output=json_output)
    return result if isinstance(result, int) else 0


def failure(error: Exception | KeyboardInterrupt, *, json_output: bool = False) -> int:
    """Report ``error``, raised by a command, and return its exit code (the fast path reports
    a failure after its write the same way): on stderr, and under ``--json`` as a JSON error
    object on stdout too, all through :func:`output.failure`."""
    loaded = sys.modules.get("typer")  # None when the error comes from the fast path
    if isinstance(error, AictlError):
        return output.failure(
            error.message, error.hint, exit_code=error.exit_code, json_output=json_output
        )
    if loaded and isinstance(error, loaded.TyperException):  # unknown option, bad integer...
        if not json_output:
            error.show()
            return int(error.exit_code)
        return output.failure(
            error.format_message(),
            _usage_hint(error),
            exit_code=int(error.exit_code),
            json_output=True,
        )
    if isinstance(error, KeyboardInterrupt) or (loaded and isinstance(error, loaded.Abort)):
        if json_output:
            return output.failure("interrupted", exit_code=130, json_output=True)
        output.note("Interrupted")
        return 130
    known = _not_a_bug(error)
    if known is not None:
        return output.failure(
            known.message, known.hint, exit_code=known.exit_code, json_output=json_output
        )
    if os.environ.get("AICTL_DEBUG"):
        raise error
    return output.failure(
        f"internal error: {type(error).__name__}: {error}",
        "this is a bug in aictl; rerun with AICTL_DEBUG=1 for the traceback and report it",
        exit_code=1,
        json_output=json_output,
    )


def _asks_json(args: Sequence[str]) -> bool:
    """Whether the line asks for JSON (``--json`` before any ``--``)."""
    for word in args:
        if word == "--":
            return False
        if word == "--json":
            return True
    return False


def _usage_hint(error: typer.TyperException) -> str | None:
    """``aictl GROUP COMMAND --help``, for the command a usage error is about."""
    context = getattr(error, "ctx", None)
    return f"`{context.command_path} --help` shows the usage" if context else None


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
