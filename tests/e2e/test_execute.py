"""`aictl task execute` end to end: the installed aictl drives the real Claude Code CLI against
``aictl.model_server`` in a temporary git repository.

Under CI a missing binary fails these tests; locally they are skipped (``claude_binary``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aictl.model_server import serve
from tests.real_claude import VERSION, claude_binary

pytestmark = pytest.mark.e2e

HELLO = "hello from the executor\n"
WRITE_HELLO: list[dict[str, Any]] = [
    {"tool_use": {"name": "Write", "input": {"file_path": "src/hello.txt", "content": HELLO}}},
    {"text": "I wrote src/hello.txt.", "usage": {"input_tokens": 1200, "output_tokens": 40}},
]


def aictl_binary() -> str:
    found = shutil.which("aictl")
    assert found, "the aictl console script is not on PATH: run the tests with `make test`"
    return found


class Repo:
    def __init__(self, root: Path, server_url: str = "http://127.0.0.1:9") -> None:
        self.root = root
        self.env = {k: v for k, v in os.environ.items() if k != "AICTL_DB"}
        self.env.update(
            {
                "AICTL_CLAUDE_BIN": str(claude_binary()),
                "ANTHROPIC_BASE_URL": server_url,
                "ANTHROPIC_API_KEY": "dummy-key-for-the-local-model-server",
                "CLAUDE_CODE_MAX_RETRIES": "0",
                "API_TIMEOUT_MS": "10000",
            }
        )

    def aictl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [aictl_binary(), *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        """``aictl ARGS`` started in the background, its output piped."""
        return subprocess.Popen(
            [aictl_binary(), *args],
            cwd=self.root,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def git(self, *args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
            cwd=self.root,
            check=True,
            capture_output=True,
        )

    def task(self, task_id: int) -> dict[str, Any]:
        shown = self.aictl("task", "show", str(task_id), "--json")
        assert shown.returncode == 0, shown.stderr
        data: dict[str, Any] = json.loads(shown.stdout)
        return data


def wait_for(
    run: subprocess.Popen[str], ready: Callable[[], object], what: str, timeout: float = 60.0
) -> None:
    """Wait until ``ready()`` is true while ``run`` still runs; fail if it ends first or
    ``what`` never happens."""
    deadline = time.monotonic() + timeout
    while not ready() and time.monotonic() < deadline:
        assert run.poll() is None, f"aictl ended first, with exit code {run.returncode}"
        time.sleep(0.05)
    assert ready(), f"{what} never happened"


def kill(run: subprocess.Popen[str]) -> None:
    """SIGKILL ``run`` if it still runs, and collect it (its pipes closed)."""
    if run.poll() is None:
        run.kill()
    run.communicate()


def git_repo(tmp_path: Path, url: str = "http://127.0.0.1:9") -> Repo:
    """``tmp_path/repo``: a new git repository holding src/keep.txt (nothing committed)."""
    root = tmp_path / "repo"
    root.mkdir()
    repo = Repo(root, url)
    repo.git("init", "-q")
    (root / "src").mkdir()
    (root / "src" / "keep.txt").write_text("kept\n")
    return repo


def make_repo(
    tmp_path: Path,
    url: str,
    policy: str = "",
    *,
    register: bool = True,
    database: str | None = None,
) -> Repo:
    """``git_repo`` initialised (its state in ``database``, a PostgreSQL URL, when given),
    with ``policy`` and the AI ``claude-1`` registered, all committed."""
    repo = git_repo(tmp_path, url)
    root = repo.root
    initialised = repo.aictl("init", *(("--db", database) if database else ()))
    assert initialised.returncode == 0, initialised.stderr
    if policy:
        (root / ".ai" / "policy.yaml").write_text("version: 1\n" + policy)
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "first")
    if register:
        added = repo.aictl("ai", "register", "claude-1", "--connector", "claude-code")
        assert added.returncode == 0, added.stderr
    return repo


def create(repo: Repo, *extra: str) -> None:
    made = repo.aictl("task", "create", "Write hello", "--path", "src/**", *extra)
    assert made.returncode == 0, made.stderr


def test_a_scripted_write_completes_the_task_with_evidence(tmp_path: Path) -> None:
    with serve(WRITE_HELLO) as server:
        repo = make_repo(tmp_path, server.url)
        create(repo, "--description", "Write src/hello.txt.")
        ran = repo.aictl("task", "execute", "--json")
    assert ran.returncode == 0, ran.stderr
    summary = json.loads(ran.stdout)
    assert (summary["task_id"], summary["ai"], summary["outcome"]) == (1, "claude-1", "done")
    assert "tool Write" in ran.stderr  # progress from the stream, live
    assert "turn: I wrote src/hello.txt." in ran.stderr
    assert "tool calls allowed 1, denied 0; files changed 1" in ran.stderr  # the summary
    assert repo.task(1)["status"] == "done"
    evidence = json.loads(Path(summary["evidence_path"]).read_text())
    assert evidence["files_changed"] == ["src/hello.txt"]
    assert "hello from the executor" in evidence["diff"]
    assert evidence["tests"] == {"status": "not configured"}
    assert evidence["base_commit"] and evidence["agent"]["session_id"]
    assert evidence["agent"]["num_turns"] == 2 and evidence["agent"]["total_cost_usd"] > 0
    transcript = repo.root / ".ai" / "runs" / "1" / "1" / "transcript.jsonl"
    lines = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert any(line.get("subtype") == "init" for line in lines)
    assert any(line["type"] == "result" for line in lines)
    assert repo.task(1)["evidence"]["files_changed"] == ["src/hello.txt"]
    decisions = repo.aictl("policy", "decisions", "--task", "1", "--action", "execute", "--json")
    assert decisions.returncode == 0 and len(json.loads(decisions.stdout)) == 1
    shown = repo.aictl("task", "evidence", "1")
    assert shown.returncode == 0 and "src/hello.txt" in shown.stdout
    ai = json.loads(repo.aictl("ai", "show", "claude-1", "--json").stdout)
    assert ai["health"]["version"] == VERSION and "Write" in ai["health"]["tools"]


def test_failing_tests_fail_the_task_without_retry(tmp_path: Path) -> None:
    policy = 'settings:\n  test_command: "echo broken-test; exit 3"\n'
    with serve(WRITE_HELLO) as server:
        repo = make_repo(tmp_path, server.url, policy)
        create(repo)
        ran = repo.aictl("task", "execute", "1", "--ai", "claude-1")
    assert ran.returncode == 1, ran.stderr
    task = repo.task(1)
    assert task["status"] == "failed" and task["attempts"] == 1
    assert "tests failed" in task["failure_reason"]
    shown = repo.aictl("task", "evidence", "1", "--json")
    tests = json.loads(shown.stdout)["tests"]
    assert tests["exit_code"] == 3 and "broken-test" in tests["output"]


API_500: list[dict[str, Any]] = [
    {"error": {"status": 500, "type": "api_error", "message": "scripted failure"}}
]


def test_an_api_500_is_retried_until_attempts_run_out(tmp_path: Path) -> None:
    # a 1ms backoff: the retry is due by the time the second run starts
    policy = "settings:\n  retry_backoff: 1ms\n  retry_backoff_max: 1ms\n"
    with serve(API_500) as server:
        repo = make_repo(tmp_path, server.url, policy)
        create(repo, "--max-attempts", "2")
        first = repo.aictl("task", "execute", "1", "--json")
        assert first.returncode == 6, first.stderr  # queued again for a retry
        assert json.loads(first.stdout)["outcome"] == "requeued"
        task = repo.task(1)
        assert (task["status"], task["attempts"]) == ("queued", 1)
        assert task["not_before"] is not None
        second = repo.aictl("task", "execute", "1", "--json")
    assert second.returncode == 1  # failed for good
    assert json.loads(second.stdout)["outcome"] == "failed"
    task = repo.task(1)
    assert (task["status"], task["attempts"]) == ("failed", 2)
    assert "api_error" in task["failure_reason"]
    assert (repo.root / ".ai" / "runs" / "1" / "2" / "evidence.json").is_file()


def test_no_registered_ai_exits_5_with_the_reason(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, "http://127.0.0.1:9", register=False)
    create(repo)
    ran = repo.aictl("task", "execute")
    assert ran.returncode == 5 and "no AI is registered" in ran.stderr
    assert repo.task(1)["status"] == "queued"


def test_a_policy_denying_execute_exits_3_and_releases_the_lease(tmp_path: Path) -> None:
    policy = (
        "rules:\n  - id: no-execution\n    actions: [execute]\n    effect: deny\n"
        "    reason: nobody runs agents here\n"
    )
    repo = make_repo(tmp_path, "http://127.0.0.1:9", policy)
    create(repo)
    ran = repo.aictl("task", "execute", "1")
    assert ran.returncode == 3 and "no-execution" in ran.stderr
    task = repo.task(1)
    assert (task["status"], task["attempts"], task["lease_expires_at"]) == ("queued", 0, None)
    locks = repo.aictl("lock", "list", "--json")
    assert locks.returncode == 0 and json.loads(locks.stdout) == []


def test_an_api_500_backs_off_and_repeated_failures_quarantine_the_ai(tmp_path: Path) -> None:
    # full jitter draws the delay from [0, retry_backoff): with the default 30 s, a short draw
    # let task 1 come back before the third run (seen in CI); an hour makes that ~0.1 %
    policy = "settings:\n  quarantine_after: 3\n  retry_backoff: 1h\n  retry_backoff_max: 2h\n"
    with serve(API_500) as server:
        repo = make_repo(tmp_path, server.url, policy)
        for _ in range(4):
            create(repo)
        first = repo.aictl("task", "execute", "--json")
        assert first.returncode == 6, first.stderr
        summary = json.loads(first.stdout)
        assert (summary["task_id"], summary["outcome"]) == (1, "requeued")
        task = repo.task(1)
        failed_at = datetime.fromisoformat(task["updated_at"])
        not_before = datetime.fromisoformat(task["not_before"])
        # full jitter on the first attempt: after the failure, at most an hour later
        assert failed_at < not_before <= failed_at + timedelta(hours=1)
        assert summary["not_before"] == task["not_before"]
        ready = repo.aictl("task", "list", "--ready", "--json")
        assert [t["id"] for t in json.loads(ready.stdout)] == [2, 3, 4]
        # task 1 waits for its backoff: the next runs take tasks 2 and 3
        for expected in (2, 3):
            ran = repo.aictl("task", "execute", "--json")
            assert ran.returncode == 6, ran.stderr
            assert json.loads(ran.stdout)["task_id"] == expected
        assert json.loads(ran.stdout)["ai_quarantined"] is True
        assert "quarantined after 3 consecutive failed runs" in ran.stderr
        shown = json.loads(repo.aictl("ai", "show", "claude-1", "--json").stdout)
        assert shown["status"] == "quarantined"
        assert shown["health"]["consecutive_failures"] == 3
        assert "api_error" in shown["health"]["last_error"]
        log = repo.aictl("audit", "log", "--kind", "ai.quarantined", "--json")
        events = json.loads(log.stdout)
        assert len(events) == 1 and events[0]["data"]["consecutive_failures"] == 3
        refused = repo.aictl("task", "execute", "4")
        assert refused.returncode == 5, refused.stderr
        assert "claude-1: quarantined" in refused.stderr
        assert repo.task(4)["status"] == "queued"
        lifted = repo.aictl("ai", "status", "claude-1", "--set", "available")
        assert lifted.returncode == 0, lifted.stderr
    shown = json.loads(repo.aictl("ai", "show", "claude-1", "--json").stdout)
    assert (shown["status"], shown["health"]["consecutive_failures"]) == ("available", 0)
    explained = json.loads(repo.aictl("route", "explain", "4", "--json").stdout)
    assert explained["ai"] == "claude-1"
