"""Leases of agents as peers, with the real `claude`: a session that dies or stops loses its
lease after the TTL, and a token that is guessed or stale is refused (issue 13's proofs).

Each agent has its own scripted model server, so one can stop where the test wants while the
other goes on. Leases last 3 s (``lease_ttl``); the MCP server renews them every second while
its session lives. Under CI a missing binary fails these tests (``claude_binary``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aictl.model_server import serve
from tests.e2e.test_execute import Repo, wait_for
from tests.e2e.test_peers_claude import agent, finish, setup, tool

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TTL = "settings:\n  lease_ttl: 3s\n"
FINISH_TASK_1 = [
    tool("mcp__aictl__claim"),
    tool("mcp__aictl__complete", task=1, result="finished by b"),
    {"text": "done"},
]


def expiry(repo: Repo, task_id: int) -> datetime:
    return datetime.fromisoformat(repo.task(task_id)["lease_expires_at"].replace("Z", "+00:00"))


def wait_past(moment: datetime) -> None:
    """Sleep until the wall clock is past ``moment`` (the installed aictl reads that clock)."""
    while (left := (moment - datetime.now(UTC)).total_seconds()) > -0.2:
        time.sleep(max(left + 0.3, 0.05))


def holds(repo: Repo, task_id: int, agent_name: str) -> bool:
    task = repo.task(task_id)
    return bool(task["status"] == "running" and task["lease_holder"] == agent_name)


def mcp_server_of(session: int) -> int:
    """The pid of the ``aictl mcp serve`` that Claude Code started in process group
    ``session`` (the agent runs in a session of its own)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            words = (entry / "cmdline").read_bytes().split(b"\0")
            if b"mcp" in words and b"serve" in words and os.getpgid(int(entry.name)) == session:
                return int(entry.name)
    raise AssertionError(f"no `aictl mcp serve` in process group {session}")


def tool_results(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        block
        for line in lines
        if line.get("type") == "user"
        for block in line["message"]["content"]
        if isinstance(block, dict) and block.get("type") == "tool_result"
    ]


def completions(repo: Repo, task_id: int) -> list[dict[str, Any]]:
    records = json.loads(repo.aictl("audit", "log", "--json").stdout)
    return [r for r in records if r["kind"] == "task.completed" and r["task_id"] == task_id]


def test_a_killed_session_loses_its_lease_and_another_agent_finishes_once(
    tmp_path: Path,
) -> None:
    first_script = [tool("mcp__aictl__claim"), {"stall": True}]  # claims, then hangs
    with serve(first_script) as first, serve(FINISH_TASK_1) as second:
        repo = setup(tmp_path, first.url, TTL)
        assert repo.aictl("task", "create", "api", "--path", "src/api/**").returncode == 0
        doomed = agent(repo, tmp_path / "home-a", "a")
        wait_for(doomed, lambda: holds(repo, 1, "a"), "agent a's claim")
        mcp_server_of(doomed.pid)  # it runs in the session's process group: the kill hits it
        os.killpg(doomed.pid, signal.SIGKILL)  # the session and its MCP server, no goodbye
        doomed.communicate()
        last = expiry(repo, 1)
        wait_past(last)
        task = repo.task(1)
        assert (task["lease_holder"], expiry(repo, 1)) == ("a", last), "nobody renewed it"
        lines = finish(agent(repo, tmp_path / "home-b", "b", second.url))
    task = repo.task(1)
    assert (task["status"], task["lease_holder"], task["result"]) == ("done", "b", "finished by b")
    assert task["lease_epoch"] == 2 and task["attempts"] == 2
    assert not any(r.get("is_error") for r in tool_results(lines)), tool_results(lines)
    assert len(completions(repo, 1)) == 1


def test_a_guessed_or_stale_token_is_refused_through_mcp_and_the_cli(tmp_path: Path) -> None:
    script = [
        tool("mcp__aictl__complete", task=1, result="not mine"),
        tool("mcp__aictl__release", task=1),
        {"text": "refused"},
    ]
    with serve(script) as server:
        repo = setup(tmp_path, server.url, TTL)
        assert repo.aictl("task", "create", "api", "--path", "src/api/**").returncode == 0
        claimed = repo.aictl("task", "claim", "1", "--as", "other", "--ttl", "10m", "-q")
        assert claimed.returncode == 0, claimed.stderr
        token = claimed.stdout.strip()
        lines = finish(agent(repo, tmp_path / "home", "intruder"))
        refusals = [r for r in tool_results(lines) if r.get("is_error")]
        assert len(refusals) == 2 and all("exit 4" in json.dumps(r) for r in refusals), lines
        task_id, epoch, secret = token.split(":")
        for guess in (f"{task_id}:{epoch}", f"{task_id}:{epoch}:{secret[::-1]}"):
            refused = repo.aictl("task", "complete", "1", "--lease", guess)
            assert refused.returncode == 4, refused.stderr
        assert repo.aictl("task", "release", "1", "--lease", token).returncode == 0
        again = repo.aictl("task", "claim", "1", "--as", "other", "-q")
        assert again.returncode == 0 and again.stdout.strip() != token
        stale = repo.aictl("task", "complete", "1", "--lease", token, "--result", "stale")
        assert stale.returncode == 4 and "stale" in stale.stderr
    task = repo.task(1)
    assert (task["status"], task["lease_holder"], task["lease_epoch"]) == ("claimed", "other", 2)
    assert task["result"] is None and not completions(repo, 1)


def test_a_session_paused_past_its_ttl_has_its_late_completion_refused(tmp_path: Path) -> None:
    script = [
        tool("mcp__aictl__claim"),
        tool("Bash", command="cat gate", description="wait"),  # read-only: allowed under -p
        tool("mcp__aictl__complete", task=1, result="late"),
        {"text": "done"},
    ]
    with serve(script) as server:
        repo = setup(tmp_path, server.url, TTL)
        assert repo.aictl("task", "create", "api", "--path", "src/api/**").returncode == 0
        gate = repo.root / "gate"  # a FIFO: `cat` waits in it until the test writes
        os.mkfifo(gate)
        run = agent(repo, tmp_path / "home", "sleeper")
        wait_for(run, lambda: holds(repo, 1, "sleeper"), "the sleeper's claim")
        paused = mcp_server_of(run.pid)
        os.kill(paused, signal.SIGSTOP)  # a paused process: no heartbeat, no answer
        try:
            wait_past(expiry(repo, 1))
            taken = repo.aictl("task", "claim", "1", "--as", "other", "-q")
            assert taken.returncode == 0, "the paused session's lease expired: " + taken.stderr
        finally:
            os.kill(paused, signal.SIGCONT)
        open_gate(gate, run)
        lines = finish(run)
    late = [r for r in tool_results(lines) if r.get("is_error")]
    assert len(late) == 1 and "exit 4" in json.dumps(late[0]), tool_results(lines)
    task = repo.task(1)
    assert (task["status"], task["lease_holder"], task["lease_epoch"]) == ("claimed", "other", 2)
    assert task["result"] is None and not completions(repo, 1)


def open_gate(gate: Path, run: subprocess.Popen[str]) -> None:
    """Let the agent's ``cat`` go on: open the FIFO for writing once it reads, then close."""
    deadline = time.monotonic() + 60
    while True:
        try:
            descriptor = os.open(gate, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as error:  # ENXIO: nobody reads yet
            assert error.errno == errno.ENXIO and run.poll() is None, error
            assert time.monotonic() < deadline, "the agent never waited at the gate"
            time.sleep(0.05)
            continue
        os.write(descriptor, b"go\n")
        os.close(descriptor)
        return
