"""The Claude Code connector driving the real ``claude`` binary against ``aictl.model_server``.

Under CI a missing binary fails these tests; locally they are skipped with a hint
(``claude_binary`` from the model-server tests).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from aictl.model_server import serve
from connectors import RunRequest, RunResult
from connectors.claude_code import ClaudeCodeConnector
from connectors.claude_code.stream import AssistantTurn
from tests.real_claude import VERSION, claude_binary

pytestmark = pytest.mark.e2e


def run_connector(
    tmp_path: Path, server_url: str, prompt: str, **overrides: Any
) -> tuple[RunResult, ClaudeCodeConnector]:
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    base_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "ANTHROPIC_BASE_URL": server_url,
        "ANTHROPIC_API_KEY": "dummy-key-for-the-local-model-server",
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "API_TIMEOUT_MS": "10000",
        "AWS_SECRET_ACCESS_KEY": "must-not-reach-the-agent",
    }
    base_env.update(overrides.pop("env", {}))
    settings: dict[str, Any] = {
        "permission_mode": "acceptEdits",
        "max_turns": 3,
        "idle_timeout": 30.0,
        "total_timeout": 60.0,
        "grace": 2.0,
        **overrides,
    }
    request = RunRequest(
        prompt=prompt,
        cwd=repo,
        run_dir=tmp_path / "run",
        base_env=base_env,
        allow_env=("CLAUDE_CODE_MAX_RETRIES", "API_TIMEOUT_MS"),
        **settings,
    )
    connector = ClaudeCodeConnector(environ={"AICTL_CLAUDE_BIN": str(claude_binary())})
    return connector.run(request), connector


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_scripted_write_lands_and_the_run_is_a_success(tmp_path: Path) -> None:
    content = "hello from the connector\n"
    script: list[dict[str, Any]] = [
        {"tool_use": {"name": "Write", "input": {"file_path": "hello.txt", "content": content}}},
        {"text": "I wrote hello.txt.", "usage": {"input_tokens": 1200, "output_tokens": 40}},
    ]
    events: list[object] = []
    with serve(script) as server:
        result, connector = run_connector(
            tmp_path, server.url, "Write hello.txt.", on_event=events.append
        )
        requests = server.requests
    assert (tmp_path / "repo" / "hello.txt").read_text() == content
    assert result.ok, result
    assert result.session_id and result.num_turns == 2
    assert result.total_cost_usd is not None and result.total_cost_usd > 0
    assert result.usage["output_tokens"] > 0 and result.permission_denials == ()
    assert result.result_text == "I wrote hello.txt."
    parsed = connector.last_parsed
    assert parsed is not None and parsed.init is not None
    assert parsed.init.session_id == result.session_id and "Write" in parsed.init.tools
    assert [use.name for use in parsed.tool_uses] == ["Write"]
    assert any(isinstance(event, AssistantTurn) for event in events)
    assert "Write hello.txt." in str(requests[0]["messages"])  # the prompt went on stdin


def test_a_stalled_stream_is_killed_by_the_idle_timeout(tmp_path: Path) -> None:
    with serve([{"stall": True}]) as server:
        result, connector = run_connector(
            tmp_path,
            server.url,
            "Write hello.txt.",
            idle_timeout=3.0,
            env={"API_TIMEOUT_MS": "600000"},
        )
    assert (result.status, result.reason, result.retryable) == ("failed", "idle_timeout", True)
    ended = connector.last_outcome
    assert ended is not None and ended.timed_out == "idle"
    assert group_gone(ended.pid) and not ended.group_left  # no process of the run is left


def test_max_turns_reached_is_a_failure_that_says_so(tmp_path: Path) -> None:
    script = [
        {"tool_use": {"name": "Write", "input": {"file_path": f"f{n}.txt", "content": "x"}}}
        for n in range(4)
    ]
    with serve(script) as server:
        result, _ = run_connector(tmp_path, server.url, "Keep writing.", max_turns=1)
    assert (result.status, result.reason, result.retryable) == ("failed", "max_turns", False)
    assert "max turns" in result.detail and result.exit_code == 1


def test_an_api_500_is_a_retryable_api_error(tmp_path: Path) -> None:
    script = [{"error": {"status": 500, "type": "api_error", "message": "scripted failure"}}]
    with serve(script) as server:
        result, _ = run_connector(tmp_path, server.url, "Write hello.txt.")
    assert (result.status, result.reason, result.retryable) == ("failed", "api_error", True)
    assert result.api_error_status == 500 and "scripted failure" in result.detail
    assert result.exit_code == 1  # and yet the result line's subtype is "success"


def test_a_missing_binary_is_a_clear_error_naming_where_it_looked(tmp_path: Path) -> None:
    nowhere = tmp_path / "no" / "claude"
    configured = ClaudeCodeConnector(environ={"AICTL_CLAUDE_BIN": str(nowhere)}).detect()
    assert configured.binary is None and f"AICTL_CLAUDE_BIN={nowhere}" in str(configured.error)
    searched = ClaudeCodeConnector(
        environ={"PATH": f"{tmp_path / 'bin'}:/nonexistent"}, bundled=tmp_path / "sdk/claude"
    ).detect()
    assert searched.error is not None and "not found" in searched.error
    for place in (tmp_path / "bin" / "claude", tmp_path / "sdk/claude"):
        assert str(place) in searched.error
    real = ClaudeCodeConnector(environ={"AICTL_CLAUDE_BIN": str(claude_binary())}).detect()
    assert real.ok and real.version == VERSION
    assert {"Bash", "Edit", "Read", "Write"} <= set(real.tools)  # from the init line
