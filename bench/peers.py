"""13. Agents as peers: the ``PreToolUse`` hook per call, and a claim over MCP (issue 13).

What is measured, in one run, each beside the nearest CLI call measured alongside:

- (a) **the hook**: whole processes of the installed ``aictl hook pre-tool-use``, as Claude
  Code runs it before a tool call: a ``PreToolUse`` JSON on stdin (a ``Write`` of a file inside
  the paths of a task the agent holds, ``AICTL_AGENT`` naming the agent, ``cwd`` the
  repository), stdout captured. Every call must be allowed (exit 0, nothing on stdout) and
  write its decision record (counted at the end). Baseline: ``aictl task show 1 --json``
  (the nearest CLI call: one read of the same database), round-robin with the hook, plus
  ``python -c pass`` for the interpreter's own start-up. Goal: hook p50 under 100 ms.
- (b) **MCP**: one ``aictl mcp serve`` started once over stdio and driven by the official
  ``mcp`` client; each round creates a task (untimed), then times ``claim`` (which also starts
  it) plus ``complete``, two tool calls, round trip included. Baseline: the same work through
  the CLI, three processes (``aictl task claim --json``, ``task start``, ``task complete``),
  since an MCP claim is a claim plus a start. MCP and CLI rounds alternate.
  Goal: MCP claim + complete p50 under 10 ms.

Both use the default durability (``synchronous=FULL``) in a scratch repository on disk, and the
cleaned environment and bytecode cache of part 4 (``bench.cli.clean_environment``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.cli import aictl_command, clean_environment, timed_run
from bench.common import Goal, Measurement, Row, Settings, git_init, scratch_dir, summary_ms

HOOK_GOAL = Goal("p50 < 100 ms", "value", "<", 100.0)
MCP_GOAL = Goal("p50 < 10 ms", "value", "<", 10.0)
TIMEOUT_S = 60
HOOK_AGENT = "bench-hook"
MCP_AGENT = "bench-mcp"
CLI_AGENT = "bench-cli"

HOOK = "aictl hook pre-tool-use (Write, allowed)"
SHOW = "aictl task show 1 --json"
PYTHON_PASS = "python -c pass"


def _workspace(folder: Path) -> Path:
    """A repository with task 1 (``src/**``) claimed by ``HOOK_AGENT`` for an hour."""
    from aictl.services.tasks import TaskService
    from aictl.workspace import initialise

    root = git_init(folder / "repo")
    workspace, _ = initialise(root)
    service = TaskService(workspace)
    try:
        task = service.create("bench hook", paths=["src/**"])
        service.claim(HOOK_AGENT, ttl="1h", task_id=task.id)
    finally:
        service.close()
    return root


def _hook_event(root: Path) -> str:
    return json.dumps({
        "session_id": "bench",
        "hook_event_name": "PreToolUse",
        "cwd": str(root),
        "tool_name": "Write",
        "tool_input": {"file_path": str(root / "src" / "bench.py"), "content": "x = 1\n"},
    })  # fmt: skip


def _timed_hook(argv: list[str], root: Path, env: dict[str, str], event: str) -> float:
    """One hook process; anything but a silent exit 0 (an allowed call) is an error."""
    started = time.perf_counter()
    done = subprocess.run(
        argv, input=event, cwd=root, env=env, capture_output=True, text=True,
        timeout=TIMEOUT_S, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or done.stdout.strip():
        raise RuntimeError(
            f"the hook did not allow the write: exit {done.returncode}, "
            f"stdout {done.stdout.strip()[:300]!r}, stderr {done.stderr.strip()[-300:]!r}"
        )
    return elapsed


def _hook_decisions(root: Path) -> int:
    """How many tool decisions ``HOOK_AGENT`` has on record."""
    from aictl.services.tasks import TaskService
    from aictl.workspace import Workspace

    service = TaskService(Workspace(root, root / ".ai" / "state.db"))
    try:
        return len(service.store.decisions.records(subject=HOOK_AGENT, action="tool"))
    finally:
        service.close()


def _measure_hook(
    aictl: list[str], root: Path, env: dict[str, str], runs: int, warmup: int
) -> dict[str, list[float]]:
    argvs = {
        HOOK: [*aictl, "hook", "pre-tool-use"],
        SHOW: [*aictl, "task", "show", "1", "--json"],
        PYTHON_PASS: [sys.executable, "-c", "pass"],
    }
    hook_env = {**env, "AICTL_AGENT": HOOK_AGENT}
    event = _hook_event(root)
    samples: dict[str, list[float]] = {label: [] for label in argvs}
    for round_ in range(warmup + runs):
        for label, argv in argvs.items():
            if label == HOOK:
                elapsed = _timed_hook(argv, root, hook_env, event)
            else:
                elapsed, _ = timed_run(argv, root, env)
            if round_ >= warmup:
                samples[label].append(elapsed)
    recorded = _hook_decisions(root)
    if recorded != warmup + runs:
        raise RuntimeError(f"{warmup + runs} hook calls wrote {recorded} decision records")
    return samples


def _cli_round(aictl: list[str], root: Path, env: dict[str, str], task_id: int) -> float:
    """Claim, start and complete ``task_id`` through three CLI processes; their wall time."""
    claim, stdout = timed_run(
        [*aictl, "task", "claim", str(task_id), "--as", CLI_AGENT, "--json"], root, env
    )
    token = json.loads(stdout)["lease_token"]
    start, _ = timed_run([*aictl, "task", "start", str(task_id), "--lease", token], root, env)
    complete, stdout = timed_run(
        [*aictl, "task", "complete", str(task_id), "--lease", token, "--json"], root, env
    )
    if json.loads(stdout)["status"] != "done":
        raise RuntimeError(f"the CLI left task {task_id} {json.loads(stdout)['status']}")
    return claim + start + complete


def _measure_mcp(
    aictl: list[str], root: Path, env: dict[str, str], runs: int, warmup: int
) -> dict[str, list[float]]:
    import anyio
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    parameters = StdioServerParameters(
        command=aictl[0], args=[*aictl[1:], "mcp", "serve"],
        env={**env, "AICTL_AGENT": MCP_AGENT}, cwd=str(root),
    )  # fmt: skip
    samples: dict[str, list[float]] = {"mcp": [], "cli": []}

    async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
        result = await client.call_tool(tool, arguments)
        text = "".join(getattr(block, "text", "") for block in result.content)
        if result.is_error:
            raise RuntimeError(f"MCP {tool} {arguments}: {text}")
        answer: dict[str, Any] = json.loads(text)
        return answer

    async def rounds() -> None:
        async with Client(parameters, read_timeout_seconds=TIMEOUT_S) as client:
            for round_ in range(warmup + runs):
                for arm in ("mcp", "cli") if round_ % 2 == 0 else ("cli", "mcp"):
                    created = await call(
                        client, "create", title=f"bench {arm} {round_}",
                        paths=[f"work/{arm}{round_}/**"],
                    )  # fmt: skip
                    if arm == "mcp":
                        started = time.perf_counter()
                        claimed = await call(client, "claim", task=created["id"])
                        done = await call(client, "complete", task=created["id"], result="ok")
                        elapsed = time.perf_counter() - started
                        if claimed["status"] != "running" or done["status"] != "done":
                            raise RuntimeError(f"MCP round {round_}: {claimed} then {done}")
                    else:
                        elapsed = _cli_round(aictl, root, env, created["id"])
                    if round_ >= warmup:
                        samples[arm].append(elapsed)

    anyio.run(rounds)
    return samples


def run(settings: Settings) -> Measurement:
    runs, warmup = (5, 1) if settings.quick else (30, 3)
    mcp_runs = 10 if settings.quick else 50
    aictl, aictl_text = aictl_command()
    measurement = Measurement(
        "peers",
        "13. Peers: the PreToolUse hook per call, claim + complete over MCP (whole processes)",
        parameters={"hook_runs": runs, "mcp_rounds": mcp_runs, "warmup": warmup,
                    "aictl": aictl_text, "python": sys.executable},
    )  # fmt: skip
    with scratch_dir("peers") as folder:
        env = clean_environment(folder / "pycache")
        env.pop("AICTL_AGENT", None)
        root = _workspace(folder)
        hook = {k: summary_ms(v) for k, v in _measure_hook(aictl, root, env, runs, warmup).items()}
        mcp = {k: summary_ms(v) for k, v in _measure_mcp(aictl, root, env, mcp_runs, 2).items()}
    show, base = hook[SHOW], hook[PYTHON_PASS]
    measurement.rows += [
        Row(f"{HOOK}, p50", hook[HOOK]["median_ms"], "ms", SHOW, show["median_ms"],
            goal=HOOK_GOAL, detail=hook[HOOK]),
        Row(f"{HOOK}, p95", hook[HOOK]["p95_ms"], "ms", SHOW, show["p95_ms"]),
        Row(f"{PYTHON_PASS}, p50", base["median_ms"], "ms", SHOW, show["median_ms"],
            detail=base),
        Row("MCP claim + complete (2 tool calls), p50", mcp["mcp"]["median_ms"], "ms",
            "CLI claim + start + complete", mcp["cli"]["median_ms"], goal=MCP_GOAL,
            detail=mcp["mcp"]),
        Row("MCP claim + complete (2 tool calls), p95", mcp["mcp"]["p95_ms"], "ms",
            "CLI claim + start + complete", mcp["cli"]["p95_ms"], detail=mcp["cli"]),
    ]  # fmt: skip
    measurement.notes += [
        f"hook: {runs} timed rounds after {warmup} warm-up, round-robin with {SHOW} and "
        f"{PYTHON_PASS}; every call allowed and recorded (synchronous=FULL)",
        f"MCP: one `aictl mcp serve` over stdio; {mcp_runs} timed rounds after 2 warm-up, "
        "alternating with the CLI; an MCP claim also starts the task, hence the CLI's start",
        f"aictl: {aictl_text}",
    ]
    return measurement
