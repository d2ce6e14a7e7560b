"""16. Start-up beside the nearest peer: ``task list --json`` and ``task create`` against
``claude-agent-sync`` 0.4.0 (issue 15).

What is measured: whole processes, output captured through pipes, as in part 4. aictl's
``task list --json`` and ``task create`` (one glob) against the peer's ``agent-sync tasks
--json`` and ``agent-sync create-task`` (one file), each tool in its own git repository seeded
with ``TASKS`` tasks, plus ``python -c pass`` (the interpreter's own start-up). The five
commands run round-robin, so a noisy moment hits them all alike; the creates add tasks to
both databases at the same pace. Goal: aictl's p50 at or below the peer's (ratio <= 1).

The peer is installed from PyPI with pip into a throw-away virtual environment made by this
same interpreter (the same Python for both). When it cannot be installed (no network, no
index), the part says so and reports aictl's figures alone.

Then ``python -X importtime`` on aictl's ``task list --json``, a few runs: the total of the
modules' own import times (median) and the modules that cost the most, to show where the
time over ``python -c pass`` goes.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from bench.cli import aictl_command, clean_environment, timed_run
from bench.common import Goal, Measurement, Row, Settings, git_init, scratch_dir, summary_ms

PEER = "claude-agent-sync==0.4.0"
TASKS = 200
INSTALL_TIMEOUT_S = 300
TIMEOUT_S = 60
GOAL = Goal("ratio <= 1", "ratio", "<=", 1.0)
TOP_MODULES = 10

PYTHON_PASS = "python -c pass"
AICTL_LIST = "aictl task list --json"
AICTL_CREATE = "aictl task create"
PEER_LIST = "agent-sync tasks --json"
PEER_CREATE = "agent-sync create-task"

_PEER_SEED = """
import sys
from agent_sync import db, tasks
conn = db.connect()
for i in range(int(sys.argv[1])):
    tasks.create_task(conn, f"seeded task {i}", files=[f"src/seed{i}.py"], priority=i % 5)
conn.close()
"""


def install_peer(folder: Path) -> tuple[Path | None, str]:
    """The peer's ``agent-sync`` script in a new virtual environment under ``folder``, or None
    and why not."""
    venv = folder / "peer-venv"
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
         "--disable-pip-version-check", PEER],
    ]  # fmt: skip
    for argv in steps:
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return None, f"{' '.join(argv[:4])}: {error}"
        if done.returncode != 0:
            return None, f"{' '.join(argv[:4])} exited {done.returncode}: {done.stderr[-300:]}"
    script = venv / "bin" / "agent-sync"
    return (script, f"{PEER} in {venv}") if script.is_file() else (None, f"no {script}")


def _aictl_workspace(folder: Path) -> Path:
    """A repository with ``TASKS`` tasks in aictl's database, made through the service."""
    from aictl.services.tasks import TaskService
    from aictl.workspace import initialise

    root = git_init(folder / "aictl-repo")
    workspace, _ = initialise(root)
    service = TaskService(workspace)
    try:
        for i in range(TASKS):
            service.create(f"seeded task {i}", paths=[f"src/seed{i}/**"], priority=i % 5)
    finally:
        service.close()
    return root


def _peer_workspace(folder: Path, script: Path, env: dict[str, str]) -> Path:
    """A repository with ``TASKS`` tasks in the peer's database, made through its library."""
    root = git_init(folder / "peer-repo")
    python = script.parent / "python"
    subprocess.run(
        [str(python), "-c", _PEER_SEED, str(TASKS)], cwd=root, env=env, check=True,
        capture_output=True, timeout=TIMEOUT_S,
    )  # fmt: skip
    return root


def _check_listing(label: str, stdout: str) -> None:
    listed = json.loads(stdout)
    count = len(listed) if isinstance(listed, list) else len(listed.get("tasks", []))
    if count < TASKS:
        raise RuntimeError(f"`{label}` listed {count} tasks, expected {TASKS}+")


def import_profile(argv: list[str], root: Path, env: dict[str, str], runs: int) -> dict[str, float]:
    """Each module's own import time in ms (the median over ``runs`` runs of ``argv`` under
    ``python -X importtime``), costliest first."""
    own: dict[str, list[float]] = defaultdict(list)
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", *argv], cwd=root, env=env,
            capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
        )  # fmt: skip
        for line in done.stderr.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            self_us, _cumulative, name = line[len("import time:") :].split("|", 2)
            own[name.strip()].append(int(self_us) / 1000)
    medians = {name: statistics.median(values) for name, values in own.items()}
    return dict(sorted(medians.items(), key=lambda item: -item[1]))


def by_package(profile: dict[str, float]) -> dict[str, float]:
    """The profile summed by top-level package (``aictl``, ``typer``, ``json``...)."""
    totals: dict[str, float] = defaultdict(float)
    for name, ms in profile.items():
        totals[name.split(".")[0]] += ms
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


def _pair_rows(
    measurement: Measurement, stats: dict[str, dict[str, float]], peer_found: bool
) -> None:
    for mine, theirs in ((AICTL_LIST, PEER_LIST), (AICTL_CREATE, PEER_CREATE)):
        shown = f"{mine} ({TASKS} tasks)"
        for key, name in (("median_ms", "p50"), ("p95_ms", "p95")):
            measurement.rows.append(Row(
                f"{shown}, {name}", stats[mine][key], "ms",
                theirs if peer_found else "", stats[theirs][key] if peer_found else None,
                goal=GOAL if peer_found and name == "p50" else None, detail=stats[mine],
            ))  # fmt: skip
    if peer_found:
        for theirs in (PEER_LIST, PEER_CREATE):
            measurement.rows.append(Row(
                f"{theirs}, p50", stats[theirs]["median_ms"], "ms", PYTHON_PASS,
                stats[PYTHON_PASS]["median_ms"], detail=stats[theirs],
            ))  # fmt: skip


def run(settings: Settings) -> Measurement:
    runs, warmup, profiles = (5, 1, 2) if settings.quick else (30, 3, 5)
    aictl, aictl_text = aictl_command()
    measurement = Measurement(
        "startup",
        "16. Start-up beside the peer: task list / create, whole processes",
        parameters={"runs": runs, "warmup": warmup, "tasks_in_database": TASKS, "peer": PEER,
                    "aictl": aictl_text, "python": sys.executable},
    )  # fmt: skip
    with scratch_dir("startup") as folder:
        env = clean_environment(folder / "pycache")
        env = {key: value for key, value in env.items() if not key.startswith("AGENT_SYNC")}
        script, peer_text = install_peer(folder)
        aictl_root = _aictl_workspace(folder)
        argvs: dict[str, tuple[list[str], Path]] = {
            PYTHON_PASS: ([sys.executable, "-c", "pass"], aictl_root),
            AICTL_LIST: ([*aictl, "task", "list", "--json"], aictl_root),
            AICTL_CREATE: ([*aictl, "task", "create", "bench task", "--path", "src/b/**"],
                           aictl_root),
        }  # fmt: skip
        if script is not None:
            peer_root = _peer_workspace(folder, script, env)
            argvs[PEER_LIST] = ([str(script), "tasks", "--json"], peer_root)
            argvs[PEER_CREATE] = (
                [str(script), "create-task", "bench task", "--file", "src/b.py"],
                peer_root,
            )
        samples: dict[str, list[float]] = {label: [] for label in argvs}
        for round_ in range(warmup + runs):
            for label, (argv, cwd) in argvs.items():
                elapsed, stdout = timed_run(argv, cwd, env)
                if round_ == 0 and label in (AICTL_LIST, PEER_LIST):
                    _check_listing(label, stdout)
                if round_ >= warmup:
                    samples[label].append(elapsed)
        profile = import_profile(argvs[AICTL_LIST][0], aictl_root, env, profiles)
    stats = {label: summary_ms(values) for label, values in samples.items()}
    _pair_rows(measurement, stats, script is not None)
    imports = sum(profile.values())
    measurement.rows.append(Row(
        f"imports of {AICTL_LIST} (sum of own times), median", imports, "ms", PYTHON_PASS,
        stats[PYTHON_PASS]["median_ms"],
        detail={"modules": dict(list(profile.items())[:40]), "packages": by_package(profile)},
    ))  # fmt: skip
    top = ", ".join(f"{name} {ms:.1f}" for name, ms in list(profile.items())[:TOP_MODULES])
    packages = ", ".join(f"{name} {ms:.1f}" for name, ms in list(by_package(profile).items())[:8])
    measurement.notes += [
        f"{runs} timed rounds after {warmup} warm-up, round-robin over {len(argvs)} commands",
        f"{PYTHON_PASS}: median {stats[PYTHON_PASS]['median_ms']:.1f} ms",
        f"peer: {peer_text}" if script else f"peer NOT installed, aictl alone: {peer_text}",
        f"aictl: {aictl_text}",
        f"imports (python -X importtime, median of {profiles}), {len(profile)} modules; "
        f"costliest own times (ms): {top}",
        f"by package (ms): {packages}",
    ]
    return measurement
