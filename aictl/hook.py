"""The ``PreToolUse`` hook's process: stdin JSON in, Claude Code's hook answer out.

Kept out of ``aictl.cli`` on purpose: the hook runs before every file write and shell command
of every agent, so ``aictl.entry`` sends ``aictl hook pre-tool-use`` here without importing
typer (see bench/peers.py for the cost). ``aictl.cli.hook`` calls the same function, so help,
docs and tests see an ordinary command.

The answer (Claude Code's hook contract): a denial is JSON on stdout, ``permissionDecision:
deny`` with the reason, which the model reads; an allowed call prints nothing and exits 0, so
Claude Code's own permission settings still apply to it (the hook only narrows). Anything that
keeps aictl from deciding (no ``.ai/``, a broken database, an invalid policy, unreadable
input) denies too: the locks cannot be checked, so no write is let through unchecked.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO


def denial(reason: str) -> dict[str, Any]:
    return {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": reason,
        }
    }


def pre_tool_use_main(
    stdin: TextIO | None = None, stdout: TextIO | None = None, environ: dict[str, str] | None = None
) -> int:
    """Decide the call described on ``stdin``; always exit 0 (the decision is in the JSON)."""
    from pathlib import Path

    from aictl.errors import AictlError

    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    try:
        event = json.loads(stdin.read() or "{}")
        if not isinstance(event, dict):
            raise ValueError("the hook input is not a JSON object")
        from aictl.services.peers import current_agent, pre_tool_use
        from aictl.workspace import locate

        cwd = event.get("cwd")
        workspace = locate(cwd=Path(cwd) if isinstance(cwd, str) and cwd else None)
        answer = pre_tool_use(workspace, current_agent(environ), event)
    except AictlError as error:
        hint = f" ({error.hint})" if error.hint else ""
        stdout.write(json.dumps(denial(f"aictl cannot check this call: {error.message}{hint}")))
        return 0
    except ValueError as error:
        stdout.write(json.dumps(denial(f"aictl cannot read the hook input: {error}")))
        return 0
    if answer.decision == "deny":
        stdout.write(json.dumps(denial(answer.reason)))
    return 0
