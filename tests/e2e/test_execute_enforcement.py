"""Tool-level enforcement and the executor's limits, with the real Claude Code CLI.

Each tool call the agent makes is put to aictl while the agent waits (the stdio permission
protocol): a write outside the task's paths, or a call a policy rule denies, never runs, and
every decision is a record. Under CI a missing binary fails these tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from aictl.model_server import serve
from tests.e2e.test_execute import Repo, aictl_binary, create, make_repo

pytestmark = pytest.mark.e2e


def decisions(repo: Repo, action: str) -> list[dict[str, Any]]:
    shown = repo.aictl("policy", "decisions", "--task", "1", "--action", action, "--json")
    assert shown.returncode == 0, shown.stderr
    records: list[dict[str, Any]] = json.loads(shown.stdout)
    return records


def test_a_write_outside_the_task_paths_is_denied_recorded_and_never_lands(
    tmp_path: Path,
) -> None:
    script: list[dict[str, Any]] = [
        {"tool_use": {"name": "Write", "input": {"file_path": "src/in.txt", "content": "in\n"}}},
        {"tool_use": {"name": "Write", "input": {"file_path": "docs/out.txt", "content": "x\n"}}},
        {"text": "I wrote both files."},  # the model's words are not evidence
    ]
    with serve(script) as server:
        # the shared tree: the allowed write lands in the user's tree as the agent makes it
        repo = make_repo(tmp_path, server.url, "settings:\n  isolation: shared\n")
        create(repo)  # paths: src/**
        ran = repo.aictl("task", "execute", "1", "--json")
    assert ran.returncode == 1, ran.stderr
    assert (repo.root / "src" / "in.txt").read_text() == "in\n"
    assert not (repo.root / "docs" / "out.txt").exists()
    assert not (repo.root / "docs").exists()
    task = repo.task(1)
    assert task["status"] == "failed" and "permission_denied" in task["failure_reason"]
    assert "denied Write" in ran.stderr and "docs/out.txt" in ran.stderr
    records = decisions(repo, "tool")
    assert [r["effect"] for r in records] == ["allow", "deny"] or [
        r["effect"] for r in reversed(records)
    ] == ["allow", "deny"]
    denied = next(r for r in records if r["effect"] == "deny")
    assert denied["rules"][0]["qualified_id"] == "aictl:task-paths"
    assert "docs/out.txt is outside task 1's paths (src/**)" in denied["rules"][0]["reason"]
    assert denied["lease_epoch"] == 1
    evidence = json.loads(repo.aictl("task", "evidence", "1", "--json").stdout)
    assert evidence["files_changed"] == ["src/in.txt"]
    assert evidence["tool_decisions"]["allowed"] == 1
    assert evidence["tool_decisions"]["denied"] == 1
    assert evidence["agent"]["permission_denials"][0]["tool_name"] == "Write"
    verified = repo.aictl("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_policy_rule_denies_a_shell_command_before_it_runs(tmp_path: Path) -> None:
    policy = (
        "rules:\n  - id: no-deleting\n    actions: [tool]\n"
        '    when: tool.name == "Bash" && get(tool.input, "command", "").contains("rm ")\n'
        "    effect: deny\n    reason: agents do not delete files here\n"
    )
    script: list[dict[str, Any]] = [
        {"tool_use": {"name": "Bash", "input": {"command": "rm -rf src", "description": "rm"}}},
        {"text": "Removed."},
    ]
    with serve(script) as server:
        repo = make_repo(tmp_path, server.url, policy)
        create(repo)
        ran = repo.aictl("task", "execute", "1")
    assert ran.returncode == 1, ran.stderr
    assert (repo.root / "src" / "keep.txt").read_text() == "kept\n"
    denied = [r for r in decisions(repo, "tool") if r["effect"] == "deny"]
    assert len(denied) == 1 and denied[0]["rules"][0]["qualified_id"] == "project:no-deleting"
    assert "agents do not delete files here" in ran.stderr


def test_accept_edits_in_policy_does_not_bypass_the_gate(tmp_path: Path) -> None:
    policy = "ais:\n  claude-1:\n    permission_mode: acceptEdits\n    allowed_tools: [Write]\n"
    script: list[dict[str, Any]] = [
        {"tool_use": {"name": "Write", "input": {"file_path": "top.txt", "content": "x\n"}}},
        {"text": "done"},
    ]
    with serve(script) as server:
        repo = make_repo(tmp_path, server.url, policy)
        create(repo)
        repo.aictl("task", "execute", "1")
    assert not (repo.root / "top.txt").exists()
    assert [r["effect"] for r in decisions(repo, "tool")] == ["deny"]


def processes_in(folder: Path) -> list[int]:
    """Processes whose working directory is ``folder`` (an agent left behind would be)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "cwd") == str(folder):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def agents_in(folder: Path) -> list[int]:
    """The Claude Code processes working in ``folder``."""
    found = []
    for pid in processes_in(folder):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"claude" in command:
            found.append(pid)
    return found


def test_a_silent_stream_is_killed_by_the_idle_timeout_leaving_no_process(
    tmp_path: Path,
) -> None:
    policy = "settings:\n  timeouts:\n    idle: 2s\n  retry_backoff: 1ms\n"
    with serve([{"stall": True}]) as server:
        repo = make_repo(tmp_path, server.url, policy)
        create(repo)
        started = time.monotonic()
        ran = repo.aictl("task", "execute", "1", "--json")
        elapsed = time.monotonic() - started
    assert ran.returncode == 6, ran.stderr  # queued again for a retry
    outcome = json.loads(ran.stdout)
    assert outcome["outcome"] == "requeued" and outcome["reason"].startswith("idle_timeout")
    assert elapsed < 55  # the stall itself would last until the server stops
    assert processes_in(repo.root) == []


def test_an_agent_dies_with_a_killed_aictl_and_the_task_can_be_done_again(
    tmp_path: Path,
) -> None:
    """SIGKILL gives aictl no chance to stop its agent: the kernel does (parent-death signal),
    so no agent runs on unsupervised. The lease then expires and another run does the task."""
    write = {"name": "Write", "input": {"file_path": "src/a.txt", "content": "a\n"}}
    # the shared tree: the agents are looked for by their working folder, the repository
    policy = "settings:\n  isolation: shared\n  lease_ttl: 2s\n"
    with serve([{"stall": True}]) as stalled:
        repo = make_repo(tmp_path, stalled.url, policy)
        create(repo)
        run = subprocess.Popen(
            [aictl_binary(), "task", "execute", "1"],
            cwd=repo.root,
            env=repo.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            # aictl's own git probes run in the repository too: wait for the agent itself,
            # which then waits on the stalled stream
            deadline = time.monotonic() + 60
            while not agents_in(repo.root) and time.monotonic() < deadline:
                assert run.poll() is None, f"aictl ended first, with exit code {run.returncode}"
                time.sleep(0.1)
            assert agents_in(repo.root), "the agent never started"
        finally:
            run.kill()
            run.wait()
        deadline = time.monotonic() + 30
        while processes_in(repo.root) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert processes_in(repo.root) == []  # the stall alone would keep it for minutes
    assert repo.task(1)["status"] == "running"
    time.sleep(2.5)  # the lease's TTL
    with serve([{"tool_use": write}, {"text": "done"}]) as server:
        repo.env["ANTHROPIC_BASE_URL"] = server.url
        ran = repo.aictl("task", "execute", "1")
    assert ran.returncode == 0, ran.stderr
    assert repo.task(1)["status"] == "done" and repo.task(1)["attempts"] == 2
    assert (repo.root / "src" / "a.txt").read_text() == "a\n"


def test_the_timeout_option_bounds_the_whole_run(tmp_path: Path) -> None:
    policy = "settings:\n  timeouts:\n    idle: 10m\n"
    with serve([{"stall": True}]) as server:
        repo = make_repo(tmp_path, server.url, policy)
        create(repo, "--max-attempts", "1")
        ran = repo.aictl("task", "execute", "1", "--timeout", "2s", "--json")
    assert ran.returncode == 1, ran.stderr
    assert json.loads(ran.stdout)["reason"].startswith("total_timeout")
    assert repo.task(1)["status"] == "failed"
    assert processes_in(repo.root) == []


def test_max_turns_reached_fails_the_task_with_that_reason(tmp_path: Path) -> None:
    policy = "ais:\n  claude-1:\n    max_turns: 1\n"
    write = {"name": "Write", "input": {"file_path": "src/a.txt", "content": "a\n"}}
    with serve([{"tool_use": write}, {"tool_use": write}, {"text": "done"}]) as server:
        repo = make_repo(tmp_path, server.url, policy)
        create(repo)
        ran = repo.aictl("task", "execute", "1")
    assert ran.returncode == 1
    task = repo.task(1)
    assert task["status"] == "failed" and task["failure_reason"].startswith("max_turns")
    assert task["attempts"] == 1  # not retryable


def test_two_tasks_on_disjoint_paths_execute_in_parallel_and_both_finish(
    tmp_path: Path,
) -> None:
    # Each agent writes its own file, then waits (a shell loop, allowed by the gate) until
    # both files exist: neither can finish unless both run at the same time.
    both = "out/1/result.txt out/2/result.txt"
    wait = f"for i in $(seq 600); do ls {both} >/dev/null 2>&1 && exit 0; sleep 0.1; done; exit 1"
    script: list[dict[str, Any]] = [
        {
            "tool_use": {
                "name": "Write",
                "input": {"file_path": "out/{task}/result.txt", "content": "task {task}\n"},
            }
        },
        {"tool_use": {"name": "Bash", "input": {"command": wait, "description": "wait"}}},
        {"text": "done"},
    ]
    with serve(script) as server:
        repo = make_repo(tmp_path, server.url)
        added = repo.aictl("ai", "register", "claude-2", "--connector", "claude-code")
        assert added.returncode == 0, added.stderr
        for number in (1, 2):
            made = repo.aictl("task", "create", f"part {number}", "--path", f"out/{number}/**")
            assert made.returncode == 0, made.stderr
        runs = [
            subprocess.Popen(
                [aictl_binary(), "task", "execute", str(number), "--ai", f"claude-{number}"],
                cwd=repo.root,
                env=repo.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for number in (1, 2)
        ]
        outputs = [run.communicate(timeout=120) for run in runs]
    for number, (run, (out, err)) in enumerate(zip(runs, outputs, strict=True), start=1):
        assert run.returncode == 0, f"{out}\n{err}\n{repo.task(number).get('failure_reason')}"
    for number in (1, 2):
        assert repo.task(number)["status"] == "done"
        assert (repo.root / "out" / str(number) / "result.txt").read_text() == f"task {number}\n"
        evidence = json.loads(repo.aictl("task", "evidence", str(number), "--json").stdout)
        assert evidence["files_changed"] == [f"out/{number}/result.txt"]
        # the other task's file, if it appeared during this run (it may already have been
        # there when this one started), is listed apart, never as this task's change
        assert set(evidence["changes_outside_paths"]) <= {f"out/{3 - number}/result.txt"}
        assert evidence["tool_decisions"] == {"allowed": 2, "denied": 0, "denials": []}
    first, second = repo.task(1), repo.task(2)
    assert first["started_at"] < second["finished_at"]
    assert second["started_at"] < first["finished_at"]


def test_a_missing_claude_binary_is_a_clear_error_and_the_task_is_given_back(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path, "http://127.0.0.1:9")
    create(repo)
    repo.env["AICTL_CLAUDE_BIN"] = str(tmp_path / "nowhere" / "claude")
    ran = repo.aictl("task", "execute", "1")
    assert ran.returncode == 1
    assert "Claude Code CLI (claude) was not found" in ran.stderr
    assert str(tmp_path / "nowhere" / "claude") in ran.stderr
    assert "released" in ran.stderr
    task = repo.task(1)
    assert (task["status"], task["attempts"], task["lease_expires_at"]) == ("queued", 0, None)


def test_an_agent_s_shell_cannot_approve_a_task_gated_for_a_person(tmp_path: Path) -> None:
    """The real agent runs `aictl task approve` from its Bash tool, once as it is and once with
    the marker removed from the command's environment: both are refused and recorded, and
    the gated task stays blocked. The sandbox is off here, so that this check alone stops it:
    inside the sandbox the state database is read-only to the agent as well
    (tests/e2e/test_confinement.py)."""
    policy = (
        "settings:\n  sandbox: off\n"
        "rules:\n  - id: deploys-need-a-person\n    actions: [create]\n"
        '    when: task.title.startsWith("Deploy")\n'
        "    effect: require_approval\n    reason: a person decides on deploys\n"
    )
    aictl = aictl_binary()
    command = (
        f"{aictl} task approve 2; echo first=$?; "
        f"env -u AICTL_AGENT_RUN {aictl} task approve 2; echo second=$?"
    )
    script: list[dict[str, Any]] = [
        {"tool_use": {"name": "Bash", "input": {"command": command, "description": "approve"}}},
        {"text": "Approved task 2."},  # the model's words are not evidence
    ]
    with serve(script) as server:
        repo = make_repo(tmp_path, server.url, policy)
        create(repo)
        gated = repo.aictl("task", "create", "Deploy to production", "-q")
        assert gated.returncode == 0, gated.stderr
        assert repo.task(2)["approval"] == "pending"
        ran = repo.aictl("task", "execute", "1")
    assert ran.returncode == 0, ran.stderr
    transcript = (repo.root / ".ai" / "runs" / "1" / "1" / "transcript.jsonl").read_text()
    assert "first=3" in transcript and "second=3" in transcript, transcript[-3000:]
    assert "aictl:person-only" in transcript  # the refusal the agent's shell saw
    task = repo.task(2)
    assert (task["status"], task["approval"], task["approval_by"]) == ("blocked", "pending", None)
    shown = repo.aictl("policy", "decisions", "--task", "2", "--action", "approve", "--json")
    records = json.loads(shown.stdout)
    assert [(r["effect"], r["rules"][0]["id"]) for r in records] == [
        ("deny", "aictl:person-only"),
        ("deny", "aictl:person-only"),
    ]
    own, ancestor = (r["resource"]["agent"] for r in records)
    assert own["run"] == ancestor["run"] == "1:1"
    assert own["pid"] is None and isinstance(ancestor["pid"], int)  # found up the tree
    verified = repo.aictl("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
