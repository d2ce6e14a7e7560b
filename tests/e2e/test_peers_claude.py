"""Agents as peers with the real `claude`: a project set up by `aictl setup claude`, a
scripted model (``aictl.model_server``) that calls the aictl MCP tools by their names
(``mcp__aictl__<tool>``) and writes files; the hook decides each write.

Under CI a missing binary fails these tests; locally they are skipped (``claude_binary``).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from aictl.model_server import serve
from tests.e2e.test_execute import Repo, aictl_binary, make_repo
from tests.real_claude import claude_binary

pytestmark = pytest.mark.e2e


def tool(name: str, **arguments: Any) -> dict[str, Any]:
    return {"tool_use": {"name": name, "input": arguments}}


def agent(repo: Repo, home: Path, name: str, url: str | None = None) -> subprocess.Popen[str]:
    """A Claude Code session started as a person would, in the project, named ``name``, with
    nothing but the project's settings (no ``--allowedTools``), in a process group of its own;
    ``url``: another model server than the repository's."""
    home.mkdir()
    env = dict(repo.env)
    env.update(
        {
            "AICTL_AGENT": name,
            "HOME": str(home),
            "CLAUDE_CONFIG_DIR": str(home / ".claude"),
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
        }
    )
    if url is not None:
        env["ANTHROPIC_BASE_URL"] = url
    return subprocess.Popen(
        [str(claude_binary()), "-p", "--output-format=stream-json", "--verbose",
         "--permission-mode=acceptEdits", "--max-turns=8", "--", "work on the next task"],
        cwd=repo.root, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip


def finish(run: subprocess.Popen[str]) -> list[dict[str, Any]]:
    out, err = run.communicate(timeout=240)
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert any(line.get("type") == "result" for line in lines), err[-2000:]
    return lines


def setup(tmp_path: Path, url: str, policy: str = "") -> Repo:
    """A git repository set up by ``aictl setup claude`` as a user runs it."""
    repo = make_repo(tmp_path, url, policy, register=False)
    command = aictl_binary()  # the hooks run the aictl under test
    dry = repo.aictl("setup", "claude", "--command", command, "--dry-run")
    assert dry.returncode == 0 and '"mcp__aictl"' in dry.stdout, dry.stderr
    assert "+/.claude/settings.local.json" in dry.stdout  # the line for .git/info/exclude
    done = repo.aictl("setup", "claude", "--command", command)
    assert done.returncode == 0, done.stderr
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"],
                            cwd=repo.root, capture_output=True, text=True, check=True)  # fmt: skip
    assert ".mcp.json" in status.stdout and "settings.local.json" not in status.stdout
    return repo


def test_an_agent_claims_writes_inside_is_denied_outside_and_completes(tmp_path: Path) -> None:
    script = [
        tool("mcp__aictl__claim"),
        tool("Write", file_path="src/api/a.py", content="x = 1\n"),
        tool("Write", file_path="src/web/x.ts", content="stolen\n"),
        tool("mcp__aictl__complete", task=1, result="api done"),
        {"text": "done"},
    ]
    with serve(script) as server:
        repo = setup(tmp_path, server.url)
        assert repo.aictl("task", "create", "api", "--path", "src/api/**").returncode == 0
        assert repo.aictl("task", "create", "web", "--path", "src/web/**").returncode == 0
        assert repo.aictl("task", "claim", "2", "--as", "other", "-q").returncode == 0
        lines = finish(agent(repo, tmp_path / "home", "a1"))
    assert (repo.root / "src" / "api" / "a.py").read_text() == "x = 1\n"
    assert not (repo.root / "src" / "web" / "x.ts").exists()
    task = repo.task(1)
    assert (task["status"], task["lease_holder"], task["result"]) == ("done", "a1", "api done")
    results = json.dumps([line for line in lines if line.get("type") == "user"])
    assert "locked by task 2" in results and "held by other" in results
    records = json.loads(repo.aictl("audit", "log", "--json").stdout)
    denied = [
        r for r in records if r["kind"] == "policy.decision" and r["data"].get("effect") == "deny"
    ]
    assert denied, "the denied write has a decision record"


def test_two_agents_started_together_never_get_the_same_task(tmp_path: Path) -> None:
    script = [tool("mcp__aictl__claim"), {"text": "claimed"}]
    with serve(script) as server:
        repo = setup(tmp_path, server.url)
        for name in ("one", "two", "three"):
            assert repo.aictl("task", "create", name, "--path", f"{name}/**").returncode == 0
        runs = [agent(repo, tmp_path / f"home{n}", f"agent{n}") for n in (1, 2)]
        for run in runs:
            finish(run)
    holders = {repo.task(i)["lease_holder"] for i in (1, 2, 3)} - {None}
    claimed = [repo.task(i) for i in (1, 2, 3) if repo.task(i)["lease_holder"]]
    assert holders == {"agent1", "agent2"} and len(claimed) == 2
