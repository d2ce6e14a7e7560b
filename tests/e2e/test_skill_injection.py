"""Skills reach the model: the installed aictl runs the real Claude Code CLI against
``aictl.model_server`` for a task created with ``--skill``; the request the model server
received carries the skill's instructions and its script's output (appended to the system
prompt), and the user's own Claude Code configuration is untouched.

Under CI a missing binary fails these tests; locally they are skipped (``claude_binary``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aictl.model_server import serve
from tests.real_claude import claude_binary

pytestmark = pytest.mark.e2e

SCRIPT: list[dict[str, Any]] = [{"text": "Done, following the skill."}]
MARKER = "SKILL-MARKER-7f3a: run `make migrate` before touching db/"


def run(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    found = shutil.which("aictl")
    assert found, "the aictl console script is not on PATH: run the tests with `make test`"
    return subprocess.run(
        [found, *args], cwd=root, env=env, capture_output=True, text=True, timeout=90, check=False
    )


def setup(tmp_path: Path, url: str) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "repo"
    root.mkdir()
    home = tmp_path / "user-home"
    (home / ".claude").mkdir(parents=True)
    (home / ".claude" / "settings.json").write_text('{"theme": "dark"}\n')
    env = {k: v for k, v in os.environ.items() if k != "AICTL_DB"}
    env.update(
        {
            "HOME": str(home),
            "AICTL_CLAUDE_BIN": str(claude_binary()),
            "ANTHROPIC_BASE_URL": url,
            "ANTHROPIC_API_KEY": "dummy-key-for-the-local-model-server",
            "CLAUDE_CODE_MAX_RETRIES": "0",
            "API_TIMEOUT_MS": "10000",
        }
    )
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    (root / "README.md").write_text("repo\n")
    assert run(root, env, "init").returncode == 0
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "first"], cwd=root, check=True)
    registered = run(root, env, "ai", "register", "claude-1", "--connector", "claude-code")
    assert registered.returncode == 0, registered.stderr
    return root, env


def system_text(body: dict[str, Any]) -> str:
    """The system prompt of a Messages API request: a string or a list of text blocks."""
    system = body.get("system") or ""
    if isinstance(system, str):
        return system
    return "\n".join(block.get("text", "") for block in system if isinstance(block, dict))


def write_skill(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "skill.yaml").write_text(
        "name: db-migrations\nversion: '1.0.0'\ndescription: How this repository migrates\n"
        f"script:\n  command: {json.dumps([sys.executable, 'notes.py'])}\n  timeout: 20s\n"
    )
    (folder / "instructions.md").write_text(MARKER + "\n")
    (folder / "notes.py").write_text(
        "import json, sys\n"
        "task = json.load(sys.stdin)['task']\n"
        "print(f\"SCRIPT-OUTPUT for task {task['id']}: 3 pending migrations\")\n"
    )


def test_a_tasks_skill_is_in_the_request_the_model_receives(tmp_path: Path) -> None:
    with serve(SCRIPT) as server:
        root, env = setup(tmp_path, server.url)
        write_skill(tmp_path / "skill-src")
        added = run(root, env, "skill", "add", str(tmp_path / "skill-src"))
        assert added.returncode == 0, added.stderr
        made = run(root, env, "task", "create", "Add a column", "--skill", "db-migrations")
        assert made.returncode == 0, made.stderr
        ran = run(root, env, "task", "execute", "--json")
        requests = server.requests
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["outcome"] == "done"
    agent_requests = [body for body in requests if body.get("tools")]
    assert agent_requests
    system = system_text(agent_requests[0])
    assert MARKER in system, system[-2000:]
    assert "## Skill: db-migrations 1.0.0" in system
    assert "SCRIPT-OUTPUT for task 1: 3 pending migrations" in system
    # the prompt itself is unchanged: skills ride in the system prompt
    first_user = json.dumps(agent_requests[0]["messages"][0])
    assert MARKER not in first_user and "Add a column" in first_user
    evidence = json.loads(run(root, env, "task", "evidence", "1", "--json").stdout)
    assert evidence["skills"]["skills"] == [
        {"name": "db-migrations", "version": "1.0.0", "scope": ""}
    ]
    assert evidence["skills"]["scripts"][0]["status"] == "ok"
    # the user's Claude Code configuration is untouched, and no skill was written into it
    user_claude = tmp_path / "user-home" / ".claude"
    assert sorted(p.name for p in user_claude.iterdir()) == ["settings.json"]
    assert (user_claude / "settings.json").read_text() == '{"theme": "dark"}\n'


def test_a_task_whose_skill_is_disabled_is_not_routed(tmp_path: Path) -> None:
    with serve(SCRIPT) as server:
        root, env = setup(tmp_path, server.url)
        write_skill(tmp_path / "skill-src")
        assert run(root, env, "skill", "add", str(tmp_path / "skill-src")).returncode == 0
        assert run(root, env, "skill", "disable", "db-migrations").returncode == 0
        made = run(root, env, "task", "create", "Add a column", "--skill", "db-migrations")
        assert made.returncode == 0, made.stderr
        ran = run(root, env, "task", "execute")
        requests = server.requests
    assert ran.returncode == 5, ran.stderr
    assert "claude-1: skill db-migrations is not enabled" in ran.stderr
    assert [body for body in requests if body.get("tools")] == []
