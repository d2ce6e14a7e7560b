"""The ``aictl`` console script: the hook's fast path, the commonest commands' fast path, then
the CLI.

``aictl hook pre-tool-use`` runs on every tool call of every agent; it goes straight to
``aictl.hook`` (no typer, no rich). ``aictl task list`` and ``aictl task create`` with plain
options go to ``aictl.cli.fast`` (no typer), which hands anything else back. Every other
command line goes to ``aictl.cli.main``.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["hook", "pre-tool-use"]:
        from aictl.hook import pre_tool_use_main

        sys.exit(pre_tool_use_main())
    from aictl.cli.fast import attempt

    answered = attempt(sys.argv[1:])
    if answered is not None:
        sys.exit(answered)
    from aictl.cli import main as cli_main

    cli_main()
