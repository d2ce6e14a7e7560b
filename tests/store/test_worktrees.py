"""Each executed task in its own git worktree (``isolation: worktree``, the default), driven by
a scripted in-process agent: aictl commits the run, checks its paths, integrates it into the
target branch under the lease, never clobbers the user's uncommitted work and never deletes
work that is not merged. (The real Claude Code CLI does the same in tests/e2e.)"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from aictl.domain.tasks import Status
from aictl.errors import InvalidInput, TaskHeld
from aictl.services.executor import Executor
from aictl.services.tasks import TaskService
from aictl.services.worktrees import integrate_task, list_worktrees, prune_worktrees
from aictl.workspace import Workspace
from connectors import RunRequest, RunResult
from tests.store.test_executor import policy, service, use

__all__ = ["service"]  # the fixture, shared with the executor's tests


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture
def main(workspace: Workspace) -> Path:
    """The repository with one commit on ``main``: README.md and src/keep.txt."""
    root = workspace.root
    if not (root / ".git" / "HEAD").is_file():
        git(root, "init", "-q")
    git(root, "checkout", "-q", "-B", "main")
    (root / "README.md").write_text("hello\n")
    (root / "src").mkdir(exist_ok=True)
    (root / "src" / "keep.txt").write_text("kept\n")
    git(root, "add", "README.md", "src/keep.txt")
    git(root, "commit", "-q", "-m", "base")
    return root


def writes(files: dict[str, str], seen: list[Path] | None = None) -> object:
    def agent(request: RunRequest, cancelled: threading.Event) -> RunResult:
        if seen is not None:
            seen.append(request.cwd)
        for name, text in files.items():
            target = request.cwd / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        return RunResult(status="success", num_turns=1)

    return agent


def run(service: TaskService, task_id: int) -> object:
    return Executor(service).execute(task_id, ai="bot")


def test_a_run_works_in_its_own_worktree_and_is_merged_with_a_commit_of_its_own(
    service: TaskService, main: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Path] = []
    use(writes({"src/a.py": "print('a')\n"}, seen), monkeypatch)  # type: ignore[arg-type]
    task = service.create("add a", paths=["src/**"])
    before = git(main, "rev-parse", "main").strip()
    ran = Executor(service).execute(task.id, ai="bot")
    assert ran.outcome == "done", ran.reason
    assert seen == [main / ".ai" / "worktrees" / "task-1-1"]  # the agent's cwd
    evidence = ran.evidence
    assert evidence["isolation"] == "worktree" and evidence["base_commit"] == before
    assert evidence["files_changed"] == ["src/a.py"]
    assert "src/a.py" in evidence["diffstat"] and "+print('a')" in evidence["diff"]
    assert evidence["integration"] == {"status": "merged", "reason": None}
    # the target branch holds a merge of the task's commit, made by aictl
    merge = git(main, "rev-parse", "main").strip()
    assert merge == evidence["merge_commit"]
    parents = git(main, "log", "-1", "--format=%P", merge).split()
    assert parents == [before, evidence["task_commit"]]
    # the task's commit: the AI as author, trailers naming task, attempt, epoch and decision
    commit = evidence["task_commit"]
    assert git(main, "log", "-1", "--format=%an", commit).strip() == "bot"
    trailers = git(main, "log", "-1", "--format=%(trailers:only,unfold)", commit)
    assert "Aictl-Task: 1" in trailers and "Aictl-Attempt: 1" in trailers
    assert "Aictl-Lease-Epoch: 1" in trailers and "Aictl-Decision: " in trailers
    [decision] = service.store.decisions.records(task_id=1, action="execute")
    assert f"Aictl-Decision: {decision.id}" in trailers
    # the user's working tree shows the merged file, clean
    assert (main / "src" / "a.py").read_text() == "print('a')\n"
    assert git(main, "status", "--porcelain", "--", "src").strip() == ""
    assert git(main, "status", "--porcelain").strip() in ("", "?? .ai/")


def test_a_change_outside_the_globs_fails_and_nothing_reaches_the_target(
    service: TaskService, main: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {"src/a.py": "ok\n", "README.md": "defaced\n", "other/bad.txt": "x\n"}
    use(writes(files), monkeypatch)  # type: ignore[arg-type]
    task = service.create("t", paths=["src/**"])
    before = git(main, "rev-parse", "main").strip()
    ran = Executor(service).execute(task.id, ai="bot")
    assert ran.outcome == "failed" and ran.reason is not None
    assert "README.md" in ran.reason and "other/bad.txt" in ran.reason
    assert git(main, "rev-parse", "main").strip() == before
    assert (main / "README.md").read_text() == "hello\n" and not (main / "src" / "a.py").exists()
    assert ran.evidence["task_commit"] is None and ran.evidence["merge_commit"] is None
    # the worktree is kept for inspection, and prune keeps it: its changes are not merged
    [row] = list_worktrees(service)
    assert (row["task_id"], row["status"], row["merged"], row["prunable"]) == (
        1,
        "failed",
        False,
        False,
    )
    [pruned] = prune_worktrees(service, dry_run=False)
    assert pruned["action"] == "kept" and "uncommitted" in pruned["why"]
    assert (main / ".ai" / "worktrees" / "task-1-1" / "README.md").read_text() == "defaced\n"


def test_the_users_uncommitted_edit_is_never_clobbered_and_integrate_finishes_later(
    service: TaskService, main: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def agent(request: RunRequest, cancelled: threading.Event) -> RunResult:
        (request.cwd / "src" / "keep.txt").write_text("the agent's\n")
        # meanwhile the user edits the same file in the main working tree
        (main / "src" / "keep.txt").write_text("the user's, not committed\n")
        return RunResult(status="success", num_turns=1)

    use(agent, monkeypatch)
    task = service.create("t", paths=["src/**"])
    before = git(main, "rev-parse", "main").strip()
    ran = Executor(service).execute(task.id, ai="bot")
    assert ran.outcome == "failed" and ran.reason is not None
    assert "uncommitted changes to src/keep.txt" in ran.reason
    assert "aictl task integrate 1" in ran.reason
    assert git(main, "rev-parse", "main").strip() == before  # nothing merged
    assert (main / "src" / "keep.txt").read_text() == "the user's, not committed\n"
    assert git(main, "rev-parse", "aictl/task-1").strip() == ran.evidence["task_commit"]
    assert service.get(1).status is Status.FAILED
    # still refused while the edit is there, and the task stays failed
    again = integrate_task(service, 1)
    assert again.status == "refused" and service.get(1).status is Status.FAILED
    # the user puts their edit away; integrating now merges and the task is done
    git(main, "checkout", "--", "src/keep.txt")
    done = integrate_task(service, 1)
    assert done.status == "merged"
    assert (main / "src" / "keep.txt").read_text() == "the agent's\n"
    finished = service.get(1)
    assert finished.status is Status.DONE and finished.failure_reason is None
    assert (finished.evidence or {})["merge_commit"] == git(main, "rev-parse", "main").strip()
    # integrating a merged task again changes nothing
    assert integrate_task(service, 1).status == "merged"
    assert git(main, "rev-list", "--count", "main").strip() == "3"


def test_integration_that_died_after_moving_the_target_is_finished_by_a_rerun(
    service: TaskService, main: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window a SIGKILL can hit: the target holds the merge, the user's files do not yet.
    (The real SIGKILL is in tests/e2e/test_worktrees.py.)"""
    from aictl.services import worktrees

    use(writes({"src/new.txt": "new\n"}), monkeypatch)  # type: ignore[arg-type]

    def dies(self: object, *args: object) -> object:
        raise KeyboardInterrupt  # stands for the process dying right after update-ref

    with monkeypatch.context() as patched:
        patched.setattr(worktrees.Worktrees, "_finish", dies)
        task = service.create("t", paths=["src/**"])
        with pytest.raises(KeyboardInterrupt):
            Executor(service).execute(task.id, ai="bot")
    merged = git(main, "rev-parse", "main").strip()
    assert len(git(main, "log", "-1", "--format=%P", merged).split()) == 2  # the merge is in
    assert not (main / "src" / "new.txt").exists()  # the user's files not updated yet
    with pytest.raises(TaskHeld, match="is running"):  # the dead run's lease is still live
        integrate_task(service, 1)
    # the dead run's lease expires (its token, with its secret, died with it)
    from datetime import timedelta

    from aictl.clock import ManualClock

    later = TaskService(service.workspace, clock=ManualClock(service.store.clock.now()))
    assert isinstance(later.store.clock, ManualClock)
    later.store.clock.advance(timedelta(hours=2))
    later.sweep()
    later.close()
    done = integrate_task(service, 1)
    assert done.status == "merged"
    assert git(main, "rev-parse", "main").strip() == merged  # not merged twice
    assert (main / "src" / "new.txt").read_text() == "new\n"
    assert git(main, "status", "--porcelain", "--", "src").strip() == ""
    assert service.get(1).status is Status.DONE


def test_a_dependents_worktree_holds_its_dependencys_merged_work(
    service: TaskService, main: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = service.create("first", paths=["src/a/**"])
    second = service.create("second", paths=["src/b/**"], depends_on=[first.id])
    use(writes({"src/a/one.txt": "1\n"}), monkeypatch)  # type: ignore[arg-type]
    assert run(service, first.id).outcome == "done"  # type: ignore[attr-defined]
    found: list[bool] = []

    def agent(request: RunRequest, cancelled: threading.Event) -> RunResult:
        found.append((request.cwd / "src" / "a" / "one.txt").is_file())
        (request.cwd / "src" / "b").mkdir()
        (request.cwd / "src" / "b" / "two.txt").write_text("2\n")
        return RunResult(status="success", num_turns=1)

    use(agent, monkeypatch)
    assert run(service, second.id).outcome == "done"  # type: ignore[attr-defined]
    assert found == [True]
    assert set(git(main, "ls-tree", "-r", "--name-only", "main").split()) >= {
        "src/a/one.txt",
        "src/b/two.txt",
    }


def test_two_runs_from_the_same_base_both_merge_without_conflict(
    service: TaskService, main: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Disjoint globs, both worktrees made before either merges: the second merge is made
    over the first (merge-tree), and the history shows both merges."""
    one = service.create("one", paths=["src/one/**"])
    two = service.create("two", paths=["src/two/**"])
    inner: list[str] = []

    def first(request: RunRequest, cancelled: threading.Event) -> RunResult:
        (request.cwd / "src" / "one").mkdir()
        (request.cwd / "src" / "one" / "x.txt").write_text("one\n")
        use(writes({"src/two/y.txt": "two\n"}), monkeypatch)  # type: ignore[arg-type]
        second = TaskService(service.workspace)
        try:
            ran = run(second, two.id)  # the second starts meanwhile
        finally:
            second.close()
        inner.append(ran.outcome)  # type: ignore[attr-defined]
        return RunResult(status="success", num_turns=1)

    use(first, monkeypatch)
    assert run(service, one.id).outcome == "done"  # type: ignore[attr-defined]
    assert inner == ["done"]
    log = git(main, "log", "--format=%s", "main")
    assert "Merge task 1" in log and "Merge task 2" in log
    assert (main / "src" / "one" / "x.txt").is_file() and (main / "src" / "two" / "y.txt").is_file()


def test_rebase_keeps_history_linear_and_branch_leaves_the_target_alone(
    service: TaskService, main: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy(service.workspace, "settings:\n  integrate: rebase\n")
    use(writes({"src/r.txt": "r\n"}), monkeypatch)  # type: ignore[arg-type]
    rebased = run(service, service.create("r", paths=["src/**"]).id)
    assert rebased.outcome == "done"  # type: ignore[attr-defined]
    assert len(git(main, "log", "-1", "--format=%P", "main").split()) == 1
    assert (main / "src" / "r.txt").is_file()

    policy(service.workspace, "settings:\n  integrate: branch\n")
    use(writes({"src/b.txt": "b\n"}), monkeypatch)  # type: ignore[arg-type]
    before = git(main, "rev-parse", "main").strip()
    kept = run(service, service.create("b", paths=["src/**"]).id)
    assert kept.outcome == "done"  # type: ignore[attr-defined]
    assert kept.evidence["integration"]["status"] == "kept"  # type: ignore[attr-defined]
    assert git(main, "rev-parse", "main").strip() == before
    assert "src/b.txt" in git(main, "ls-tree", "-r", "--name-only", "aictl/task-2")
    # prune keeps the branch left for review; integrate merges it
    kept_row = [row for row in prune_worktrees(service, dry_run=False) if row["task_id"] == 2]
    assert kept_row[0]["action"] == "kept" and "not merged" in kept_row[0]["why"]
    assert integrate_task(service, 2).status == "merged"
    assert (main / "src" / "b.txt").is_file()
    removed = {row["task_id"]: row["action"] for row in prune_worktrees(service, dry_run=False)}
    assert removed == {1: "removed", 2: "removed"}
    assert not (main / ".ai" / "worktrees").exists()
    assert "aictl/task-" not in git(main, "branch", "--list")


def test_shared_isolation_works_in_the_main_tree(
    service: TaskService, main: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy(service.workspace, "settings:\n  isolation: shared\n")
    seen: list[Path] = []
    use(writes({"src/s.txt": "s\n"}, seen), monkeypatch)  # type: ignore[arg-type]
    ran = run(service, service.create("s", paths=["src/**"]).id)
    assert ran.outcome == "done" and seen == [main]  # type: ignore[attr-defined]
    assert list_worktrees(service) == [] and "aictl/task-" not in git(main, "branch")


def test_integrate_without_committed_work_is_refused(service: TaskService, main: Path) -> None:
    task = service.create("t", paths=["src/**"])
    with pytest.raises(InvalidInput, match="no committed work"):
        integrate_task(service, task.id)


def test_a_merged_clean_worktree_is_reused_and_nothing_of_its_run_reaches_the_next(
    service: TaskService, main: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Making a worktree writes every file of the repository; a merged, clean one is moved and
    switched instead (only the files that differ). Ignored files an earlier agent left are
    cleaned; a worktree with unmerged or uncommitted work is never reused."""
    (main / ".gitignore").write_text("*.cache\n")
    git(main, "add", ".gitignore")
    git(main, "commit", "-q", "-m", "ignore")
    use(writes({"src/a.py": "a\n", "src/planted.cache": "left\n"}), monkeypatch)  # type: ignore[arg-type]
    assert run(service, service.create("a", paths=["src/**"]).id).outcome == "done"  # type: ignore[attr-defined]
    first = main / ".ai" / "worktrees" / "task-1-1"
    inode = first.stat().st_ino
    seen: list[Path] = []
    use(writes({"src/b.py": "b\n"}, seen), monkeypatch)  # type: ignore[arg-type]
    assert run(service, service.create("b", paths=["src/**"]).id).outcome == "done"  # type: ignore[attr-defined]
    second = main / ".ai" / "worktrees" / "task-2-1"
    assert seen == [second] and second.stat().st_ino == inode  # the same folder, moved
    assert not first.exists()
    assert not (second / "src" / "planted.cache").exists()  # ignored leftovers cleaned
    assert (second / "src" / "a.py").read_text() == "a\n"  # the target's merged work is there
    worktrees = git(main, "worktree", "list", "--porcelain").count("worktree ")
    assert worktrees == 2  # the main tree and one task worktree
    assert git(main, "status", "--porcelain", "--", "src", "README.md") == ""


def test_two_runs_starting_at_once_never_take_the_same_spare_worktree(
    service: TaskService, main: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen in `make demo`: two daemon workers both picked the one merged worktree to reuse;
    the second found it moved away ("cannot run git in .../task-3-1") and its run was lost to
    a retry. Choosing and taking a spare is one step, under a lock."""
    from aictl.services import worktrees as module
    from aictl.store.branches import BranchStore
    from aictl.store.db import connect

    use(writes({"src/a.py": "a\n"}), monkeypatch)  # type: ignore[arg-type]
    assert run(service, service.create("a", paths=["src/**"]).id).outcome == "done"  # type: ignore[attr-defined]
    second, third = (service.create(name, paths=[f"{name}/**"]).id for name in ("b", "c"))
    original = module.Worktrees._spare

    def slow_spare(self: module.Worktrees) -> Path | None:
        found = original(self)
        time.sleep(0.3)  # both threads would find the same spare without the lock
        return found

    monkeypatch.setattr(module.Worktrees, "_spare", slow_spare)
    made: dict[int, Path] = {}
    errors: list[BaseException] = []

    def make(task_id: int) -> None:
        db = connect(service.workspace.database)  # a connection per worker, as in the daemon
        try:
            branches = BranchStore(db, service.store.clock)
            record = module.Worktrees(service.workspace, branches).create(task_id, 1, "merge")
            made[task_id] = main / record.worktree
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            db.close()

    threads = [threading.Thread(target=make, args=(task_id,)) for task_id in (second, third)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert made[second] != made[third]
    for task_id, path in made.items():
        branch = git(path, "rev-parse", "--abbrev-ref", "HEAD").strip()
        assert branch == f"aictl/task-{task_id}"
        assert (path / "src" / "a.py").read_text() == "a\n"
