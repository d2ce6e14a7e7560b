"""Integration through a shared remote (``remote: origin``): hosts in their own clones start
from the remote's branch and push their merges there with a compare-and-swap; a host whose
push was overtaken merges again; a lost lease pushes nothing; a push whose follow-up was
killed is finished once by a rerun; a local branch with commits of its own is left alone."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aictl.errors import LeaseLost
from aictl.services.ais import AIService
from aictl.services.executor import Executor
from aictl.services.tasks import TaskService
from aictl.services.worktrees import Worktrees
from aictl.store.branches import BranchRecord, BranchStore
from aictl.workspace import initialise
from connectors import RunRequest, RunResult
from tests.store.test_executor import Scripted, use
from tests.store.test_worktrees import git

REMOTE_POLICY = "version: 1\nsettings:\n  remote: origin\n"


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A bare repository whose ``main`` holds README.md and src/keep.txt."""
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    seed = tmp_path / "seed"
    subprocess.run(["git", "clone", "-q", str(bare), str(seed)], check=True, capture_output=True)
    git(seed, "checkout", "-q", "-B", "main")
    (seed / "README.md").write_text("hello\n")
    (seed / "src").mkdir()
    (seed / "src" / "keep.txt").write_text("kept\n")
    git(seed, "add", ".")
    git(seed, "commit", "-q", "-m", "base")
    git(seed, "push", "-q", "origin", "main")
    return bare


def clone(remote: Path, name: str) -> Path:
    root = remote.parent / name
    subprocess.run(["git", "clone", "-q", str(remote), str(root)], check=True, capture_output=True)
    return root


@pytest.fixture
def hosts(remote: Path) -> Iterator[Callable[[str], TaskService]]:
    """``host(name)``: a clone of the remote with aictl initialised, the remote policy and
    the scripted AI ``bot``; its service."""
    import connectors

    connectors.register("scripted", Scripted)
    Scripted.running = threading.Event()
    made: list[TaskService] = []

    def host(name: str) -> TaskService:
        workspace, _ = initialise(clone(remote, name))
        (workspace.state_dir / "policy.yaml").write_text(REMOTE_POLICY)
        ais = AIService(workspace)
        ais.register("bot", connector="claude-code", check=False)
        ais.close()
        made.append(TaskService(workspace))
        return made[-1]

    yield host
    for service in made:
        service.close()


def writes(files: dict[str, str], seen: list[Path] | None = None) -> object:
    def agent(request: RunRequest, cancelled: threading.Event) -> RunResult:
        for name, text in files.items():
            target = request.cwd / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        if seen is not None:
            seen.append(request.cwd)
        return RunResult(status="success", num_turns=1)

    return agent


def remote_files(remote: Path) -> list[str]:
    return git(remote, "ls-tree", "-r", "--name-only", "main").split()


def test_each_host_starts_from_the_remote_and_pushes_its_merge_there(
    hosts: Callable[[str], TaskService], remote: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = hosts("a"), hosts("b")  # b's clone is made before a merges: its main is behind
    use(writes({"src/a.py": "a\n"}), monkeypatch)  # type: ignore[arg-type]
    done = Executor(a).execute(a.create("a", paths=["src/a.py"]).id, ai="bot")
    assert done.outcome == "done", done
    assert "src/a.py" in remote_files(remote)
    assert (a.workspace.root / "src" / "a.py").read_text() == "a\n"  # a's main followed
    seen: list[Path] = []
    use(writes({"src/b.py": "b\n"}, seen), monkeypatch)  # type: ignore[arg-type]
    done = Executor(b).execute(b.create("b", paths=["src/b.py"]).id, ai="bot")
    assert done.outcome == "done", done
    assert (seen[0] / "src" / "a.py").read_text() == "a\n"  # started from the remote's head
    assert {"src/a.py", "src/b.py"} <= set(remote_files(remote))
    root = b.workspace.root
    assert (root / "src" / "a.py").is_file() and (root / "src" / "b.py").is_file()
    assert git(root, "rev-parse", "main") == git(remote, "rev-parse", "main")
    assert git(root, "status", "--porcelain", "--", "src", "README.md") == ""


def prepared(service: TaskService, files: dict[str, str], paths: list[str]) -> BranchRecord:
    """A committed attempt of a new task in its worktree, ready to integrate."""
    task = service.create("t", paths=paths)
    trees = worktrees(service)
    record = trees.create(task.id, 1, "merge")
    for name, text in files.items():
        target = service.workspace.root / record.worktree / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    record, _ = trees.commit(record, author="bot", message=f"task {task.id}")
    return record


def worktrees(service: TaskService, notes: list[str] | None = None) -> Worktrees:
    branches = BranchStore(service.db, service.store.clock)
    progress = notes.append if notes is not None else None
    return Worktrees(service.workspace, branches, progress=progress, remote="origin")


def push_from(remote: Path, name: str, path: str, text: str) -> str:
    """Another host's merge, pushed to the remote's main; its commit."""
    other = clone(remote, name)
    (other / path).parent.mkdir(parents=True, exist_ok=True)
    (other / path).write_text(text)
    git(other, "add", ".")
    git(other, "commit", "-q", "-m", f"{name} was first")
    git(other, "push", "-q", "origin", "main")
    return git(other, "rev-parse", "HEAD").strip()


def test_a_push_overtaken_by_another_host_fetches_merges_again_and_lands(
    hosts: Callable[[str], TaskService], remote: Path
) -> None:
    a = hosts("a")
    record = prepared(a, {"src/a.py": "a\n"}, ["src/a.py"])
    pushed: list[str] = []

    def fence() -> None:  # right before the push: another host gets there first, once
        if not pushed:
            pushed.append(push_from(remote, "other", "docs/other.md", "first\n"))

    notes: list[str] = []
    done = worktrees(a, notes).integrate(record, title="t", fence=fence)
    assert done.status == "merged", done.reason
    head = git(remote, "rev-parse", "main").strip()
    assert git(remote, "rev-parse", f"{head}^1").strip() == pushed[0]  # merged over theirs
    assert {"src/a.py", "docs/other.md"} <= set(remote_files(remote))
    assert any("moved meanwhile" in note for note in notes)


def test_a_conflicting_push_from_another_host_refuses_and_keeps_the_branch(
    hosts: Callable[[str], TaskService], remote: Path
) -> None:
    a = hosts("a")
    record = prepared(a, {"src/a.py": "mine\n"}, ["src/a.py"])
    theirs = push_from(remote, "other", "src/a.py", "theirs\n")
    done = worktrees(a).integrate(record, title="t")
    assert done.status == "refused" and "src/a.py" in (done.reason or "")
    assert git(remote, "rev-parse", "main").strip() == theirs  # the remote is untouched
    assert git(a.workspace.root, "rev-parse", record.branch).strip() == record.task_commit


def test_a_lost_lease_pushes_nothing(hosts: Callable[[str], TaskService], remote: Path) -> None:
    a = hosts("a")
    record = prepared(a, {"src/a.py": "a\n"}, ["src/a.py"])
    before = git(remote, "rev-parse", "main")

    def fence() -> None:
        raise LeaseLost("lease 1:1 is stale: task 1 was claimed again")

    with pytest.raises(LeaseLost):
        worktrees(a).integrate(record, title="t", fence=fence)
    assert git(remote, "rev-parse", "main") == before


def test_a_run_killed_after_its_push_is_finished_once_by_a_rerun(
    hosts: Callable[[str], TaskService], remote: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = hosts("a")
    record = prepared(a, {"src/a.py": "a\n"}, ["src/a.py"])

    def killed(self: Worktrees, record: BranchRecord, merged: str) -> object:
        raise KeyboardInterrupt  # the process dies between the push and following it

    monkeypatch.setattr(Worktrees, "_follow", killed)
    with pytest.raises(KeyboardInterrupt):
        worktrees(a).integrate(record, title="t")
    pushed = git(remote, "rev-parse", "main").strip()
    monkeypatch.undo()
    again = BranchStore(a.db, a.store.clock).latest(record.task_id)
    assert again is not None and again.status == "integrating"
    done = worktrees(a).integrate(again, title="t")
    assert done.status == "merged"
    assert git(remote, "rev-parse", "main").strip() == pushed  # no second merge
    assert (a.workspace.root / "src" / "a.py").read_text() == "a\n"


def test_a_local_branch_with_commits_of_its_own_is_left_alone(
    hosts: Callable[[str], TaskService], remote: Path
) -> None:
    a = hosts("a")
    root = a.workspace.root
    (root / "notes.txt").write_text("local only\n")
    git(root, "add", "notes.txt")
    git(root, "commit", "-q", "-m", "not pushed")
    local = git(root, "rev-parse", "main")
    record = prepared(a, {"src/a.py": "a\n"}, ["src/a.py"])
    done = worktrees(a).integrate(record, title="t")
    assert done.status == "merged" and "commits of its own" in (done.reason or "")
    assert git(root, "rev-parse", "main") == local
    assert "src/a.py" in remote_files(remote) and "notes.txt" not in remote_files(remote)


def test_a_remote_without_the_branch_says_how_to_fix_it(
    hosts: Callable[[str], TaskService], remote: Path
) -> None:
    a = hosts("a")
    git(a.workspace.root, "checkout", "-q", "-b", "feature")
    task = a.create("t", paths=["src/a.py"])
    with pytest.raises(Exception, match="cannot fetch feature from the remote 'origin'") as raised:
        worktrees(a).create(task.id, 1, "merge")
    assert "git push origin feature" in str(getattr(raised.value, "hint", ""))


def test_the_policy_takes_a_remote_name_and_refuses_what_is_not_one(tmp_path: Path) -> None:
    from aictl.policy import validate_files

    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(REMOTE_POLICY)
    bad.write_text("version: 1\nsettings:\n  remote: --upload-pack=evil\n")
    assert validate_files([good]) == []
    [issue] = [issue for issue in validate_files([bad]) if issue.is_error]
    assert "settings.remote" in str(issue) and "not a git remote name" in str(issue)


def test_a_worktree_is_added_under_the_remotes_lock(
    hosts: Callable[[str], TaskService], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`git worktree add` leaves an all-zero HEAD for a moment, which fails a fetch running
    then ("bad object worktrees/task-5-1/HEAD", seen on three hosts): the add holds the lock
    every fetch takes, proved by a second lock of that file being refused during the add."""
    import fcntl

    from aictl.services import worktrees as module

    a = hosts("a")
    task = a.create("t", paths=["src/a.py"])
    lock_file = a.workspace.state_dir / "remote.lock"
    held: list[bool] = []
    real_run = module.Git.run

    def run(self: module.Git, *args: str, **kwargs: object) -> tuple[int, str, str]:
        if args[:2] == ("worktree", "add"):
            with lock_file.open("a") as other:
                try:
                    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    held.append(True)
                else:
                    fcntl.flock(other, fcntl.LOCK_UN)
                    held.append(False)
        return real_run(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(module.Git, "run", run)
    record = worktrees(a).create(task.id, 1, "merge")
    assert held == [True]
    assert (a.workspace.root / record.worktree / "README.md").read_text() == "hello\n"
