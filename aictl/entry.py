"""The ``aictl`` console script: the hook's fast path, the commonest commands' fast path, then
the CLI.

``aictl hook pre-tool-use`` runs on every tool call of every agent; it goes straight to
``aictl.hook`` (no typer, no rich). ``aictl task list`` and ``aictl task create`` with plain
options go to ``aictl.cli.fast`` (no typer), which hands anything else back. Every other
command line goes to ``aictl.cli.main``.

The garbage collector, measured on ``task list`` (a 60 ms process):

- Both fast paths run without the cyclic collector: a one-shot command frees its objects by
  reference counting, and the collector would only walk the modules just imported, again and
  again (2-3 ms). It is back on for the full CLI, whose commands include long-running ones
  (the daemon, ``mcp serve``, ``task execute``).
- Whatever ran, every object left is frozen before the interpreter exits: its last collection
  at exit would walk them all (about 7 ms) to find nothing worth collecting. Files and the
  database are closed by then; exit handlers still run.
"""

from __future__ import annotations

import gc
import sys


def main() -> None:
    gc.disable()
    try:
        _answer(sys.argv[1:])
    finally:
        gc.freeze()


def _answer(args: list[str]) -> None:
    if args == ["hook", "pre-tool-use"]:
        from aictl.hook import pre_tool_use_main

        sys.exit(pre_tool_use_main())
    from aictl.cli.fast import attempt

    answered = attempt(args)
    if answered is not None:
        sys.exit(answered)
    gc.enable()
    from aictl.cli import main as cli_main

    cli_main()
