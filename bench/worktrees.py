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
isolation, against the issue's goal of under 300 ms added per task.

The second figure is the daemon's throughput with each isolation, the real ``claude`` (the
SDK's) against one ``aictl.model_server``. Per arm, shared first: a fresh repository (``git
init``, ``aictl init``, a commit of ``DAEMON_FILES`` files), the policy ``isolation: shared``
or ``worktree``, ``concurrency: 2`` and ``max_attempts: 1`` (a failure is reported, not
retried), one Claude Code AI (``max_concurrency`` 2), ``DAEMON_TASKS`` tasks (20 with
``--quick``) on the disjoint globs ``out/<id>/**``, each asked by the script to ``Write``
``out/<id>/result.txt`` then to answer; then ``aictl daemon start --foreground`` until every
task is finished. The time runs from the daemon's start to the last task's ``finished_at``.
Rows: tasks per second of the worktree arm beside the shared arm, against the issue's goal
(worktree >= shared / 1.3); then what is checked after each arm, each with goal zero: tasks
not done, result files missing from the user's working tree, worktrees not merged (arm
worktree) and arms whose ``aictl audit verify`` failed. Nothing is retried or fixed up; a
daemon that finishes no task for ``STALL_LIMIT_S`` ends the arm.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from aictl.services.tasks import TaskService
from aictl.services.worktrees import Git, Worktrees
from aictl.store.branches import BranchStore
from aictl.workspace import initialise, locate
from bench.common import Goal, Measurement, Row, Settings, median, percentile, scratch_dir
from connectors.claude_code.command import sdk_binary

FILES = 10_000
GOAL = Goal("added < 300 ms per task", "value", "<", 300.0)

CLAUDE = sdk_binary() or Path("claude-agent-sdk-is-not-installed")
DAEMON_TASKS = 100
DAEMON_FILES = 200
DAEMON_GOAL = Goal("worktree >= shared / 1.3", "ratio", ">=", 1 / 1.3)
ZERO = Goal("zero", "value", "<=", 0)
STALL_LIMIT_S = 300.0
"""Give up on an arm when no task finishes for this long (the daemon is stuck or dead)."""
SCRIPT: list[dict[str, Any]] = [
    {
        "tool_use": {
            "name": "Write",
            "input": {"file_path": "out/{task}/result.txt", "content": "task {task}\n"},
        },
        "usage": {"input_tokens": 1800, "output_tokens": 40},
    },
    {"text": "Done.", "usage": {"input_tokens": 1900, "output_tokens": 5}},
]


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


# --------------------------------------------------------------------------- the daemon


def _git_quiet(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def _aictl(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aictl", *args],
        cwd=root, env=env, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip


def _checked(root: Path, env: dict[str, str], *args: str) -> str:
    done = _aictl(root, env, *args)
    if done.returncode != 0:
        raise RuntimeError(f"aictl {' '.join(args)} failed in {root}: {done.stderr.strip()}")
    return done.stdout


def _daemon_repository(root: Path, env: dict[str, str], isolation: str, tasks: int) -> list[int]:
    """A fresh repository: ``DAEMON_FILES`` committed files, aictl initialised with the arm's
    policy, one AI and ``tasks`` tasks on disjoint globs; returns the task ids."""
    root.mkdir(parents=True)
    _git_quiet(root, "init", "-q", "-b", "main")
    _git_quiet(root, "config", "user.name", "bench")
    _git_quiet(root, "config", "user.email", "bench@example.com")
    for number in range(DAEMON_FILES):
        place = root / "src" / f"m{number // 20:02d}"
        place.mkdir(parents=True, exist_ok=True)
        (place / f"f{number:03d}.py").write_text(f"VALUE = {number}\n")
    _checked(root, env, "init")
    (root / ".ai" / "policy.yaml").write_text(
        "version: 1\nsettings:\n"
        f"  isolation: {isolation}\n  concurrency: 2\n  max_attempts: 1\n"
        "  timeouts:\n    task: 3m\n"
    )
    _git_quiet(root, "add", "-A")
    _git_quiet(root, "commit", "-q", "-m", "base")
    _checked(
        root, env, "ai", "register", "claude-1", "--connector", "claude-code",
        "--max-concurrency", "2",
    )  # fmt: skip
    service = TaskService(locate(cwd=root))
    try:
        ids = []
        for number in range(tasks):
            task = service.create(f"Write result {number}", paths=[f"out/{number + 1}/**"])
            if task.paths != [f"out/{task.id}/**"]:  # the script writes out/<id>/
                raise RuntimeError(f"task {task.id} got paths {task.paths}: ids are not 1..n")
            ids.append(task.id)
    finally:
        service.close()
    return ids


def _finished(root: Path) -> tuple[int, int, datetime | None]:
    """Tasks done, tasks finished (done or not), and the last ``finished_at``."""
    service = TaskService(locate(cwd=root))
    try:
        tasks = service.list_tasks()
    finally:
        service.close()
    ended = [task for task in tasks if task.finished_at is not None]
    last = max((task.finished_at for task in ended if task.finished_at), default=None)
    return sum(str(task.status) == "done" for task in tasks), len(ended), last


def _arm(folder: Path, env: dict[str, str], isolation: str, tasks: int) -> dict[str, Any]:
    root = folder / isolation
    ids = _daemon_repository(root, env, isolation, tasks)
    log = folder / f"daemon-{isolation}.out"
    started_wall = time.time()
    with log.open("ab") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "aictl", "daemon", "start", "--foreground", "--grace", "5s"],
            cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        last_count, last_change = -1, time.monotonic()
        while True:
            _, count, _ = _finished(root)
            if count != last_count:
                last_count, last_change = count, time.monotonic()
            if count >= tasks or daemon.poll() is not None:
                break
            if time.monotonic() - last_change > STALL_LIMIT_S:
                break
            time.sleep(0.5)
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
        try:
            code = daemon.wait(120)
        except subprocess.TimeoutExpired:
            daemon.kill()
            code = daemon.wait()
    done, count, last = _finished(root)
    seconds = (last.timestamp() - started_wall) if last is not None else float("nan")
    missing = [i for i in ids if not (root / "out" / str(i) / "result.txt").is_file()]
    not_merged = 0
    if isolation == "worktree":
        service = TaskService(locate(cwd=root))
        try:
            records = BranchStore(service.db, service.store.clock).list_all()
        finally:
            service.close()
        merged = {record.task_id for record in records if record.status == "merged"}
        not_merged = sum(1 for i in ids if i not in merged)
    verify = _aictl(root, env, "audit", "verify")
    return {
        "isolation": isolation,
        "tasks": tasks,
        "done": done,
        "not_done": tasks - done,
        "finished": count,
        "seconds": seconds,
        "tasks_per_second": done / seconds if seconds > 0 else float("nan"),
        "files_missing": len(missing),
        "worktrees_not_merged": not_merged,
        "audit_verify_exit": verify.returncode,
        "daemon_exit": code,
    }


def _daemon_rows(measurement: Measurement, tasks: int) -> None:
    if not os.access(CLAUDE, os.X_OK):
        measurement.notes.append(f"daemon figure not measured: no Claude Code CLI at {CLAUDE}")
        measurement.error = f"the Claude Code CLI is missing at {CLAUDE}: `make install`"
        return
    from aictl.model_server import serve

    with serve(SCRIPT) as server:
        env = {
            **{k: v for k, v in os.environ.items() if k not in ("AICTL_DB",)},
            "AICTL_CLAUDE_BIN": str(CLAUDE),
            "ANTHROPIC_BASE_URL": server.url,
            "ANTHROPIC_API_KEY": "dummy-key-for-the-local-model-server",
            "CLAUDE_CODE_MAX_RETRIES": "0",
            "API_TIMEOUT_MS": "60000",
            "AICTL_GLOBAL_POLICY": "",
        }
        with scratch_dir("worktrees-daemon") as folder:
            shared = _arm(folder, env, "shared", tasks)
            isolated = _arm(folder, env, "worktree", tasks)
    arms = (shared, isolated)
    measurement.rows += [
        Row(
            "daemon, worktree: tasks per second",
            isolated["tasks_per_second"],
            "tasks/s",
            "shared",
            shared["tasks_per_second"],
            goal=DAEMON_GOAL,
            detail={"shared": shared, "worktree": isolated},
        ),
        Row("daemon: tasks not done (both arms)", sum(a["not_done"] for a in arms), "tasks",
            goal=ZERO),
        Row("daemon: result files missing (both arms)", sum(a["files_missing"] for a in arms),
            "files", goal=ZERO),
        Row("daemon: worktrees not merged", isolated["worktrees_not_merged"], "tasks", goal=ZERO),
        Row("daemon: arms whose audit verify failed",
            sum(a["audit_verify_exit"] != 0 for a in arms), "arms", goal=ZERO),
    ]  # fmt: skip
    measurement.notes += [
        f"daemon: {tasks} one-step tasks per arm (a Write, then a text answer), concurrency 2, "
        f"shared arm {shared['seconds']:.1f} s, worktree arm {isolated['seconds']:.1f} s "
        "(daemon start to the last finished_at)",
    ]


def run(settings: Settings) -> Measurement:
    tasks = 4 if settings.quick else 20
    daemon_tasks = 20 if settings.quick else DAEMON_TASKS
    measurement = Measurement(
        "worktrees",
        "12. Isolation per task: worktree, commit and merge beside the shared tree",
        parameters={
            "files": FILES,
            "tasks_per_arm": tasks,
            "daemon_tasks_per_arm": daemon_tasks,
            "daemon_files": DAEMON_FILES,
        },
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
    _daemon_rows(measurement, daemon_tasks)
    return measurement
