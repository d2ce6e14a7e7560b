"""11. The price of confinement per tool call: aictl's gate, and the sandbox around a shell.

What is measured: the real ``claude`` (the SDK's) driven by ``ClaudeCodeConnector`` against the
project's model server, on a script of ``CALLS`` tool calls of one kind, then a text. Each
call's time is taken from the connector's output stream, from the ``assistant`` line that asks
for the tool to the ``user`` line that carries its result: the permission decision plus the
tool's own work, with no model time in it (the model server answers only after the result).

Four arms, in the same run, rotated each round so that a drift in the machine's load falls on
all alike; each run in a fresh repository with a task claimed under a lease:

- **Read, no gate**: ``Read`` of a file in the repository, answered by the CLI itself (a read
  in the working directory needs no permission);
- **Read, gated**: the same with aictl's ``ToolGate`` deciding each call through the
  ``PreToolUse`` hook (the lease check, the task's paths, the policy, a decision record and its
  audit row written in a transaction with ``synchronous=FULL``);
- **Bash, gated**: ``true`` in the shell, gated, no sandbox;
- **Bash, gated and sandboxed**: the same inside bubblewrap (a new sandbox per command).

Rows: p50 and p95 per call of the gated arm beside the ungated one (the gate's cost), and of the
sandboxed arm beside the unsandboxed one (the sandbox's cost per shell command).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.common import Measurement, Row, Settings, median, percentile, scratch_dir
from connectors.claude_code.command import sdk_binary

CALLS = 20
KNOBS = {"CLAUDE_CODE_MAX_RETRIES": "0", "API_TIMEOUT_MS": "10000"}


def _script(kind: str) -> list[dict[str, Any]]:
    call: dict[str, Any] = (
        {"name": "Read", "input": {"file_path": "src/keep.txt"}}
        if kind == "read"
        else {"name": "Bash", "input": {"command": "true", "description": "nothing"}}
    )
    return [*({"tool_use": call} for _ in range(CALLS)), {"text": "done"}]


class _Timer:
    """Per-call times from the stream: the tool_use line to its tool_result line."""

    def __init__(self) -> None:
        self.asked: dict[str, float] = {}
        self.samples: list[float] = []

    def __call__(self, line: str) -> None:
        import json

        now = time.perf_counter()
        try:
            message = json.loads(line)
        except ValueError:
            return
        content = message.get("message", {}).get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            return
        for block in content:
            if block.get("type") == "tool_use":
                self.asked[block["id"]] = now
            elif block.get("type") == "tool_result" and block.get("tool_use_id") in self.asked:
                self.samples.append(now - self.asked.pop(block["tool_use_id"]))


def _round(folder: Path, url: str, arm: str) -> list[float]:
    from aictl.services.confinement import sandbox_for
    from aictl.services.tasks import TaskService
    from aictl.services.toolgate import ToolGate
    from aictl.workspace import initialise
    from connectors import RunRequest
    from connectors.claude_code import ClaudeCodeConnector

    root = folder / "repo"
    (root / "src").mkdir(parents=True)
    (root / "src" / "keep.txt").write_text("kept\n")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    workspace, _ = initialise(root)
    service = TaskService(workspace)
    try:
        task = service.create("bench", paths=["src/**"])
        claim = service.claim("bench-ai", task_id=task.id)
        gate = None
        if arm != "read-plain":
            gate = ToolGate(workspace, claim.task, "bench-ai", claim.token, lambda _: None,
                            service.enforcer)  # fmt: skip
        sandbox = sandbox_for(workspace, ["src/**"], []) if arm == "bash-sandboxed" else None
        env = {**os.environ, **KNOBS, "ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": "bench"}
        timer = _Timer()
        result = ClaudeCodeConnector(environ={"AICTL_CLAUDE_BIN": str(sdk_binary())}).run(
            RunRequest(
                prompt="Task 1: bench",
                cwd=root,
                run_dir=folder / "run",
                base_env=env,
                allow_env=tuple(KNOBS),
                on_line=timer,
                gate=gate,
                sandbox=sandbox,
                permission_mode="default",
            )
        )
        if gate is not None:
            gate.close()
            if gate.allowed != CALLS:
                raise RuntimeError(f"{arm}: the gate allowed {gate.allowed} of {CALLS} calls")
        if not result.ok or len(timer.samples) != CALLS:
            raise RuntimeError(
                f"{arm}: {result.reason} {result.detail}; {len(timer.samples)} calls"
            )
        return timer.samples
    finally:
        service.close()


def run(settings: Settings) -> Measurement:
    from aictl.model_server import serve

    rounds = 2 if settings.quick else 5
    arms = ["read-plain", "read-gated", "bash-gated", "bash-sandboxed"]
    measurement = Measurement(
        "confinement",
        "11. The gate per tool call, the sandbox per shell command",
        parameters={"rounds": rounds, "calls_per_run": CALLS, "claude": str(sdk_binary())},
    )
    samples: dict[str, list[float]] = {arm: [] for arm in arms}
    with scratch_dir("confinement") as folder:
        for round_ in range(rounds):
            order = arms[round_ % len(arms) :] + arms[: round_ % len(arms)]
            for arm in order:
                kind = "read" if arm.startswith("read") else "bash"
                with serve(_script(kind)) as server:
                    place = folder / f"{arm}-{round_}"
                    place.mkdir()
                    samples[arm] += _round(place, server.url, arm)

    def ms(arm: str, fraction: float) -> float:
        values = samples[arm]
        return 1000 * (median(values) if fraction == 0.5 else percentile(values, fraction))

    measurement.rows += [
        Row("Read, gated: p50 per call", ms("read-gated", 0.5), "ms", "Read, no gate",
            ms("read-plain", 0.5)),
        Row("Read, gated: p95 per call", ms("read-gated", 0.95), "ms", "Read, no gate",
            ms("read-plain", 0.95)),
        Row("gate's cost per call (p50 difference)",
            ms("read-gated", 0.5) - ms("read-plain", 0.5), "ms"),
        Row("Bash, sandboxed: p50 per call", ms("bash-sandboxed", 0.5), "ms",
            "Bash, gated, no sandbox", ms("bash-gated", 0.5)),
        Row("Bash, sandboxed: p95 per call", ms("bash-sandboxed", 0.95), "ms",
            "Bash, gated, no sandbox", ms("bash-gated", 0.95)),
        Row("sandbox's cost per shell command (p50 difference)",
            ms("bash-sandboxed", 0.5) - ms("bash-gated", 0.5), "ms"),
    ]  # fmt: skip
    measurement.notes += [
        f"{rounds} rounds x {CALLS} calls per arm, arms rotated each round",
        "a call's time: from the stream line asking for the tool to the line with its result",
        "every gated run checked: the gate allowed every call, the run succeeded",
    ]
    return measurement
