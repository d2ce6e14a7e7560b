"""`make demo` works: docs/demo.sh runs to its end with the installed `aictl`, the real
`claude` and the local model server, and shows what it says it shows. (It broke once,
silently, when `task evidence --json` renamed its `task` key to `task_id`.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_runs_to_the_end_and_shows_each_part(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path), "NO_COLOR": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for name in ("AICTL_DB", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        env.pop(name, None)
    done = subprocess.run(
        ["bash", str(ROOT / "docs" / "demo.sh")],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    shown = done.stdout + done.stderr
    assert done.returncode == 0, shown[-3000:]
    assert "Traceback" not in shown
    # every task done, each agent's change read from git, every worktree merged and pruned
    evidence = re.findall(
        r"^  task (\d+): agent success, \d+ turns, \$\d+\.\d{4}; files changed: (\S+)", shown, re.M
    )
    assert sorted(int(task) for task, _ in evidence) == list(range(1, 9)), shown[-3000:]
    assert all(files != "none" for _, files in evidence)
    assert len(re.findall(r"^removed: \.ai/worktrees/task-\d+-1 ", shown, re.M)) == 8
    assert re.search(r"require_approval\s+project:migrations-need-approval", shown)
    assert re.search(r"^audit log intact: \d+ rows", shown, re.M)
    assert list(tmp_path.glob("aictl-demo.*")) == [], "the demo left its throw-away folder"
