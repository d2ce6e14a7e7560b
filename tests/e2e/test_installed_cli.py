"""The installed `aictl` command, as a user runs it, in subprocesses on a fresh repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def aictl_binary() -> str:
    found = shutil.which("aictl")
    assert found, "the aictl console script is not on PATH: run the tests with `make test`"
    return found


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "AICTL_DB"}
    return subprocess.run(
        [aictl_binary(), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_task_from_creation_to_done(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert run(tmp_path, "init").returncode == 0
    assert run(tmp_path, "task", "create", "write docs", "--path", "docs/**", "-q").stdout == "1\n"
    sub = tmp_path / "docs"
    sub.mkdir()
    claim = run(sub, "task", "claim", "--as", "agent", "--json")  # found by walking up
    assert claim.returncode == 0, claim.stderr
    token = json.loads(claim.stdout)["lease_token"]
    assert run(tmp_path, "task", "start", "1", "--lease", token).returncode == 0
    done = run(tmp_path, "task", "complete", "1", "--lease", token, "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["status"] == "done"
    empty = run(tmp_path, "task", "claim", "--as", "agent")
    assert empty.returncode == 5 and "the queue is empty" in empty.stderr


def test_errors_have_no_traceback_and_the_right_code(tmp_path: Path) -> None:
    outside = run(tmp_path, "task", "list")
    assert outside.returncode == 2
    assert outside.stderr.startswith("Error: not inside an aictl repository")
    assert "Traceback" not in outside.stderr
    usage = run(tmp_path, "task", "claim")  # --as missing
    assert usage.returncode == 2 and "--as" in usage.stderr


def test_python_dash_m_runs_the_same_cli(tmp_path: Path) -> None:
    python = Path(aictl_binary()).parent / "python"
    result = subprocess.run(
        [str(python), "-m", "aictl", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and "task" in result.stdout


GATED = """\
version: 1
rules:
  - id: gate
    actions: [create]
    when: 'true'
    effect: require_approval
    reason: a person looks first
"""


def test_an_approval_by_a_child_of_an_agent_run_is_refused(tmp_path: Path) -> None:
    """The agent's shell drops the marker before calling aictl; the shell itself, aictl's
    parent, still carries it, and that is enough to refuse the approval."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert run(tmp_path, "init").returncode == 0
    (tmp_path / ".ai" / "policy.yaml").write_text(GATED)
    assert run(tmp_path, "task", "create", "deploy", "-q").stdout == "1\n"
    env = {k: v for k, v in os.environ.items() if k not in ("AICTL_DB", "AICTL_ACTOR")}
    env["AICTL_AGENT_RUN"] = "1:1"
    # Not `exec`: the shell stays alive as aictl's parent, with the marker it was started with.
    script = f'env -u AICTL_AGENT_RUN "{aictl_binary()}" task approve 1; exit $?'
    shell = subprocess.run(
        ["/bin/sh", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shell.returncode == 3, shell.stderr
    assert "aictl:person-only" in shell.stderr and "AICTL_AGENT_RUN=1:1" in shell.stderr
    assert "an ancestor of this process" in shell.stderr  # not our own environment
    assert "Traceback" not in shell.stderr
    shown = json.loads(run(tmp_path, "task", "show", "1", "--json").stdout)
    assert (shown["status"], shown["approval"]) == ("blocked", "pending")
    denied = json.loads(run(tmp_path, "policy", "decisions", "--effect", "deny", "--json").stdout)
    assert [d["rules"][0]["id"] for d in denied] == ["aictl:person-only"]
    assert run(tmp_path, "audit", "verify").returncode == 0
    # the person, from their own shell, approves it
    assert run(tmp_path, "task", "approve", "1").returncode == 0
