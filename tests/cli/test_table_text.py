"""Human tables print every value as written: text that looks like rich markup is not markup."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import pytest

from aictl.cli import output
from tests.cli.conftest import Result


def test_an_override_reason_in_brackets(aictl: Callable[..., Result]) -> None:
    assert aictl("policy", "override", "set", "max_attempts", "4", "--reason", "[/oops]")[0] == 0
    code, out, err = aictl("policy", "override", "list")
    assert (code, err) == (0, "")
    assert "[/oops]" in out


def test_an_actor_in_brackets(
    aictl: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AICTL_ACTOR", "ops[/x]")
    assert aictl("task", "create", "z")[0] == 0
    code, out, err = aictl("audit", "log")
    assert (code, err) == (0, "")
    assert "ops[/x]" in out


def test_a_lock_glob_with_a_class(aictl: Callable[..., Result]) -> None:
    aictl("task", "create", "y", "--path", "src/[ab]/y.py")
    assert aictl("task", "claim", "1", "--as", "w1")[0] == 0
    code, out, _ = aictl("lock", "list")
    assert code == 0 and "src/[ab]/y.py" in out


def test_task_tables_print_text_as_written(aictl: Callable[..., Result]) -> None:
    title, description = "[bold]not bold[/bold] :smile:", "see [red] and \\[x]"
    aictl("task", "create", title, "--description", description, "--label", "k=[i]v")
    listed = aictl("task", "list")[1]
    assert title in listed and "k=[i]v" in listed
    shown = aictl("task", "show", "1")[1]
    assert title in shown and description in shown


def test_only_styled_cells_are_coloured(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, color_system="standard", width=100)
    monkeypatch.setattr(output, "_console", lambda: console)
    output.table(None, ["A", "B"], [(output.Styled("done", "green"), "[red]plain[/red]")])
    text = screen.getvalue()
    assert "\x1b[32mdone" in text  # green
    assert "[red]plain[/red]" in text and "\x1b[31m" not in text


def test_no_table_line_ends_in_spaces(aictl: Callable[..., Result]) -> None:
    aictl("task", "create", "a much longer title than the others", "--path", "src/**")
    aictl("task", "create", "b", "--label", "k=v")
    for args in (("task", "list"), ("task", "show", "2"), ("doctor",)):
        out = aictl(*args)[1]
        lines = out.splitlines()
        assert len(lines) >= 2
        assert [line for line in lines if line != line.rstrip()] == [], args


def test_no_line_ends_in_spaces_on_a_terminal_either(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, color_system="standard", width=120)
    monkeypatch.setattr(output, "_console", lambda: console)
    rows = [(output.Styled("done", "green"), "long text here", "x"), ("queued", "", "")]
    output.table(None, ["STATUS", "TEXT", "LAST"], rows)
    text = screen.getvalue()
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    assert [line for line in plain.splitlines() if line != line.rstrip()] == []
    assert "\x1b[32mdone" in text and plain.splitlines()[2] == "queued"


def test_only_trailing_spaces_go() -> None:
    assert (
        output.without_trailing_spaces("a  b   \nc\x1b[1m  \x1b[0m\n") == "a  b\nc\x1b[1m\x1b[0m\n"
    )
