"""Money and runaway runs with the real Claude Code CLI against ``aictl.model_server``:
Ctrl-C during `aictl task execute`, the task budget and the daily budget, and `task retry`
keeping earlier attempts' evidence. Under CI a missing binary fails these tests.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from aictl.domain.budgets import format_usd
from aictl.model_server import serve
from tests.e2e.test_execute import WRITE_HELLO, aictl_binary, create, make_repo
from tests.e2e.test_execute_enforcement import agents_in, decisions, processes_in

pytestmark = pytest.mark.e2e

WAIT = 60.0


def test_ctrl_c_releases_the_task_and_its_locks_at_once_and_keeps_the_evidence(
    tmp_path: Path,
) -> None:
    # A long lease: a task released only at the lease's expiry would still be running below.
    # the shared tree: the agent is looked for by its working folder, the repository
    policy = "settings:\n  isolation: shared\n  lease_ttl: 30m\n  timeouts:\n    idle: 10m\n"
    with serve([{"stall": True}]) as server:
        repo = make_repo(tmp_path, server.url, policy)
        create(repo)
        run = subprocess.Popen(
            [aictl_binary(), "task", "execute", "1", "--json"],
            cwd=repo.root,
            env=repo.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + WAIT
            while not server.requests and time.monotonic() < deadline:  # the stream stalls
                assert run.poll() is None, f"aictl ended first, with exit code {run.returncode}"
                time.sleep(0.1)
            assert server.requests and agents_in(repo.root), "the agent never asked the model"
            run.send_signal(signal.SIGINT)
            out, err = run.communicate(timeout=WAIT)
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
        assert run.returncode == 130, err
        assert "Interrupted: task 1 was released" in err
        assert processes_in(repo.root) == []  # the agent was stopped with aictl
    summary = json.loads(out)
    assert (summary["outcome"], summary["reason"]) == ("released", "cancelled")
    task = repo.task(1)
    assert (task["status"], task["attempts"], task["lease_expires_at"]) == ("queued", 0, None)
    locks = repo.aictl("lock", "list", "--json")
    assert locks.returncode == 0 and json.loads(locks.stdout) == []
    run_dir = repo.root / ".ai" / "runs" / "1" / "1"
    evidence = json.loads((run_dir / "evidence.json").read_text())
    assert evidence["agent"]["reason"] == "cancelled"
    transcript = (run_dir / "transcript.jsonl").read_text().splitlines()
    assert any(json.loads(line).get("subtype") == "init" for line in transcript)


#: One turn of a million input tokens: several dollars at any model's price.
EXPENSIVE: list[dict[str, Any]] = [
    {
        "tool_use": {"name": "Write", "input": {"file_path": "src/a.txt", "content": "a\n"}},
        "usage": {"input_tokens": 1_000_000, "output_tokens": 100},
    },
    {"text": "Done.", "usage": {"input_tokens": 1_000_000, "output_tokens": 100}},
]


def test_the_task_budget_fails_the_run_and_the_daily_budget_refuses_the_next(
    tmp_path: Path,
) -> None:
    policy = "settings:\n  budgets: {task_usd: 0.5, daily_usd: 1}\n"
    with serve(EXPENSIVE) as server:
        repo = make_repo(tmp_path, server.url, policy)
        create(repo, "--max-attempts", "3")
        ran = repo.aictl("task", "execute", "1", "--json")
        assert ran.returncode == 1, ran.stderr
        create(repo)
        refused = repo.aictl("task", "execute", "2")
    task = repo.task(1)
    assert (task["status"], task["attempts"]) == ("failed", 1)  # not retried
    assert task["failure_reason"].startswith("budget: "), task["failure_reason"]
    evidence = json.loads(repo.aictl("task", "evidence", "1", "--json").stdout)
    spent = evidence["agent"]["total_cost_usd"]
    assert spent >= 0.5  # the CLI priced the scripted usage
    records = decisions(repo, "execute")
    assert [r["effect"] for r in records] == ["allow", "deny"]
    assert records[1]["rules"][0]["qualified_id"] == "aictl:budget-task"
    assert refused.returncode == 3, refused.stderr
    assert format_usd(spent) in refused.stderr and "$1.00" in refused.stderr
    second = repo.task(2)
    assert (second["status"], second["attempts"], second["lease_epoch"]) == ("queued", 0, 0)
    daily = repo.aictl("policy", "decisions", "--task", "2", "--action", "execute", "--json")
    (record,) = json.loads(daily.stdout)
    assert record["effect"] == "deny"
    assert record["rules"][0]["qualified_id"] == "aictl:budget-daily"


def test_retry_keeps_the_evidence_of_every_earlier_attempt(tmp_path: Path) -> None:
    # the shared tree: src/ok is made in the user's tree between the attempts
    policy = 'settings:\n  isolation: shared\n  test_command: "test -f src/ok"\n'
    with serve(WRITE_HELLO) as server:
        repo = make_repo(tmp_path, server.url, policy)
        create(repo, "--max-attempts", "1")
        first = repo.aictl("task", "execute", "1")
        assert first.returncode == 1 and repo.task(1)["status"] == "failed"
        assert repo.aictl("task", "retry", "1").returncode == 0
        (repo.root / "src" / "ok").write_text("")
        second = repo.aictl("task", "execute", "1", "--json")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["attempt"] == 2
    earlier = repo.aictl("task", "evidence", "1", "--attempt", "1", "--json")
    assert earlier.returncode == 0, earlier.stderr
    assert json.loads(earlier.stdout)["tests"]["status"] == "failed"
    latest = json.loads(repo.aictl("task", "evidence", "1", "--json").stdout)
    assert latest["attempt"] == 2 and latest["tests"]["status"] == "passed"
    shown = repo.aictl("task", "evidence", "1", "--attempt", "1")
    assert "Task 1 attempt 1" in shown.stdout and "tests: failed" in shown.stdout
    for attempt in ("1", "2"):
        assert (repo.root / ".ai" / "runs" / "1" / attempt / "transcript.jsonl").is_file()
