"""8. Soak: many tasks through ``aictl daemon start`` with the real Claude Code CLI.

What is measured, in a fresh temporary git repository with one registered Claude Code AI,
against one ``aictl.model_server`` whose script is a single final text answer:

- *steady*: ``TASKS`` independent tasks (1,000; 24 with ``--quick``) are created, then
  ``aictl daemon start --foreground --concurrency C`` runs until every task is done. Figures:
  tasks per minute (first dispatch to last completion), the daemon process's resident memory
  (``VmRSS`` from ``/proc``, its own, not its agents') sampled every second: peak, final, and
  growth from the end of warm-up (the first 10% of the tasks) to the end (goal: under 10%);
  tasks lost (not done at the end) and done twice (more than one ``task.completed`` audit
  event), goal zero for both;
- *crash*: the same with ``CRASH_TASKS`` tasks, the daemon killed with SIGKILL when half of
  them are done, then started again: lost and done-twice again (goal zero), and the tasks per
  minute of the whole, restart included.

Nothing is retried or fixed up by the bench: a daemon that stops before the work is done, or a
task that fails, is reported as it is (lost tasks).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import Goal, Measurement, Row, Settings, scratch_dir
from connectors.claude_code.command import sdk_binary

CLAUDE = sdk_binary() or Path("claude-agent-sdk-is-not-installed")
SCRIPT: list[dict[str, Any]] = [{"text": "Done.", "usage": {"input_tokens": 200}}]
ZERO = Goal("zero", "value", "<=", 0)
GROWTH = Goal("growth < 10% after warm-up", "value", "<", 10.0)
POLICY = "version: 1\nsettings:\n  lease_ttl: 10s\n  max_attempts: 5\n"
STALL_LIMIT_S = 300.0
"""Give up when no task finishes for this long (the daemon is stuck or dead)."""


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=b", "-c", "user.email=b@example.com", *args],
        cwd=root, check=True, capture_output=True,
    )  # fmt: skip


def _aictl(root: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "aictl", *args],
        cwd=root, env=env, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"aictl {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def _repository(folder: Path, env: dict[str, str], tasks: int) -> Path:
    """A git repository with aictl initialised, the AI registered and ``tasks`` tasks."""
    root = folder / "repo"
    root.mkdir(parents=True)
    _git(root, "init", "-q")
    _aictl(root, env, "init")
    (root / ".ai" / "policy.yaml").write_text(POLICY)
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "first")
    _aictl(
        root,
        env,
        "ai",
        "register",
        "claude-1",
        "--connector",
        "claude-code",
        "--max-concurrency",
        "8",
    )
    from aictl.services.tasks import TaskService
    from aictl.workspace import locate

    service = TaskService(locate(cwd=root))
    try:
        for number in range(tasks):
            service.create(f"Soak {number}", paths=[f"soak/{number}.txt"])
    finally:
        service.close()
    return root


def _rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _counts(root: Path) -> tuple[int, Counter[int], int]:
    """Tasks done, ``task.completed`` events per task, and all tasks."""
    from aictl.services.audit import AuditService
    from aictl.services.tasks import TaskService
    from aictl.workspace import locate

    workspace = locate(cwd=root)
    service = TaskService(workspace)
    audit = AuditService(workspace)
    try:
        tasks = service.list_tasks()
        completed = Counter(
            entry.task_id for entry in audit.entries(kinds=["task.completed"]) if entry.task_id
        )
    finally:
        service.close()
        audit.close()
    return sum(str(task.status) == "done" for task in tasks), completed, len(tasks)


def _start(root: Path, env: dict[str, str], concurrency: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "aictl", "daemon", "start", "--foreground",
             "--concurrency", str(concurrency), "--grace", "5s"],
            cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


class _Run:
    """Drive one daemon until ``until`` tasks are done, sampling its memory every second."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.samples: list[tuple[int, int]] = []  # (tasks done, RSS kB)

    def until(self, daemon: subprocess.Popen[bytes], target: int) -> int:
        last_done, last_change = -1, time.monotonic()
        while True:
            done, _, _ = _counts(self.root)
            rss = _rss_kb(daemon.pid)
            if rss is not None:
                self.samples.append((done, rss))
            if done != last_done:
                last_done, last_change = done, time.monotonic()
            if done >= target or daemon.poll() is not None:
                return done
            if time.monotonic() - last_change > STALL_LIMIT_S:
                return done
            time.sleep(1.0)


def _stop(daemon: subprocess.Popen[bytes]) -> int:
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
    try:
        return daemon.wait(120)
    except subprocess.TimeoutExpired:
        daemon.kill()
        return daemon.wait()


def _phase(
    folder: Path, env: dict[str, str], tasks: int, concurrency: int, *, crash: bool
) -> dict[str, Any]:
    root = _repository(folder, env, tasks)
    log = folder / "daemon.out"
    run = _Run(root)
    started = time.monotonic()
    daemon = _start(root, env, concurrency, log)
    restarts = 0
    try:
        if crash:
            run.until(daemon, tasks // 2)
            daemon.send_signal(signal.SIGKILL)
            daemon.wait()
            restarts = 1
            daemon = _start(root, env, concurrency, log)
        run.until(daemon, tasks)
    finally:
        code = _stop(daemon)
    elapsed = time.monotonic() - started
    done, completed, total = _counts(root)
    # Memory after warm-up, of one process: the crash phase has two, so no growth figure.
    warm = [rss for finished, rss in run.samples if finished >= max(1, tasks // 10)]
    growth = 100.0 * (warm[-1] - warm[0]) / warm[0] if len(warm) >= 2 and not crash else None
    return {
        "tasks": total,
        "done": done,
        "lost": total - done,
        "done_twice": sum(1 for count in completed.values() if count > 1),
        "seconds": elapsed,
        "tasks_per_minute": 60.0 * done / elapsed if elapsed else 0.0,
        "peak_rss_mb": max((rss for _, rss in run.samples), default=0) / 1024,
        "final_rss_mb": (run.samples[-1][1] / 1024) if run.samples else 0.0,
        "warm_rss_mb": (warm[0] / 1024) if warm else None,
        "growth_percent": growth,
        "exit_code": code,
        "restarts": restarts,
    }


def run(settings: Settings) -> Measurement:
    tasks, crash_tasks, concurrency = (24, 12, 2) if settings.quick else (1000, 200, 2)
    measurement = Measurement(
        "soak",
        "Soak: tasks through the daemon with the real Claude Code CLI",
        parameters={"tasks": tasks, "crash_tasks": crash_tasks, "concurrency": concurrency},
    )
    if not os.access(CLAUDE, os.X_OK):
        measurement.error = f"the Claude Code CLI is missing at {CLAUDE}: `make install`"
        return measurement
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
        with scratch_dir("soak") as folder:
            steady = _phase(folder / "steady", env, tasks, concurrency, crash=False)
        with scratch_dir("soak-crash") as folder:
            crashed = _phase(folder / "crash", env, crash_tasks, concurrency, crash=True)
    measurement.rows += [
        Row("steady: tasks per minute", steady["tasks_per_minute"], "tasks/min", detail=steady),
        Row("steady: daemon peak RSS", steady["peak_rss_mb"], "MB"),
        Row("steady: daemon final RSS", steady["final_rss_mb"], "MB"),
        Row("steady: RSS growth after warm-up", steady["growth_percent"], "%", goal=GROWTH),
        Row("steady: tasks lost", steady["lost"], "tasks", goal=ZERO),
        Row("steady: tasks done twice", steady["done_twice"], "tasks", goal=ZERO),
        Row(
            "crash: tasks per minute (restart included)",
            crashed["tasks_per_minute"],
            "tasks/min",
            detail=crashed,
        ),
        Row("crash: tasks lost", crashed["lost"], "tasks", goal=ZERO),
        Row("crash: tasks done twice", crashed["done_twice"], "tasks", goal=ZERO),
    ]
    measurement.notes += [
        f"concurrency {concurrency}; one model turn per task (a final text answer)",
        "RSS is the daemon process's own (VmRSS), its agents excluded; warm-up is the first "
        "10% of the tasks",
        f"crash: SIGKILL at {crash_tasks // 2} done, restart, lease_ttl 10s",
    ]
    return measurement
