"""`aictl hook`: Claude Code hooks (installed by `aictl setup claude`)."""

from __future__ import annotations

import typer

from aictl.cli.common import Typer

app = Typer(help="Claude Code hooks: decide an agent's tool calls against the locks.")


@app.command("pre-tool-use")
def pre_tool_use() -> None:
    """Decide one Claude Code tool call (hook JSON on stdin). A write must land inside a task
    the agent (AICTL_AGENT, default one name per Claude Code session) holds and outside every
    task another agent holds; Bash is decided by the policy's tool rules. A denial is JSON on
    stdout; each decision is recorded.

    Example: aictl hook pre-tool-use < event.json   (Claude Code runs it for you)
    """
    from aictl.hook import pre_tool_use_main

    raise typer.Exit(pre_tool_use_main())
