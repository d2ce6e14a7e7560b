"""`aictl task evidence` in text: changes outside the task's paths come first, not only in JSON."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from collections.abc import Callable

from aictl.domain.diffs import diff_stat, stat_lines
from aictl.workspace import Workspace
from tests.cli.conftest import Result

EVIDENCE = {
    "task_id": 1,
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
    agent = {
        "status": "success",
        "num_turns": 2,
        "total_cost_usd": 0.012799999999999999,
        "session_id": "s",
    }
    stored(workspace, {**EVIDENCE, "agent": agent, "tests": {"status": "not run"}})
    lines = aictl("task", "evidence", "1")[1].splitlines()
    assert "turns: 2  cost: $0.0128  session: s" in lines
    assert "tests: not run" in lines and "None" not in "\n".join(lines)


DIFF = """\
diff --git a/src/a.py b/src/a.py
index 1111111..2222222 100644
--- a/src/a.py
+++ b/src/a.py
@@ -1,3 +1,3 @@
 keep
-old line
+new line
+-- added line that starts with dashes
diff --git a/src/new.py b/src/new.py
new file mode 100644
--- /dev/null
+++ b/src/new.py
@@ -0,0 +1 @@
+print('hi')
diff --git a/img.png b/img.png
Binary files a/img.png and b/img.png differ
"""


def test_diff_stat_counts_hunk_lines_per_file() -> None:
    changes = diff_stat(DIFF)
    assert [(c.path, c.insertions, c.deletions, c.binary) for c in changes] == [
        ("src/a.py", 2, 1, False),
        ("src/new.py", 1, 0, False),
        ("img.png", 0, 0, True),
    ]
    assert stat_lines(changes) == [
        " src/a.py   | 3 ++-",
        " src/new.py | 1 +",
        " img.png    | Bin",
        " 3 files changed, 3 insertions(+), 1 deletion(-)",
    ]


def test_evidence_stat_replaces_the_diff(
    aictl: Callable[..., Result], workspace: Workspace
) -> None:
    aictl("task", "create", "t", "--path", "src/**")
    stored(workspace, {**EVIDENCE, "diff": DIFF})
    out = aictl("task", "evidence", "1", "--stat")[1]
    assert " src/a.py   | 3 ++-" in out.splitlines() and "+new line" not in out
    data = json.loads(aictl("task", "evidence", "1", "--stat", "--json")[1])
    assert data["stat"][0] == {"path": "src/a.py", "insertions": 2, "deletions": 1, "binary": False}
    plain = aictl("task", "evidence", "1")[1]
    assert "+new line\n" in plain and "\x1b[" not in plain  # not a terminal: no colour


def on_a_terminal(workspace: Workspace, *args: str, **env: str) -> str:
    """What `aictl ARGS` prints on a pseudo-terminal (a real one, not a pipe)."""
    leader, follower = pty.openpty()
    environment = {**os.environ, "AICTL_DB": str(workspace.db_path), **env}
    if "NO_COLOR" not in env:
        environment.pop("NO_COLOR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "aictl", *args],
        cwd=workspace.root,
        stdout=follower,
        stderr=subprocess.DEVNULL,
        env=environment,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=60) == 0
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_the_diff_is_coloured_on_a_terminal_unless_no_color(
    aictl: Callable[..., Result], workspace: Workspace
) -> None:
    aictl("task", "create", "t", "--path", "src/**")
    stored(workspace, {**EVIDENCE, "diff": DIFF})
    shown = on_a_terminal(workspace, "task", "evidence", "1")
    assert "\x1b[32m+new line\x1b[0m\n" in shown and "\x1b[31m-old line\x1b[0m\n" in shown
    assert "\x1b[36m@@ -1,3 +1,3 @@\x1b[0m" in shown and "\n keep\n" in shown
    plain = on_a_terminal(workspace, "task", "evidence", "1", NO_COLOR="1")
    assert "+new line\n" in plain and "\x1b[32m" not in plain
