"""A conversation with a child over a stdin kept open (``InputChannel``), with real processes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from connectors.process import InputChannel, run_process

# Echoes each line back upper-cased until stdin closes, then says how many it read.
ECHO = (
    "import sys\n"
    "n = 0\n"
    "for line in sys.stdin:\n"
    "    n += 1\n"
    "    print(line.strip().upper(), flush=True)\n"
    "print(f'read {n}', flush=True)\n"
)


def test_on_line_can_answer_the_child_through_the_channel(tmp_path: Path) -> None:
    channel = InputChannel()
    assert channel.send("first")  # before the start: it waits for the pipe
    seen: list[str] = []

    def on_line(line: str) -> None:
        seen.append(line)
        if line == "FIRST":
            channel.send("second")
        elif line == "SECOND":
            channel.close()  # the child then reaches EOF and ends

    outcome = run_process(
        [sys.executable, "-c", ECHO],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        channel=channel,
        idle_timeout=30,
        total_timeout=60,
        on_line=on_line,
    )
    assert outcome.exit_code == 0
    assert seen == ["FIRST", "SECOND", "read 2"]
    assert channel.closed and not channel.send("too late")


def test_a_child_that_stops_reading_makes_send_return_false(tmp_path: Path) -> None:
    channel = InputChannel()
    outcome = run_process(
        [sys.executable, "-c", "import os; os.close(0); print('closed', flush=True)"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        channel=channel,
        idle_timeout=30,
        total_timeout=60,
    )
    assert outcome.exit_code == 0
    assert channel.send("anyone?") is False  # closed by the runner when the child ended


def test_stdin_text_and_a_channel_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        run_process(
            ["true"],
            cwd=tmp_path,
            env={},
            stdin_text="x",
            channel=InputChannel(),
            idle_timeout=None,
            total_timeout=None,
        )
