"""8. Workflow scheduling overhead: a 100-step workflow of no-op steps through a fake connector,
beside the same 100 tasks created and executed directly (TaskService + Executor), in the same
run, alternating arms. Goal (issue 5): the workflow under 1.2x the direct path per step."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import connectors
from bench.common import Goal, Measurement, Row, Settings, git_init, scratch_dir, summary_ms
from connectors import Detection, RunRequest, RunResult

STEPS = 100


class NoOp:
    name = "noop"
    capabilities = frozenset({"edit"})

    def detect(self) -> Detection:
        return Detection("noop")

    def run(self, request: RunRequest) -> RunResult:
        return RunResult(status="success", num_turns=1)

    def cancel(self) -> None:
        pass


def _repo(folder: Path) -> Path:
    from aictl.domain.ais import AI
    from aictl.services.tasks import TaskService
    from aictl.store.ais import AIStore
    from aictl.workspace import initialise

    git_init(folder)
    workspace, _ = initialise(folder)
    service = TaskService(workspace)
    now = datetime.now(UTC)
    AIStore(service.db, service.store.clock).register(
        AI(id="noop-1", connector="noop", capabilities=["edit"], created_at=now, updated_at=now)
    )
    service.close()
    return folder


def _workflow_round(folder: Path) -> float:
    from aictl.services.tasks import TaskService
    from aictl.services.workflows import WorkflowService
    from aictl.workspace import locate

    root = _repo(folder)
    lines = ["version: 1", "name: chain", "steps:"]
    for index in range(STEPS):
        lines.append(f"  - id: s{index}")
        lines.append(f"    task: {{title: Step {index}}}")
        if index:
            lines.append(f"    needs: [s{index - 1}]")
    (root / "chain.yaml").write_text("\n".join(lines) + "\n")
    service = TaskService(locate(root / ".ai" / "state.db"))
    try:
        engine = WorkflowService(service)
        engine.register(root / "chain.yaml")
        started = time.perf_counter()
        report = engine.execute("chain")
        elapsed = time.perf_counter() - started
        assert report.run.status == "done", report.run.reason
    finally:
        service.close()
    return elapsed / STEPS


def _direct_round(folder: Path) -> float:
    from aictl.services.executor import Executor
    from aictl.services.tasks import TaskService
    from aictl.workspace import locate

    root = _repo(folder)
    service = TaskService(locate(root / ".ai" / "state.db"))
    try:
        executor = Executor(service)
        started = time.perf_counter()
        previous: list[int] = []
        for index in range(STEPS):
            task = service.create(f"Step {index}", depends_on=previous)
            done = executor.execute(task.id, ai="noop-1")
            assert done.outcome == "done", done.reason
            previous = [task.id]
        elapsed = time.perf_counter() - started
    finally:
        service.close()
    return elapsed / STEPS


def run(settings: Settings) -> Measurement:
    connectors.register("noop", NoOp)
    rounds = 1 if settings.quick else 3
    measurement = Measurement(
        "workflow",
        "8. Workflow scheduling overhead (100 no-op steps vs the same tasks run directly)",
        parameters={"steps": STEPS, "rounds": rounds, "connector": "in-process no-op"},
    )
    workflow: list[float] = []
    direct: list[float] = []
    with scratch_dir("workflow") as folder:
        for round_ in range(rounds):
            direct.append(_direct_round(folder / f"d{round_}"))
            workflow.append(_workflow_round(folder / f"w{round_}"))
    w, d = summary_ms(workflow), summary_ms(direct)
    measurement.rows += [
        Row("per step, workflow engine (median)", w["median_ms"], "ms",
            "per task, TaskService + Executor", d["median_ms"],
            goal=Goal("under 1.2x the direct path", "ratio", "<", 1.2),
            detail={"workflow": w, "direct": d}),
        Row("scheduling overhead per step", w["median_ms"] - d["median_ms"], "ms"),
    ]  # fmt: skip
    measurement.notes.append(
        "both arms run every task through the Executor (claim, execute decision, git probes, "
        "evidence file, complete); the workflow adds its step records, audit events, condition "
        "and template evaluation and the scheduling decision per step"
    )
    return measurement
