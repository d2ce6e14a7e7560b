"""`aictl task evidence` in text: changes outside the task's paths come first, not only in JSON."""

from __future__ import annotations

import json
from collections.abc import Callable

from aictl.workspace import Workspace
from tests.cli.conftest import Result

EVIDENCE = {
    "task": 1,
    "ai": "claude-1",
    "attempt": 1,
    "base_commit": "abc123",
    "files_changed": ["src/a.py"],
    "changes_outside_paths": ["README.md", "other/bad.txt"],
    "changes_of_other_tasks": {"docs/b.md": [2]},
    "diff": "--- a/src/a.py\n+++ b/src/a.py\n",
    "tests": {"status": "passed", "exit_code": 0},
    "agent": {"status": "success", "num_turns": 2, "total_cost_usd": 0.01, "session_id": "s"},
}


def stored(workspace: Workspace, evidence: dict[str, object]) -> None:
    folder = workspace.state_dir / "runs" / "1" / "1"
    folder.mkdir(parents=True)
    (folder / "evidence.json").write_text(json.dumps(evidence))


def test_outside_changes_are_shown_first(
    aictl: Callable[..., Result], workspace: Workspace
) -> None:
    aictl("task", "create", "t", "--path", "src/**")
    stored(workspace, EVIDENCE)
    code, out, _ = aictl("task", "evidence", "1")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "CHANGED OUTSIDE THE TASK'S PATHS (2): README.md, other/bad.txt"
    assert "changes in paths of other tasks running at the time: docs/b.md (task 2)" in lines
    assert "files changed: src/a.py" in lines
    assert lines.index("files changed: src/a.py") > 0


def test_without_outside_changes_the_text_says_nothing_about_them(
    aictl: Callable[..., Result], workspace: Workspace
) -> None:
    aictl("task", "create", "t", "--path", "src/**")
    stored(workspace, {**EVIDENCE, "changes_outside_paths": [], "changes_of_other_tasks": {}})
    out = aictl("task", "evidence", "1")[1]
    assert out.startswith("Task 1 attempt 1 by claude-1\n")
    assert "OUTSIDE" not in out and "other tasks" not in out


def test_cost_is_money_and_tests_not_run_show_no_exit_code(
    aictl: Callable[..., Result], workspace: Workspace
) -> None:
    aictl("task", "create", "t", "--path", "src/**")
    agent = {**EVIDENCE["agent"], "total_cost_usd": 0.012799999999999999}  # type: ignore[dict-item]
    stored(workspace, {**EVIDENCE, "agent": agent, "tests": {"status": "not run"}})
    lines = aictl("task", "evidence", "1")[1].splitlines()
    assert "turns: 2  cost: $0.0128  session: s" in lines
    assert "tests: not run" in lines and "None" not in "\n".join(lines)
