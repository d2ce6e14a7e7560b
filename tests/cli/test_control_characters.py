"""Text from the database never drives the terminal: a title with ANSI escapes (or a bell, a
carriage return, a bidirectional override) is shown with those characters escaped, in every
human output path. JSON keeps the exact value (JSON escapes them itself)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from aictl.cli import output
from aictl.daemon.jsonlog import JsonLog
from aictl.daemon.notify import ConsoleChannel, Notice
from tests.cli.conftest import Result

HOSTILE = "ok\x1b[2J\x1b]0;pwned\x07\rfake\u202egnp.exe\x9b31m"


def assert_inert(text: str) -> None:
    for char in ("\x1b", "\x07", "\r", "\u202e", "\x9b"):
        assert char not in text, repr(text)


def test_a_hostile_title_is_escaped_in_tables_details_and_lines(
    aictl: Callable[..., Result],
) -> None:
    code, out, err = aictl("task", "create", HOSTILE)
    assert code == 0, err
    assert_inert(out)
    for args in (["task", "list"], ["task", "show", "1"], ["audit", "log"]):
        code, out, err = aictl(*args)
        assert code == 0, err
        assert_inert(out)
        assert_inert(err)
    _, out, _ = aictl("task", "list")
    assert "ok\\x1b[2J" in out  # visible, escaped
    code, out, _ = aictl("task", "show", "1", "--json")
    assert json.loads(out)["title"] == HOSTILE  # data is exact


def test_errors_and_notes_are_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    output.error(f"no task {HOSTILE}", f"hint {HOSTILE}")
    output.note(HOSTILE)
    output.line(f"multi\nline\tand {HOSTILE}")
    out, err = capsys.readouterr()
    assert_inert(out)
    assert_inert(err)
    assert out.startswith("multi\nline\tand ok\\x1b")  # newlines and tabs are kept
    assert "\\u202e" in err


def test_the_daemons_console_escapes_titles(tmp_path: Path) -> None:
    stream = io.StringIO()
    ConsoleChannel(stream).send(Notice("task.done", f"task 1 {HOSTILE} done", "now"))
    echo = io.StringIO()
    journal = JsonLog(tmp_path / "log.jsonl", echo=echo)
    journal.info("task.done", f"task 1 {HOSTILE} done")
    journal.close()
    assert_inert(stream.getvalue())
    assert_inert(echo.getvalue())
    assert "ok\\x1b[2J" in stream.getvalue()
