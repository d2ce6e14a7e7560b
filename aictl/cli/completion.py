"""`aictl completion SHELL`: the shell completion script, through Typer's completion machinery.

The script calls ``aictl`` back with ``_AICTL_COMPLETE=complete_SHELL`` and the words typed so
far; :func:`aictl.cli.run` then answers with the commands, options and values that fit.
"""

from __future__ import annotations

from typing import Annotated

import typer

from aictl.cli import output
from aictl.cli.common import one_of

SHELLS = ("bash", "zsh", "fish")
VARIABLE = "_AICTL_COMPLETE"
"""The environment variable by which the completion script asks ``aictl`` for completions."""


def completion(
    shell: Annotated[
        str,
        typer.Argument(
            help="bash, zsh or fish.", metavar="SHELL", parser=one_of(SHELLS), show_default=False
        ),
    ],
) -> None:
    """Print the completion script of a shell: commands, options and their values complete
    with Tab. Load it from the shell's start-up file.

    Example: aictl completion bash > ~/.local/share/bash-completion/completions/aictl
    """
    from typer.completion import get_completion_script  # type: ignore[attr-defined]

    script = get_completion_script(prog_name="aictl", complete_var=VARIABLE, shell=shell)
    output.line(script.rstrip("\n"))


def answering() -> bool:
    """Whether this process was started by a completion script to answer it; if so, Typer's
    completion classes are registered (they are not, by default, with ``add_completion``
    off)."""
    import os

    if not os.environ.get(VARIABLE):
        return False
    from typer.completion import completion_init  # type: ignore[attr-defined]

    completion_init()
    return True
