"""`aictl setup`: register aictl with agents' own tools."""

from __future__ import annotations

from typing import Annotated

import typer

from aictl.cli import output
from aictl.cli.common import JsonOption, Typer, state
from aictl.workspace import locate

app = Typer(help="Register aictl with coding agents (Claude Code).")


@app.command()
def claude(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the diff; write nothing.")
    ] = False,
    command: Annotated[
        str, typer.Option(help="How hooks and .mcp.json run aictl (a name on PATH or a path).")
    ] = "aictl",
    json_output: JsonOption = False,
) -> None:
    """Register the MCP server in .mcp.json, the hooks (PreToolUse: aictl hook
    pre-tool-use; SessionStart: aictl prime) in .claude/settings.json, and the permission for
    the aictl MCP tools in .claude/settings.local.json (claude -p honours it only there; the
    file is added to .git/info/exclude unless git ignores it). Merges with what is there and
    is idempotent: a second run changes nothing.

    Example: aictl setup claude --dry-run
    """
    from aictl.services import claude_setup

    root = locate(state(ctx).db).root
    changes = claude_setup.plan(root, command)
    written = [] if dry_run else claude_setup.apply(changes)
    if json_output:
        output.emit_json(
            {
                "dry_run": dry_run,
                "changed": [c.name(root) for c in changes if c.changed],
                "written": [c.name(root) for c in written],
            }
        )
        return
    for change in changes:
        if change.changed and dry_run:
            output.line(change.diff(root).rstrip("\n"))
    if not any(change.changed for change in changes):
        output.note("Claude Code is already set up for aictl; nothing changed")
    elif not dry_run:
        names = ", ".join(c.name(root) for c in written)
        output.line(f"Set up Claude Code for aictl: wrote {names}")
