"""The classic retry loop end to end: the installed ``aictl workflow execute`` drives the real
Claude Code CLI against ``aictl.model_server``; the implement step's tests fail, the fix step
is given the failure output, its edit makes the tests pass, and the loop ends by success.

The model server answers every run with the same script (read the file, replace ``TODO`` with
``TODO hello``), so each run really edits the file once more: the policy's test command wants
two hellos, which only the fix step's run produces.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from aictl.model_server import serve
from tests.real_claude import claude_binary

pytestmark = pytest.mark.e2e

FLOW = """version: 1
name: implement-and-fix
inputs:
  feature: {required: true}
steps:
  - id: implement
    task:
      title: "Implement {{ inputs.feature }}"
      description: Add a hello to src/greeting.txt.
      paths: ["src/**"]
    on_failure: continue
  - id: fixing
    needs: [implement]
    when: steps.implement.tests == "failed"
    loop:
      max: 3
      until: steps.fix.tests == "passed"
      steps:
        - id: fix
          task:
            title: "Fix the failing tests (round {{ iteration }})"
            description: |
              The test command failed with:
              {{ iteration == 1 ? steps.implement.tests_output : steps.fix.tests_output }}
            paths: ["src/**"]
          on_failure: continue
"""
TEST_COMMAND = (
    'grep -q "TODO hello hello" src/greeting.txt'
    ' || { echo "FAIL: wanted two hellos, got: $(cat src/greeting.txt)"; exit 1; }'
)


def script() -> list[dict[str, Any]]:
    """Each turn edits ``src/greeting.txt`` relative to the agent's working directory: its
    task's own worktree."""
    greeting = "src/greeting.txt"
    return [
        {"tool_use": {"name": "Read", "input": {"file_path": greeting}}},
        {
            "tool_use": {
                "name": "Edit",
                "input": {
                    "file_path": greeting,
                    "old_string": "TODO",
                    "new_string": "TODO hello",
                },
            }
        },
        {"text": "I added a hello.", "usage": {"input_tokens": 900, "output_tokens": 30}},
    ]


def run(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    found = shutil.which("aictl")
    assert found, "the aictl console script is not on PATH: run the tests with `make test`"
    return subprocess.run(
        [found, *args], cwd=root, env=env, capture_output=True, text=True, timeout=240, check=False
    )


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def test_implement_then_fix_until_the_tests_pass_with_the_real_claude(tmp_path: Path) -> None:
    binary = claude_binary()
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    greeting = root / "src" / "greeting.txt"
    greeting.write_text("greeting: TODO\n")
    (root / "flow.yaml").write_text(FLOW)
    git(root, "init", "-q")
    with serve(script()) as server:
        env = {k: v for k, v in os.environ.items() if k != "AICTL_DB"}
        env.update(
            {
                "AICTL_CLAUDE_BIN": str(binary),
                "ANTHROPIC_BASE_URL": server.url,
                "ANTHROPIC_API_KEY": "dummy-key-for-the-local-model-server",
                "CLAUDE_CODE_MAX_RETRIES": "0",
                "API_TIMEOUT_MS": "10000",
            }
        )
        assert run(root, env, "init").returncode == 0
        # isolation: worktree (the default): the fix step's worktree starts from the failed
        # implementation's commit, which is merged only with the fix
        policy = f"version: 1\nsettings:\n  test_command: '{TEST_COMMAND}'\n"
        (root / ".ai" / "policy.yaml").write_text(policy)
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "first")
        registered = run(root, env, "ai", "register", "claude-1", "--connector", "claude-code")
        assert registered.returncode == 0, registered.stderr
        created = run(root, env, "workflow", "create", "flow.yaml")
        assert created.returncode == 0, created.stderr
        executed = run(
            root, env, "workflow", "execute", "implement-and-fix", "--input", "feature=hello",
            "--json",
        )  # fmt: skip
        requests = server.requests
    assert executed.returncode == 0, executed.stderr
    report = json.loads(executed.stdout)
    assert report["status"] == "done", executed.stderr
    steps = {(step["step"], step["iteration"]): step for step in report["steps"]}
    assert steps[("implement", 0)]["status"] == "failed"
    assert steps[("implement", 0)]["outcome"]["tests"] == "failed"
    assert steps[("fix", 1)]["status"] == "done"
    assert steps[("fix", 1)]["outcome"]["tests"] == "passed"
    assert steps[("fix", 1)]["outcome"]["files_changed"] == ["src/greeting.txt"]
    assert steps[("fixing", 0)]["status"] == "done" and steps[("fixing", 0)]["rounds"] == 1
    assert ("fix", 2) not in steps
    assert greeting.read_text() == "greeting: TODO hello hello\n"  # both merged into main
    implement, fix = steps[("implement", 0)]["task"], steps[("fix", 1)]["task"]
    subjects = git(root, "log", "--format=%s", "-n", "3").splitlines()
    assert subjects[1:] == [
        f"task {fix}: Fix the failing tests (round 1)",
        f"task {implement}: Implement hello",
    ]
    assert subjects[0].startswith(f"Merge task {fix} ")
    # The fix step's prompt carried the failure output of the implement step's tests.
    prompts = [json.dumps(body["messages"][0]) for body in requests if body.get("tools")]
    fix_prompts = [text for text in prompts if "Fix the failing tests (round 1)" in text]
    assert fix_prompts and "FAIL: wanted two hellos, got: greeting: TODO hello" in fix_prompts[0]
    assert "tool Edit" in executed.stderr  # live progress from the agent's stream
