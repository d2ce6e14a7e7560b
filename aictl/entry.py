"""The ``aictl`` console script: the hook's fast path, then the CLI.

``aictl hook pre-tool-use`` runs on every tool call of every agent; it goes straight to
``aictl.hook`` (no typer, no rich). Every other command line goes to ``aictl.cli.main``.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["hook", "pre-tool-use"]:
        from aictl.hook import pre_tool_use_main

        sys.exit(pre_tool_use_main())
    from aictl.cli import main as cli_main

    cli_main()
