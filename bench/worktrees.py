"""12. The cost of isolation: a worktree, a commit and a merge per task, beside the shared tree.

What is measured, in a repository of ``FILES`` committed files (100 folders of 100): the git
work aictl does around one task's run, with the agent's own work reduced to writing one file.

- **shared** (the baseline): what the executor does in the shared tree, ``git status`` of the
  whole tree before and after the run (its snapshot) and ``git diff`` of the changed file;
- **worktree**: ``Worktrees.create`` (the ``task_branches`` row and ``git worktree add`` of
  the whole tree), the same snapshot in the worktree, ``Worktrees.commit`` (``git add -A`` and
  a commit with trailers), the diff from git and ``Worktrees.integrate`` (``merge-tree``,
  ``commit-tree``, ``update-ref`` under the integration lock, the user's files checked out).

The two arms alternate task by task. Rows: p50 and p95 per task of each arm and the p50 added by
isolation, against the issue's goal of under 300 ms added per task. (The daemon's throughput on
100 one-step tasks at concurrency 2 is not measured here.)
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from aictl.services.tasks import TaskService
from aictl.services.worktrees import Git, Worktrees
from aictl.store.branches import BranchStore
from aictl.workspace import initialise
from bench.common import Goal, Measurement, Row, Settings, median, percentile, scratch_dir

FILES = 10_000
GOAL = Goal("added < 300 ms per task", "value", "<", 300.0)


def _repository(root: Path) -> None:
    root.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    for folder in range(FILES // 100):
        place = root / "src" / f"m{folder:03d}"
        place.mkdir(parents=True)
        for number in range(100):
            (place / f"f{number:03d}.py").write_text(f"VALUE = {folder * 100 + number}\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com"}
    env.update(GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@example.com")
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, env=env)
    subprocess.run(["git", "commit", "-q", "-m", "base"], cwd=root, check=True, env=env)


def _shared(git: Git, root: Path, number: int) -> float:
    started = time.perf_counter()
    git.run("status", "--porcelain=v1", "-z", "--untracked-files=all")
    (root / "src" / "shared").mkdir(exist_ok=True)
    (root / "src" / "shared" / f"s{number}.py").write_text("shared = True\n")
    git.run("status", "--porcelain=v1", "-z", "--untracked-files=all")
    git.run("diff", "HEAD", "--", f"src/shared/s{number}.py")
    elapsed = time.perf_counter() - started
    git.run("add", f"src/shared/s{number}.py")  # keep the tree clean for the next task
    git.run("-c", "user.name=b", "-c", "user.email=b@e", "commit", "-q", "-m", "shared")
    return elapsed


def _isolated(worktrees: Worktrees, service: TaskService, number: int) -> float:
    task = service.create(f"t{number}", paths=[f"src/w{number}/**"])
    started = time.perf_counter()
    record = worktrees.create(task.id, 1, "merge")
    tree = worktrees.root / record.worktree
    git = Git(tree, worktrees.environ)
    git.run("status", "--porcelain=v1", "-z", "--untracked-files=all")
    (tree / "src" / f"w{number}").mkdir()
    (tree / "src" / f"w{number}" / "a.py").write_text("isolated = True\n")
    git.run("status", "--porcelain=v1", "-z", "--untracked-files=all")
    record, _ = worktrees.commit(record, author="bench", message=f"task {task.id}\n")
    assert record.task_commit is not None
    worktrees.diffstat(record.base_commit, record.task_commit)
    done = worktrees.integrate(record, title=task.title)
    elapsed = time.perf_counter() - started
    if done.status != "merged":
        raise RuntimeError(f"task {task.id} was not merged: {done.reason}")
    return elapsed


def run(settings: Settings) -> Measurement:
    tasks = 4 if settings.quick else 20
    measurement = Measurement(
        "worktrees",
        "12. Isolation per task: worktree, commit and merge beside the shared tree",
        parameters={"files": FILES, "tasks_per_arm": tasks},
    )
    shared: list[float] = []
    isolated: list[float] = []
    with scratch_dir("worktrees") as folder:
        root = folder / "repo"
        _repository(root)
        workspace, _ = initialise(root)
        service = TaskService(workspace)
        try:
            worktrees = Worktrees(workspace, BranchStore(service.db, service.store.clock))
            git = Git(root, worktrees.environ)
            for number in range(tasks):
                shared.append(_shared(git, root, number))
                isolated.append(_isolated(worktrees, service, number))
        finally:
            service.close()

    def ms(samples: list[float], fraction: float) -> float:
        return 1000 * (median(samples) if fraction == 0.5 else percentile(samples, fraction))

    added = ms(isolated, 0.5) - ms(shared, 0.5)
    measurement.rows += [
        Row("worktree: p50 per task", ms(isolated, 0.5), "ms", "shared", ms(shared, 0.5)),
        Row("worktree: p95 per task", ms(isolated, 0.95), "ms", "shared", ms(shared, 0.95)),
        Row("added by isolation (p50 difference)", added, "ms", goal=GOAL),
    ]
    return measurement
