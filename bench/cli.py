"""4. CLI wall time: what an agent waits for each time it calls ``aictl``.

What is measured: whole processes, from ``subprocess.run`` to exit, output captured through
pipes as an agent would read it: ``aictl task list --json`` with 1,000 tasks in the database
and ``aictl task create`` (one glob), in a workspace found by walking up from the working
directory, with the default durability (``synchronous=FULL``).

Baselines from the same run: ``python -c pass`` (the interpreter's own start-up, which no
command can beat) and ``python -c "import typer"`` (the floor for any Typer CLI). The commands
are run round-robin (one of each, again), so a noisy moment hits all of them alike; a few
warm-up rounds first fill the OS page cache and the bytecode cache (see
``clean_environment``). Goal: a median under 100 ms.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import Goal, Measurement, Row, Settings, git_init, scratch_dir, summary_ms
from bench.fixtures import HistoryShape, build_history

GOAL = Goal("median < 100 ms", "value", "<", 100.0)
TASKS = 1_000
TIMEOUT_S = 60
_STRIPPED_ENV = ("AICTL_DB", "AICTL_SYNCHRONOUS", "AICTL_DEBUG", "PYTHONDONTWRITEBYTECODE")

PYTHON_PASS = "python -c pass"
PYTHON_TYPER = 'python -c "import typer"'
TASK_LIST = "aictl task list --json"
TASK_CREATE = "aictl task create"


def aictl_command() -> tuple[list[str], str]:
    """The ``aictl`` console script next to this interpreter, else ``python -m aictl``.

    ``sys.executable`` is not resolved: in a virtual environment it is a link whose folder
    holds the console scripts.
    """
    script = Path(sys.executable).parent / "aictl"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)], str(script)
    return [sys.executable, "-m", "aictl"], f"{sys.executable} -m aictl (no console script found)"


def commands(aictl: list[str]) -> dict[str, list[str]]:
    return {
        PYTHON_PASS: [sys.executable, "-c", "pass"],
        PYTHON_TYPER: [sys.executable, "-c", "import typer"],
        TASK_LIST: [*aictl, "task", "list", "--json"],
        TASK_CREATE: [*aictl, "task", "create", "bench cli task", "--path", "src/bench/**"],
    }


def clean_environment(bytecode_cache: Path) -> dict[str, str]:
    """This environment without the variables that would point aictl elsewhere or change its
    durability setting, and with Python's bytecode cache on, kept under ``bytecode_cache``.

    Why: with ``PYTHONDONTWRITEBYTECODE`` set (as on some CI and agent machines) and aictl
    installed in editable mode, every run compiles aictl's sources again, which measures the
    compiler rather than aictl. ``PYTHONPYCACHEPREFIX`` keeps the cache in the bench's scratch
    folder, so the bench writes nothing into the source tree; the warm-up rounds fill it.
    """
    env = {key: value for key, value in os.environ.items() if key not in _STRIPPED_ENV}
    env["PYTHONPYCACHEPREFIX"] = str(bytecode_cache)
    return env


def timed_run(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    """Wall time of one whole process and its stdout; a failing command is an error."""
    started = time.perf_counter()
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{argv} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return elapsed, done.stdout


def _workspace(folder: Path, seed: int) -> Path:
    """A repository root with ``.ai/state.db`` holding ``TASKS`` tasks."""
    from aictl.workspace import initialise

    root = git_init(folder / "repo")  # pins the repository root here
    workspace, _ = initialise(root)
    build_history(workspace.db_path, HistoryShape(size=TASKS, seed=seed))
    return root


def _check_listing(stdout: str) -> None:
    listed = json.loads(stdout)
    count = len(listed) if isinstance(listed, list) else len(listed.get("tasks", []))
    if count < TASKS:
        raise RuntimeError(f"`aictl task list --json` listed {count} tasks, expected {TASKS}+")


def run(settings: Settings) -> Measurement:
    runs, warmup = (5, 1) if settings.quick else (20, 3)
    aictl, aictl_text = aictl_command()
    measurement = Measurement(
        "cli",
        "4. CLI wall time (whole processes)",
        parameters={"runs": runs, "warmup": warmup, "tasks_in_database": TASKS,
                    "aictl": aictl_text, "python": sys.executable},
    )  # fmt: skip
    argvs = commands(aictl)
    samples: dict[str, list[float]] = {label: [] for label in argvs}
    with scratch_dir("cli") as folder:
        env = clean_environment(folder / "pycache")
        root = _workspace(folder, settings.seed)
        for round_ in range(warmup + runs):
            for label, argv in argvs.items():
                elapsed, stdout = timed_run(argv, root, env)
                if round_ == 0 and label == TASK_LIST:
                    _check_listing(stdout)
                if round_ >= warmup:
                    samples[label].append(elapsed)
    stats = {label: summary_ms(values) for label, values in samples.items()}
    base = stats[PYTHON_PASS]
    for label in (TASK_LIST, TASK_CREATE):
        shown = f"{label} ({TASKS:,} tasks)" if label == TASK_LIST else label
        measurement.rows.append(Row(
            f"{shown}, median", stats[label]["median_ms"], "ms", PYTHON_PASS, base["median_ms"],
            goal=GOAL, detail=stats[label],
        ))  # fmt: skip
        measurement.rows.append(Row(
            f"{shown}, p95", stats[label]["p95_ms"], "ms", PYTHON_PASS, base["p95_ms"],
        ))  # fmt: skip
    measurement.rows.append(Row(
        f"{PYTHON_TYPER}, median", stats[PYTHON_TYPER]["median_ms"], "ms", PYTHON_PASS,
        base["median_ms"], detail=stats[PYTHON_TYPER],
    ))  # fmt: skip
    measurement.notes += [
        f"{runs} timed runs of each command after {warmup} warm-up round(s), round-robin",
        f"{PYTHON_PASS}: median {base['median_ms']:.1f} ms, p95 {base['p95_ms']:.1f} ms",
        f"aictl: {aictl_text}",
        "bytecode cache on (PYTHONPYCACHEPREFIX in the scratch folder, filled by the warm-up)",
    ]
    return measurement
