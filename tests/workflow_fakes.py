"""A scripted fake connector for workflow tests and the bench: each run takes the next verdict
of a shared script, writes it to ``verdict.txt`` (which the test command reads) and records
the prompt it was given. ``"crash"`` makes the run fail retryably."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import connectors
from connectors import Detection, RunRequest, RunResult


class FakeAgent:
    name = "fake"
    capabilities = frozenset({"edit", "review"})
    script: ClassVar[list[str]] = []
    prompts: ClassVar[list[str]] = []
    log: ClassVar[Path | None] = None

    def detect(self) -> Detection:
        return Detection("fake")

    def run(self, request: RunRequest) -> RunResult:
        verdict = FakeAgent.script.pop(0) if FakeAgent.script else "pass"
        FakeAgent.prompts.append(request.prompt)
        if FakeAgent.log is not None:
            with FakeAgent.log.open("a") as out:
                out.write(request.prompt.splitlines()[0] + "\n")
        if verdict == "crash":
            return RunResult(status="failed", reason="crashed", retryable=True, detail="boom")
        (request.cwd / "verdict.txt").write_text(verdict + "\n")
        return RunResult(status="success", num_turns=1)

    def cancel(self) -> None:
        pass


def install(script: list[str] | None = None, log: Path | None = None) -> type[FakeAgent]:
    FakeAgent.script = list(script or [])
    FakeAgent.prompts = []
    FakeAgent.log = log
    connectors.register("fake", FakeAgent)
    return FakeAgent


TEST_POLICY = """version: 1
settings:
  test_command: 'cat verdict.txt 2>/dev/null; test "$(cat verdict.txt 2>/dev/null)" = pass'
  retry_backoff: 1ms
  retry_backoff_max: 1ms
"""


def register_ai(
    db_path: Path | str,
    ai_id: str = "fake-1",
    capabilities: tuple[str, ...] = ("edit", "review", "shell"),
) -> None:
    """Register an AI on the fake connector (the registry's own command accepts only the
    connectors it can detect)."""
    from datetime import UTC, datetime

    from aictl.clock import SystemClock
    from aictl.domain.ais import AI
    from aictl.store.ais import AIStore
    from aictl.store.db import connect

    db = connect(db_path)  # a SQLite file or a PostgreSQL URL
    now = datetime.now(UTC)
    try:
        AIStore(db, SystemClock()).register(
            AI(
                id=ai_id,
                connector="fake",
                capabilities=list(capabilities),
                created_at=now,
                updated_at=now,
            )
        )
    finally:
        db.close()
