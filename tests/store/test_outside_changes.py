"""A run that changed files outside its task's paths fails the task (``outside_changes: fail``,
the default) or completes with a warning (``warn``). Changes inside another task's paths that
ran at the same time are that task's, and fail neither."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from aictl.domain.tasks import Status
from aictl.policy.issues import InvalidPolicy
from aictl.services.executor import Executor
from aictl.services.tasks import TaskService
from aictl.workspace import Workspace
from connectors import RunRequest, RunResult
from tests.store.test_executor import policy, service, use

__all__ = ["service"]  # the fixture, shared with the executor's tests


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def committed(workspace: Workspace) -> Workspace:
    """The repository with one commit, so the executor has a base to compare against."""
    root = workspace.root
    if not (root / ".git" / "HEAD").is_file():
        git(root, "init", "-q")
    (root / "README.md").write_text("hello\n")
    git(root, "add", "README.md")
    git(root, "commit", "-q", "-m", "base")
    return workspace


def writes(*files: str) -> object:
    def agent(request: RunRequest, cancelled: threading.Event) -> RunResult:
        for name in files:
            target = request.cwd / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("written by the agent\n")
        return RunResult(status="success", num_turns=1)

    return agent


def test_a_change_outside_the_paths_fails_the_task_naming_the_paths(
    service: TaskService, committed: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(writes("src/a.py", "other/bad.txt", "README.md"), monkeypatch)  # type: ignore[arg-type]
    task = service.create("t", paths=["src/**"])
    assert task.max_attempts == 3
    ran = Executor(service).execute(task.id, ai="bot")
    assert ran.outcome == "failed"
    assert ran.reason is not None and ran.reason.startswith("outside_changes:")
    assert "README.md" in ran.reason and "other/bad.txt" in ran.reason
    after = service.get(task.id)
    assert after.status is Status.FAILED and after.attempts == 1  # not retried
    assert after.failure_reason == ran.reason
    assert ran.evidence["files_changed"] == ["src/a.py"]
    assert ran.evidence["changes_outside_paths"] == ["README.md", "other/bad.txt"]


def test_with_warn_the_task_completes_and_the_progress_warns(
    service: TaskService, committed: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(writes("src/a.py", "other/bad.txt"), monkeypatch)  # type: ignore[arg-type]
    # the shared tree: in a worktree, nothing outside the task's paths is ever merged
    policy(committed, "settings:\n  isolation: shared\n  outside_changes: warn\n")
    task = service.create("t", paths=["src/**"])
    lines: list[str] = []
    ran = Executor(service, progress=lines.append).execute(task.id, ai="bot")
    assert ran.outcome == "done" and service.get(task.id).status is Status.DONE
    warnings = [line for line in lines if "outside" in line]
    assert warnings and "other/bad.txt" in warnings[0] and warnings[0].startswith("warning:")


def test_a_run_without_outside_changes_completes(
    service: TaskService, committed: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(writes("src/a.py"), monkeypatch)  # type: ignore[arg-type]
    task = service.create("t", paths=["src/**"])
    assert Executor(service).execute(task.id, ai="bot").outcome == "done"


def test_changes_inside_a_concurrent_task_s_paths_are_that_task_s(
    service: TaskService, committed: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two agents in one working tree: while task 1 runs, task 2 (holding docs/**) writes
    docs/b.md. Task 1's evidence lists it apart, and task 1 completes."""
    policy(committed, "settings:\n  isolation: shared\n")
    other = service.create("docs", paths=["docs/**"])
    mine = service.create("code", paths=["src/**"])
    claim = service.claim("someone", task_id=other.id)

    def agent(request: RunRequest, cancelled: threading.Event) -> RunResult:
        (request.cwd / "src").mkdir()
        (request.cwd / "src" / "a.py").write_text("x\n")
        (request.cwd / "docs").mkdir()
        (request.cwd / "docs" / "b.md").write_text("the other task's\n")
        helper = TaskService(service.workspace)
        helper.start(claim.token)
        helper.complete(claim.token)  # the other task finishes before this run ends
        helper.close()
        return RunResult(status="success", num_turns=1)

    use(agent, monkeypatch)
    ran = Executor(service).execute(mine.id, ai="bot")
    assert ran.outcome == "done", ran.reason
    assert ran.evidence["changes_outside_paths"] == []
    assert ran.evidence["changes_of_other_tasks"] == {"docs/b.md": [other.id]}


def test_an_unknown_value_is_a_policy_error(workspace: Workspace, service: TaskService) -> None:
    policy(workspace, "settings:\n  outside_changes: ignore\n")
    with pytest.raises(InvalidPolicy) as caught:
        service.create("t")
    assert "outside_changes" in str(caught.value.message) and "warn" in str(caught.value.message)
