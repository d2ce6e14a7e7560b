"""The README's quick start works as written: its shell blocks run, line by line, with the
installed `aictl` in a fresh git repository, and every line exits as its comment says."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXIT = re.compile(r"\s#\s*exit (\d+)\b")
HEREDOC = re.compile(r"<<'?(\w+)'?")


def quick_start_blocks() -> list[tuple[int, str]]:
    """(first line number, body) of each ```sh block of the README's "Quick start" section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Quick start")
    end = text.index("\n## ", start + 1)
    return [
        (text.count("\n", 0, start + match.start(1)) + 1, match.group(1))
        for match in re.finditer(r"```sh\n(.*?)```", text[start:end], re.DOTALL)
    ]


def as_script(blocks: list[tuple[int, str]]) -> str:
    """A bash script that stops at the first line whose exit differs from the README's word:
    0 unless the line's comment starts with `exit N`."""
    out = ["set -u"]
    for first, body in blocks:
        lines = body.splitlines()
        index = 0
        while index < len(lines):
            line = lines[index]
            number = first + index
            index += 1
            command = re.split(r"\s+#", line, maxsplit=1)[0].strip()
            if not command or command.startswith("cd your-repo"):
                continue
            heredoc = HEREDOC.search(command)
            if heredoc:  # the body goes as it is, up to its terminator
                end = lines.index(heredoc.group(1), index)
                command = "\n".join([command, *lines[index : end + 1]])
                index = end + 1
            expected = EXIT.search(line)
            want = int(expected.group(1)) if expected else 0
            out.append(
                f"{command}\nrc=$?; if [ $rc -ne {want} ]; then "
                f"echo 'README line {number}: exit '$rc', documented {want}' >&2; exit 99; fi"
            )
    return "\n".join(out) + "\n"


def test_the_quick_start_runs_as_written(tmp_path: Path) -> None:
    aictl = shutil.which("aictl")
    assert aictl, "the aictl console script is not on PATH: run the tests with `make test`"
    blocks = quick_start_blocks()
    assert len(blocks) >= 2 and "aictl init" in blocks[0][1]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AICTL_")}
    env["AICTL_GLOBAL_POLICY"] = ""
    result = subprocess.run(
        ["bash", "-c", as_script(blocks)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    shown = subprocess.run(
        [aictl, "task", "list", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    statuses = {task["id"]: task["status"] for task in json.loads(shown.stdout)}
    assert statuses[1] == "done" and statuses[2] == "claimed"
    assert "lease 1:" not in result.stderr  # no lease error on the way


def test_a_line_that_exits_otherwise_than_documented_stops_the_script() -> None:
    script = as_script([(10, "true\nfalse   # exit 0 is what the README would claim\n")])
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 99 and "README line 11: exit 1, documented 0" in result.stderr
