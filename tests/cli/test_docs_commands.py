"""Every `aictl ...` command the README and docs/ show names a real command and real options.

Commands are taken from code blocks and inline code spans of every page (docs/cli.md is
generated and checked elsewhere). Only the command path and the option names are checked, so
placeholders such as ID or TOKEN may stand for values; a renamed or removed command or option
fails here with the page and the line it is on.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer.main

from aictl.cli import app

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "cli.md")]
#: Where a shell command line ends for our purpose.
END = re.compile(r"\s(?:#|\||>|&&|;|\))|[)`]")
BLOCK = re.compile(r"^```[a-z]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
START = re.compile(r"(?:^|[\s($`=])(aictl\s+[a-z].*)")


def commands_in(page: Path) -> list[tuple[int, str]]:
    """(line number, command text) of every aictl invocation on ``page``."""
    text = page.read_text(encoding="utf-8")
    found: list[tuple[int, str]] = []
    blocks = {match.start(1): match.group(1) for match in BLOCK.finditer(text)}
    in_block: set[int] = set()
    for start, body in blocks.items():
        line = text.count("\n", 0, start) + 1
        for offset, row in enumerate(body.splitlines()):
            in_block.add(line + offset)
            stripped = row.strip()
            if stripped.startswith(("#", "$ #")):
                continue
            match = START.search(re.split(r"\s#", stripped, maxsplit=1)[0])
            if match:
                found.append((line + offset, match.group(1)))
    for number, row in enumerate(text.splitlines(), start=1):
        if number in in_block:
            continue
        for span in re.findall(r"`(aictl\s+[a-z][^`]*)`", row):
            found.append((number, span))
    return found


def check(command_line: str) -> str | None:
    """None when the command path and options exist, else what is wrong."""
    text = END.split(" " + command_line, maxsplit=1)[0].strip()
    text = text.replace("[", " ").replace("]", " ").replace("|", " ")
    try:
        words = shlex.split(text)[1:]
    except ValueError:
        words = text.split()[1:]
    command: Any = typer.main.get_command(app)
    path = ["aictl"]
    while getattr(command, "commands", None) and words and not words[0].startswith("-"):
        child = command.commands.get(words[0])
        if child is None:
            if words[0].isupper() or words[0] in {"...", "N"}:
                break
            return f"`{' '.join(path)}` has no command {words[0]!r}"
        command, path = child, [*path, words.pop(0)]
    if getattr(command, "commands", None) and not words:
        return None
    known = {name for parameter in command.params for name in parameter.opts}
    known |= {name for parameter in command.params for name in parameter.secondary_opts}
    known |= {"--help", "-h"}
    for word in words:
        if word.startswith("-") and len(word) > 1 and word != "--":
            name = word.split("=", 1)[0]
            if name not in known:
                return f"`{' '.join(path)}` has no option {name}"
    return None


CASES = [
    pytest.param(line, command, id=f"{page.name}:{line}")
    for page in PAGES
    for line, command in commands_in(page)
]


def test_the_docs_show_many_commands() -> None:
    assert len(CASES) >= 100


@pytest.mark.parametrize(("line", "command"), CASES)
def test_a_documented_command_exists_with_its_options(line: int, command: str) -> None:
    problem = check(command)
    assert problem is None, f"{command!r}: {problem}"
