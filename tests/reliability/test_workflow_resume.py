"""A workflow run survives SIGKILL: a real process driving ``aictl workflow execute`` is killed
in the middle of a step; ``aictl workflow resume`` (another process) finishes the run, running
the killed step again and no finished step twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aictl.services.tasks import TaskService
from aictl.workspace import initialise
from tests.gitrepo import git_init
from tests.workflow_fakes import register_ai

ROOT = Path(__file__).resolve().parents[2]
FLOW = """version: 1
name: chain
steps:
  - id: first
    task: {title: First step}
  - id: second
    needs: [first]
    task: {title: Second step, description: Stall here}
  - id: third
    needs: [second]
    task: {title: Third step}
"""
POLICY = "version: 1\nsettings:\n  lease_ttl: 2s\n  heartbeat_interval: 500ms\n"


def driver(repo: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AICTL_DB": str(repo / ".ai" / "state.db")}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.workflow_driver", *args],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


@pytest.mark.slow
def test_resume_after_sigkill_finishes_without_redoing_finished_steps(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    git_init(repo)
    workspace, _ = initialise(repo)
    (repo / ".ai" / "policy.yaml").write_text(POLICY)
    (repo / "flow.yaml").write_text(FLOW)
    register_ai(workspace.db_path)
    (repo / "stall").write_text("")
    created = driver(repo, "workflow", "create", "flow.yaml")
    _, err = created.communicate(timeout=60)
    assert created.returncode == 0, err

    victim = driver(repo, "workflow", "execute", "chain")
    try:
        deadline = time.monotonic() + 60
        while not (repo / "stalled").exists():
            assert victim.poll() is None, victim.communicate()
            assert time.monotonic() < deadline, "the second step never started"
            time.sleep(0.05)
        os.killpg(victim.pid, signal.SIGKILL)
    finally:
        victim.wait(30)
        victim.communicate()
    assert victim.returncode == -signal.SIGKILL

    status = driver(repo, "workflow", "status", "1", "--json")
    out, err = status.communicate(timeout=60)
    before = json.loads(out)
    assert before["status"] == "running" and before["driven"] is False, err

    (repo / "stall").unlink()
    resumed = driver(repo, "workflow", "resume", "1", "--json")
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    after = json.loads(out)
    assert after["status"] == "done"
    records = {step["step"]: step for step in after["steps"]}
    assert {name: records[name]["executions"] for name in records} == {
        "first": 1,
        "second": 2,
        "third": 1,
    }
    runs = (repo / "runs.log").read_text().splitlines()
    assert [line.split(": ", 1)[1] for line in runs] == [
        "First step",
        "Second step",
        "Second step",
        "Third step",
    ]
    service = TaskService(workspace)
    try:
        first = service.get(records["first"]["task_id"])
        second = service.get(records["second"]["task_id"])
        assert first.attempts == 1 and str(first.status) == "done"
        assert second.attempts == 2 and str(second.status) == "done"  # the killed lease counted
        assert len(service.list_tasks()) == 3  # no step got a second task
    finally:
        service.close()
