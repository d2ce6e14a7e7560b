"""7. Execution overhead: what ``aictl task execute`` adds to the agent it runs.

What is measured: whole processes, wall time, against one scripted model server
(``aictl.model_server``) whose script is a single final text answer (no tool use, so no file
changes and no tests run):

- (A) ``aictl task execute --ai claude-1`` in a fresh temporary git repository (``git init``,
  ``aictl init``, one commit, ``aictl ai register claude-1 --connector claude-code``, one task
  created; all untimed), driving the real Claude Code CLI;
- (B) the same ``claude -p --output-format=stream-json --verbose ...`` run directly: the argv
  from the connector's own ``build_command`` (same flags, the executor's default permission
  mode), the environment from its ``scrub_env`` (same allow-list, a fresh HOME and config
  folder), the same prompt on stdin, in a fresh temporary directory.

A and B alternate (round-robin), after warm-up rounds, so a noisy moment hits both alike.
Every round checks that the task ended ``done`` (exit 0, ``aictl task show``, the evidence
file) and that the direct run reported a successful ``result`` event: a failed run is an
error, never a sample. Goal (issue 4): median of A minus median of B under 100 ms.
Diagnostic: the part of A spent outside the agent, A minus the agent's own duration recorded
in ``.ai/runs/<task>/<attempt>/evidence.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.cli import aictl_command, clean_environment
from bench.common import Goal, Measurement, Row, Settings, median, scratch_dir, summary_ms
from connectors.claude_code.command import sdk_binary

GOAL = Goal("median of paired differences < 100 ms", "value", "<", 100.0)
TIMEOUT_S = 60
SCRIPT: list[dict[str, Any]] = [
    {"text": "Nothing to change: the task is done.", "usage": {"input_tokens": 900}}
]
TITLE = "Bench execute"
PATHS = "src/**"
AI_ID = "claude-1"
#: The claude binary the claude-agent-sdk wheel carries (installed with aictl).
CLAUDE = sdk_binary() or Path("claude-agent-sdk-is-not-installed")
AGENT_KNOBS = {"CLAUDE_CODE_MAX_RETRIES": "0", "API_TIMEOUT_MS": "10000"}


def _prompt() -> str:
    """The prompt the executor builds for the bench task (``build_prompt``)."""
    return f"Task 1: {TITLE}\n\nYou may edit only these paths: {PATHS}"


def _direct_command(
    folder: Path, env: dict[str, str], sandboxed_in: Path | None = None
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment the connector would use, built by the connector's helpers;
    with ``sandboxed_in`` (a repository), inside the sandbox aictl would plan for the task."""
    from aictl.services.confinement import sandbox_for
    from aictl.services.executor import AGENT_ENV, DEFAULT_PERMISSION_MODE
    from aictl.workspace import Workspace
    from connectors import RunRequest
    from connectors.claude_code.command import build_command, scrub_env

    home, config = folder / "home", folder / "config"
    home.mkdir(parents=True)
    config.mkdir()
    request = RunRequest(
        prompt=_prompt(),
        cwd=folder,
        run_dir=folder,
        base_env=env,
        allow_env=AGENT_ENV,
        permission_mode=DEFAULT_PERMISSION_MODE,
        sandbox=None
        if sandboxed_in is None
        else sandbox_for(
            Workspace(sandboxed_in, sandboxed_in / ".ai" / "state.db"), [PATHS], [], env["HOME"]
        ),
    )
    argv = build_command(request, CLAUDE)
    return argv, scrub_env(env, home=home, config_dir=config, allow=request.allow_env)


def _run(argv: list[str], cwd: Path, env: dict[str, str], stdin: str | None = None) -> str:
    done = subprocess.run(
        argv, cwd=cwd, env=env, input=stdin, capture_output=True, text=True,
        timeout=TIMEOUT_S, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[:4])} exited {done.returncode}: {done.stderr.strip()[-500:]}"
        )
    return done.stdout


def _repository(folder: Path, aictl: list[str], env: dict[str, str]) -> Path:
    """A fresh git repository with aictl initialised, one commit, one AI and one task."""
    root = folder / "repo"
    (root / "src").mkdir(parents=True)
    (root / "src" / "keep.txt").write_text("kept\n")
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    _run([*git, "init", "-q"], root, env)
    _run([*aictl, "init"], root, env)
    _run([*git, "add", "-A"], root, env)
    _run([*git, "commit", "-q", "-m", "first"], root, env)
    _run([*aictl, "ai", "register", AI_ID, "--connector", "claude-code"], root, env)
    _run([*aictl, "task", "create", TITLE, "--path", PATHS], root, env)
    return root


def _execute_round(
    folder: Path, aictl: list[str], env: dict[str, str]
) -> tuple[float, float | None]:
    """(A) one timed ``aictl task execute``; returns its wall time and the agent's duration."""
    root = _repository(folder, aictl, env)
    started = time.perf_counter()
    _run([*aictl, "task", "execute", "--ai", AI_ID], root, env)
    elapsed = time.perf_counter() - started
    shown = json.loads(_run([*aictl, "task", "show", "1", "--json"], root, env))
    if shown.get("status") != "done":
        raise RuntimeError(f"the task ended {shown.get('status')!r}, not 'done': {shown}")
    evidence_path = root / ".ai" / "runs" / "1" / "1" / "evidence.json"
    evidence = json.loads(evidence_path.read_text())
    if evidence.get("agent", {}).get("status") != "success":
        raise RuntimeError(f"the agent did not succeed: {evidence.get('agent')}")
    duration = evidence["agent"].get("duration")
    return elapsed, None if duration is None else float(duration)


def _direct_round(
    folder: Path, aictl: list[str], env: dict[str, str], *, sandboxed: bool = False
) -> float:
    """(B) one timed ``claude -p`` run as the connector would start it, in a repository made
    as A's; (C) the same inside the sandbox aictl plans for the task."""
    work = _repository(folder, aictl, env)
    argv, child_env = _direct_command(folder, env, work if sandboxed else None)
    started = time.perf_counter()
    stdout = _run(argv, work, child_env, stdin=_prompt())
    elapsed = time.perf_counter() - started
    results = [
        event for event in (json.loads(line) for line in stdout.splitlines() if line.strip())
        if event.get("type") == "result"
    ]  # fmt: skip
    if not results or results[-1].get("is_error") or results[-1].get("subtype") != "success":
        raise RuntimeError(f"claude -p did not succeed: {results[-1:] or stdout[-500:]}")
    return elapsed


def run(settings: Settings) -> Measurement:
    from aictl.model_server import serve

    runs, warmup = (3, 1) if settings.quick else (10, 2)
    aictl, aictl_text = aictl_command()
    measurement = Measurement(
        "execute",
        "7. Execution overhead (aictl task execute vs claude -p)",
        parameters={"runs": runs, "warmup": warmup, "aictl": aictl_text,
                    "claude": str(CLAUDE), "script": SCRIPT},
    )  # fmt: skip
    if not (CLAUDE.is_file() and os.access(CLAUDE, os.X_OK)):
        measurement.error = f"the Claude Code CLI is not installed at {CLAUDE} (`make install`)"
        return measurement
    samples: dict[str, list[float]] = {"A": [], "B": [], "C": [], "agent": [], "outside": []}
    with scratch_dir("execute") as folder, serve(SCRIPT) as server:
        env = clean_environment(folder / "pycache")
        env.update(AGENT_KNOBS)
        env.update({
            "AICTL_CLAUDE_BIN": str(CLAUDE),
            "ANTHROPIC_BASE_URL": server.url,
            "ANTHROPIC_API_KEY": "dummy-key-for-the-local-model-server",
        })  # fmt: skip
        for round_ in range(warmup + runs):
            a_folder, b_folder = folder / f"a{round_}", folder / f"b{round_}"
            c_folder = folder / f"c{round_}"
            for made in (a_folder, b_folder, c_folder):
                made.mkdir()
            a, agent = _execute_round(a_folder, aictl, env)
            b = _direct_round(b_folder, aictl, env)
            c = _direct_round(c_folder, aictl, env, sandboxed=True)
            if round_ >= warmup:
                samples["A"].append(a)
                samples["B"].append(b)
                samples["C"].append(c)
                if agent is not None:
                    samples["agent"].append(agent)
                    samples["outside"].append(a - agent)
    a_stats, b_stats = summary_ms(samples["A"]), summary_ms(samples["B"])
    difference = a_stats["median_ms"] - b_stats["median_ms"]
    paired = [(a - b) * 1000 for a, b in zip(samples["A"], samples["B"], strict=True)]
    direct = "claude -p (direct)"
    measurement.rows += [
        Row("aictl task execute, median", a_stats["median_ms"], "ms", direct,
            b_stats["median_ms"], detail=a_stats),
        Row("aictl task execute, p95", a_stats["p95_ms"], "ms", direct, b_stats["p95_ms"]),
        Row("added: median(A) - median(B)", difference, "ms",
            detail={"a": a_stats, "b": b_stats, "paired_median_ms": median(paired)}),
        Row("added: median of paired (A - B)", median(paired), "ms", goal=GOAL),
    ]  # fmt: skip
    c_stats = summary_ms(samples["C"])
    paired_c = [(a - c) * 1000 for a, c in zip(samples["A"], samples["C"], strict=True)]
    measurement.rows += [
        Row("claude -p in aictl's sandbox (C), median", c_stats["median_ms"], "ms", direct,
            b_stats["median_ms"], detail=c_stats),
        Row("added beside C: median of paired (A - C)", median(paired_c), "ms"),
    ]  # fmt: skip
    if samples["outside"]:
        agent_stats = summary_ms(samples["agent"])
        outside_stats = summary_ms(samples["outside"])
        measurement.rows += [
            Row("agent inside A (evidence duration), median", agent_stats["median_ms"], "ms",
                direct, b_stats["median_ms"], detail=agent_stats),
            Row("A outside the agent, median", outside_stats["median_ms"], "ms",
                detail=outside_stats),
        ]  # fmt: skip
    measurement.notes += [
        f"{runs} timed rounds after {warmup} warm-up round(s), A, B, then C in each round",
        "C: the same direct run inside the sandbox aictl plans for the task (Claude Code's "
        "own sandbox start-up, not aictl's)",
        f"claude -p (direct): median {b_stats['median_ms']:.0f} ms, p95 {b_stats['p95_ms']:.0f} ms",
        "A outside the agent = A's wall time - the agent's duration in evidence.json "
        "(process start, claim, policy, git, evidence, completion)",
        "every round checked: task done, agent success; direct run's result event a success",
        f"aictl: {aictl_text}",
    ]
    return measurement
